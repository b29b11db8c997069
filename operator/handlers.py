"""The ModelDeployment's kopf registrations, and nothing else: each handler takes what it
needs from kopf's memo and delegates. The drills register theirs in `modeldr.drills.handlers`,
side by side; `modeldr.operator.main` loads both.

| handler | what | where |
| --- | --- | --- |
| startup | builds the Runtime once; keeps the admission policy's grants | runtime, admission |
| cleanup | stops that and the member pollers | runtime |
| event | any change of a ModelDeployment wakes its daemon at once | runtime.wake_event |
| daemon | one per ModelDeployment: reconcile, health, failover, traffic, status | daemon, tick |
| delete | removes member and traffic objects (after stopping the daemon's writes) | deletion |
| backup daemon | one per ModelBackup: schedules, backups, status | backupdaemon |

One daemon per ModelDeployment owns everything about it, so there is one writer per object.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from modeldr.api.modelbackup import PLURAL as MODELBACKUPS
from modeldr.kube.constants import (
    GROUP,
    MODELDEPLOYMENTS,
    PAUSED_ANNOTATION,
    RUNTIME_KEY,
    VERSION,
)
from modeldr.operator.admission import AdmissionGrants, publish_forever
from modeldr.operator.backupdaemon import run_backups
from modeldr.operator.daemon import run_daemon
from modeldr.operator.deletion import delete_modeldeployment
from modeldr.operator.runtime import (
    Runtime,
    config_of,
    runtime_of,
    wake_event,
    writes_of,
)

# kopf's operator memo: the task writing the admission grants.
ADMISSION_TASK_KEY = "admission-grants"
# One thread per blocking call in flight; daemons hold none while they sleep.
MIN_WORKERS = 32
# How long kopf waits for a daemon to notice it is stopped before cancelling it.
DAEMON_CANCELLATION_TIMEOUT_S = 10.0


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.execution.max_workers = max(settings.execution.max_workers or 0, MIN_WORKERS)
    if not isinstance(memo.get(RUNTIME_KEY), Runtime):
        memo[RUNTIME_KEY] = await asyncio.to_thread(Runtime.build, config_of(memo))
    rt = runtime_of(memo)
    if rt.seal is None:
        await asyncio.to_thread(rt.load_seal)  # the drills' journal key
    # The leader keeps the grants the chart's admission policy reads (operator/admission.py).
    grants = AdmissionGrants(rt.hub, rt.tenancy, rt.config.namespace)
    memo[ADMISSION_TASK_KEY] = asyncio.create_task(publish_forever(grants))


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get(ADMISSION_TASK_KEY)
    if isinstance(task, asyncio.Task):
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    runtime = memo.get(RUNTIME_KEY)
    if isinstance(runtime, Runtime):
        await asyncio.to_thread(runtime.stop)


@kopf.on.event(GROUP, VERSION, MODELDEPLOYMENTS)
async def nudge(memo: kopf.Memo, **_: Any) -> None:
    """Any change of the object (spec, annotations) gets a tick at once. Async: it runs on
    the event loop, where the daemon waits on the (not thread-safe) asyncio.Event."""
    wake_event(memo).set()


def not_paused(annotations: kopf.Annotations, **_: Any) -> bool:
    return annotations.get(PAUSED_ANNOTATION, "").lower() != "true"


@kopf.daemon(
    GROUP,
    VERSION,
    MODELDEPLOYMENTS,
    cancellation_timeout=DAEMON_CANCELLATION_TIMEOUT_S,
    when=not_paused,
)
async def modeldeployment_daemon(
    stopped: kopf.DaemonStopped,
    name: str,
    namespace: str | None,
    uid: str,
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    assert namespace is not None  # ModelDeployment is namespaced
    await run_daemon(
        runtime_of(memo),
        writes_of(memo),
        wake_event(memo),
        stopped,
        name=name,
        namespace=namespace,
        uid=uid,
        body=body,
        spec=spec,
        meta=meta,
        status=status,
    )


@kopf.on.delete(GROUP, VERSION, MODELDEPLOYMENTS)
def modeldeployment_deleted(
    name: str,
    namespace: str | None,
    uid: str,
    spec: kopf.Spec,
    status: kopf.Status,
    memo: kopf.Memo,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    """Remove the member objects (retrying while a member is unreachable: nothing leaks)."""
    assert namespace is not None
    delete_modeldeployment(
        runtime_of(memo),
        writes_of(memo),
        name=name,
        namespace=namespace,
        uid=uid,
        spec=spec,
        status=status,
        logger=logger,
    )


@kopf.daemon(GROUP, VERSION, MODELBACKUPS, cancellation_timeout=DAEMON_CANCELLATION_TIMEOUT_S)
async def modelbackup_daemon(
    stopped: kopf.DaemonStopped, name: str, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """One per ModelBackup: the only writer of its status."""
    assert namespace is not None  # ModelBackup is namespaced
    rt = runtime_of(memo)
    await run_backups(rt.hub, rt.config, rt.tenancy, namespace, name, stopped)
