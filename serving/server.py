"""uvicorn, with a graceful drain that Kubernetes can rely on.

On SIGTERM uvicorn would stop listening at once, but a terminating pod stays
in Service endpoints until every kube-proxy / load balancer has caught up, so
requests keep arriving for a few seconds and would be refused (triton#6230,
#6286, kserve#3360). Here SIGTERM instead:

1. turns readiness false at once (endpoints start dropping the pod),
2. keeps accepting and serving for ``drain_delay_s``,
3. then closes the listener, lets uvicorn finish every request it accepted
   (the batcher keeps running until the last one is answered), and exits 0,
   all within ``grace_period_s`` (the pod's terminationGracePeriodSeconds).

A second SIGINT (Ctrl-C twice) forces an immediate exit, as usual.
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import uvicorn

from modeldr.serving.runtime import Runtime

log = logging.getLogger(__name__)

# Room left inside the grace period for the lifespan shutdown and process exit.
EXIT_MARGIN_S = 2.0


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime
        self._drain_deadline: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Deliberately not recording the signal in _captured_signals: uvicorn would
        # re-raise it after shutdown and the process would die by SIGTERM, not exit 0.
        if self._drain_deadline is not None:
            if sig == signal.SIGINT:
                log.warning("second SIGINT: exiting without waiting for requests")
                self.should_exit = True
                self.force_exit = True
            return
        delay = self.runtime.config.drain_delay_s
        log.info("received %s: draining for %.1fs before closing", signal.Signals(sig).name, delay)
        self.runtime.begin_drain()
        self._drain_deadline = time.monotonic() + delay

    async def on_tick(self, counter: int) -> bool:
        if self._drain_deadline is not None and time.monotonic() >= self._drain_deadline:
            if not self.should_exit:
                log.info("drain delay over: closing the listener, finishing accepted requests")
            self.should_exit = True
        if self.runtime.exit_code is not None:
            self.should_exit = True
        result: bool = await super().on_tick(counter)
        return result


def serve(runtime: Runtime) -> int:
    """Run until drained or failed; return the process exit code."""
    from modeldr.serving.app import create_app

    config = runtime.config
    uvicorn_config = uvicorn.Config(
        create_app(runtime),
        host=config.host,
        port=config.port,
        # httptools/uvloop when installed (uvicorn[standard]), else h11/asyncio.
        loop="auto",
        http="auto",
        lifespan="on",
        log_config=None,  # keep the process's logging setup
        access_log=config.access_log,
        timeout_graceful_shutdown=max(
            1, int(config.grace_period_s - config.drain_delay_s - EXIT_MARGIN_S)
        ),
        timeout_keep_alive=5,
        server_header=False,
    )
    server = DrainingServer(uvicorn_config, runtime)
    server.run()
    if runtime.exit_code is not None:
        return runtime.exit_code
    if not server.started:
        return 1  # bind failure or lifespan startup error; uvicorn logged why
    return 0
