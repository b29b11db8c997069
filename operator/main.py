"""`modeldr operator`: the operator process.

Configures logging and the Kubernetes client, serves /healthz and /metrics on every replica,
waits for the leader Lease (when leader election is on), then runs kopf in standalone mode
with the handlers of `modeldr.operator.handlers` and `modeldr.drills.handlers` (the two
register side by side; this module, the top floor, is the only one that loads both). SIGTERM
stops kopf, releases the Lease and exits 0; losing the Lease (or kopf failing) exits 1 at
once, without waiting for worker threads, so that Kubernetes restarts the replica as a
follower.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from aiohttp import web
from kubernetes import client
from prometheus_client import start_http_server

from modeldr.kube import config as operator_config
from modeldr.kube import logs
from modeldr.kube.constants import DIFFBASE_KEY, FINALIZER, KOPF_PREFIX
from modeldr.kube.kubeconfig import load_client_configuration
from modeldr.operator.leader import LeaderElector
from modeldr.operator.runtime import CONFIG_KEY

log = logging.getLogger("modeldr.operator")
# Loaded by name: the operator's and the drills' handler packages stand side by side, and
# neither imports the other's. MODELDR_OPERATOR_HANDLERS_MODULE (comma-separated) replaces them.
HANDLERS_MODULES = "modeldr.operator.handlers,modeldr.drills.handlers"


def connection_info(cfg: client.Configuration) -> kopf.ConnectionInfo:
    token = None
    scheme = None
    authorization = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get(
        "BearerToken"
    )
    if authorization:
        scheme, _, token = str(authorization).partition(" ")
        if not token:
            scheme, token = "Bearer", scheme
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )


def _register_kopf_hooks(kubeconfig: str | None, context: str | None) -> None:
    @kopf.on.login()
    async def _login(**_: Any) -> kopf.ConnectionInfo:
        # Loaded again on every login (kopf logs in again after a 401): a rotated in-cluster
        # token or a kubeconfig exec plugin's fresh token is picked up.
        cfg = await asyncio.to_thread(load_client_configuration, kubeconfig, context)
        client.Configuration.set_default(cfg)
        return connection_info(cfg)

    @kopf.on.startup()
    def _settings(settings: kopf.OperatorSettings, **_: Any) -> None:
        # The chart grants no CRD list: kopf must not scan for resources.
        settings.scanning.disabled = True
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=KOPF_PREFIX, key=DIFFBASE_KEY
        )
        # Our own Events (kopf.event) are always posted; kopf's log lines only from WARNING.
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 60
        settings.watching.client_timeout = 70
        settings.watching.connect_timeout = 5
        settings.networking.request_timeout = 30


async def _health_server(
    settings: operator_config.OperatorConfig, elector: LeaderElector | None
) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        body = {
            "status": "ok",
            "identity": settings.pod_name,
            "leader": elector.is_leader if elector else True,
            "leaderElection": elector is not None,
        }
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.bind_address, settings.health_port).start()
    return runner


async def run(args: argparse.Namespace) -> int:
    settings = operator_config.OperatorConfig.from_env()
    logs.configure("debug" if args.verbose else settings.log_level, settings.log_format)
    # A kubeconfig may run an exec credential plugin: off the event loop, like every call.
    cfg = await asyncio.to_thread(load_client_configuration, args.kubeconfig, args.context)
    client.Configuration.set_default(cfg)
    for module in os.environ.get("MODELDR_OPERATOR_HANDLERS_MODULE", HANDLERS_MODULES).split(","):
        importlib.import_module(module.strip())
    _register_kopf_hooks(args.kubeconfig, args.context)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # asyncio.to_thread's pool: every ModelDeployment daemon sends its blocking Kubernetes
    # calls there; the default (cores + 4) would queue hundreds of them behind a few threads.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=32, thread_name_prefix="k8s"))
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    elector = None
    if settings.leader_election:
        elector = LeaderElector(
            client.ApiClient(cfg),
            settings.namespace,
            settings.leader_lease,
            settings.pod_name,
            settings.lease_duration_s,
            settings.renew_deadline_s,
            settings.retry_period_s,
        )
    health = await _health_server(settings, elector)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.bind_address)
    log.info(
        "modeldr operator %s starting (health :%d, metrics :%d, leader election %s)",
        settings.pod_name,
        settings.health_port,
        settings.metrics_port,
        "on" if elector else "off",
    )
    try:
        if elector is not None and not await elector.acquire(stop):
            return 0
        await _run_kopf(args, settings, elector, stop)
    finally:
        await health.cleanup()
    log.info("modeldr operator stopped")
    return 0


async def _run_kopf(
    args: argparse.Namespace,
    settings: operator_config.OperatorConfig,
    elector: LeaderElector | None,
    stop: asyncio.Event,
) -> None:
    """Run kopf until SIGTERM (a clean stop, the Lease released) or until leadership is
    lost or kopf fails (exit 1 at once)."""
    kopf_stop = asyncio.Event()
    namespaces = list(args.namespace or [])
    kopf_task = asyncio.create_task(
        kopf.operator(
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            stop_flag=kopf_stop,
            # The handlers' startup builds the runtime from these settings.
            memo=kopf.Memo({CONFIG_KEY: settings}),
        )
    )
    waiters = {kopf_task, asyncio.create_task(stop.wait())}
    hold_task = None
    if elector is not None:
        hold_task = asyncio.create_task(elector.hold(stop))
        waiters.add(hold_task)
    done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    # `hold` also returns when kopf, stopping on SIGTERM, cancels what it waits on; only
    # a renewal failure clears is_leader.
    if elector is not None and hold_task in done and not elector.is_leader:
        # Leadership lost: a peer may be reconciling already. Stop at once, without
        # kopf's graceful shutdown, and let Kubernetes restart this replica as a follower.
        kopf_task.cancel()
        await asyncio.wait({kopf_task}, timeout=5)
        _exit_now(1, "leadership lost")
    if kopf_task in done and kopf_task.exception() is not None:
        log.error("kopf failed: %s", kopf_task.exception())
        if elector is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(elector.release(), timeout=10)
        _exit_now(1, "kopf failed")
    # kopf installs its own SIGTERM/SIGINT handlers and returns cleanly on them: that is
    # a normal stop (release the Lease, exit 0).
    kopf_stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(kopf_task, timeout=30)
    for task in waiters:
        task.cancel()
    if elector is not None:
        await elector.release()


def _exit_now(code: int, why: str) -> None:
    """Exit without waiting for worker threads (a Kubernetes call may hang in one)."""
    log.error("modeldr operator exiting (%s, exit %d)", why, code)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(code)


def main(args: argparse.Namespace) -> int:
    return asyncio.run(run(args))
