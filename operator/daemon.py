"""The ModelDeployment daemon's loop: one tick, then sleep until the next is due, the
object changes (the event handler sets its wake-up) or its member snapshots change (the
pollers call `wake_soon` from their threads), or kopf stops it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from modeldr.kube.errors import Closing
from modeldr.operator.daemonstate import DaemonState, Writes
from modeldr.operator.runtime import Runtime
from modeldr.operator.tick import tick

log = logging.getLogger(__name__)
# After a tick that raised, the next one comes this soon.
RETRY_AFTER_FAILED_TICK_S = 5.0


async def run_daemon(
    rt: Runtime,
    writes: Writes,
    wake: asyncio.Event,
    stopped: kopf.DaemonStopped,
    *,
    name: str,
    namespace: str,
    uid: str,
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
) -> None:
    ctl = DaemonState(rt, namespace, name, uid, writes=writes)
    loop = asyncio.get_running_loop()

    def wake_soon() -> None:  # called from the pollers' threads
        with contextlib.suppress(RuntimeError):  # the loop is closed: the operator stops
            loop.call_soon_threadsafe(wake.set)

    ctl.wake = wake_soon
    try:
        while not stopped:
            wake.clear()
            try:
                delay = await tick(ctl, body, spec, meta, status, stopped)
            except Closing:
                return  # deleted: the deletion handler has taken over
            except Exception:
                log.exception("%s/%s: tick failed; retrying", namespace, name)
                delay = RETRY_AFTER_FAILED_TICK_S
            await sleep_until_woken(delay, wake, stopped)
    finally:
        ctl.evaluation.cancel()
        ctl.rollout.cancel()
        for cluster, key in ctl.watching:
            rt.monitors.unwatch(cluster, key, wake_soon)


async def sleep_until_woken(delay: float, wake: asyncio.Event, stopped: Any) -> None:
    """Until the next tick, a change of the object, or kopf stopping the daemon (deletion,
    shutdown): stopping promptly lets the deletion handler run without waiting out a tick."""

    async def until_stopped() -> None:
        await stopped.wait()

    waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(until_stopped())}
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
