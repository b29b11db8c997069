"""A run's report data, kept with the run: when it ends, the operator writes a ConfigMap
`<run>-report` in the run's namespace, owned by the DrillRun (garbage-collected with it),
holding one JSON document (`report.json`): the run's final status, the plan it executed, the
member clusters of its target, the probe's per-second timeline and the plan's recent runs.
`modeldr drill report NAME` renders it as JUnit XML, HTML and Markdown at any time later.

The document is bounded (`MAX_BYTES`, under the 1 MiB object limit): when it would be
larger, the timeline's resolution is halved until it fits (never its span), and as a last
resort the timeline is dropped, which the document says (`timeline.truncated`).
Blocking calls; the engine runs them in worker threads. Best-effort: the run's status stays
the record, a report that could not be written is logged and named in no verdict.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from kubernetes import client

from modeldr.api.drillplan import DrillPlanSpec
from modeldr.api.drillstatus import DrillRunStatus
from modeldr.drills.runstate import RunRef, now
from modeldr.drills.timeline import Point, ReplicaPoint, coarsen
from modeldr.kube import k8s
from modeldr.kube.constants import (
    API_VERSION,
    DRILL_PLAN_LABEL,
    DRILLRUN_KIND,
    DRILLRUNS,
    GROUP,
    VERSION,
)

log = logging.getLogger(__name__)
REPORT_KEY: Final = "report.json"
REPORT_FORMAT: Final = 1
MAX_BYTES: Final = 900 * 1024
# The plan's recent runs the report shows as its trend.
HISTORY_RUNS: Final = 30
RUN_LABEL: Final = "modeldr.io/drill-run"
TIMEOUT = (2, 10)


def config_map_name(run: str) -> str:
    return f"{run}-report"


def document(
    ref: RunRef,
    plan_name: str,
    plan: DrillPlanSpec | None,
    status: DrillRunStatus,
    clusters: Mapping[str, str],
    points: Sequence[Point],
    history: list[dict[str, Any]],
    replicas: Sequence[ReplicaPoint] = (),
) -> dict[str, Any]:
    """The report data (JSON-ready). `clusters`: role -> member cluster name; `replicas`:
    the target's ready replicas per role over the run."""
    return {
        "format": REPORT_FORMAT,
        "generatedAt": now().isoformat(),
        "run": {"namespace": ref.namespace, "name": ref.name, "plan": plan_name},
        "clusters": dict(clusters),
        "plan": plan.model_dump(mode="json", by_alias=True, exclude_none=True) if plan else None,
        "status": status.dump(),
        "timeline": timeline_section(points),
        "replicas": replicas_section(replicas),
        "history": history,
    }


def replicas_section(replicas: Sequence[ReplicaPoint]) -> dict[str, Any]:
    return {"columns": ["t", "primary", "standby"], "points": [r.to_row() for r in replicas]}


def timeline_section(points: Sequence[Point], truncated: bool = False) -> dict[str, Any]:
    width = max((p.width for p in points), default=1.0)
    return {
        "columns": ["t", "width", "sent", "ok", "p99Ms", "cluster", "correct"],
        "resolutionSeconds": width,
        "points": [p.to_row() for p in points],
        "truncated": truncated,
    }


def encode(doc: dict[str, Any], max_bytes: int = MAX_BYTES) -> str:
    """The document as JSON of at most `max_bytes`: the timeline coarsened until it fits,
    dropped if even that is not enough (the status alone is bounded by its CRD)."""
    text = json.dumps(doc, separators=(",", ":"))
    points = [Point.from_row(row) for row in doc["timeline"]["points"]]
    while len(text.encode()) > max_bytes and len(points) > 1:
        points = coarsen(points)
        doc = {**doc, "timeline": timeline_section(points, truncated=True)}
        text = json.dumps(doc, separators=(",", ":"))
    if len(text.encode()) > max_bytes:
        doc = {
            **doc,
            "timeline": timeline_section([], truncated=True),
            "replicas": replicas_section([]),
            "history": [],
        }
        text = json.dumps(doc, separators=(",", ":"))
    return text


def plan_history(hub: client.ApiClient, namespace: str, plan: str) -> list[dict[str, Any]]:
    """The plan's runs (this one included), oldest first: verdict, RTO and times."""
    api = client.CustomObjectsApi(hub)
    runs = api.list_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        DRILLRUNS,
        label_selector=f"{DRILL_PLAN_LABEL}={plan}",
        _request_timeout=TIMEOUT,
    )["items"]
    runs.sort(key=lambda r: r["metadata"]["creationTimestamp"])
    return [history_entry(r) for r in runs[-HISTORY_RUNS:]]


def history_entry(run: dict[str, Any]) -> dict[str, Any]:
    """A run for the trend: its verdict, and its worst step's figures (None: not measured,
    drawn as missing, never as 0)."""
    status = run.get("status") or {}
    spec = run.get("spec") or {}
    steps = [step for step in status.get("steps") or [] if isinstance(step, dict)]
    after_steps = [c for c in status.get("modelChecks") or [] if c.get("step")]
    return {
        "name": run["metadata"]["name"],
        "createdAt": run["metadata"].get("creationTimestamp"),
        "phase": status.get("phase", "Pending"),
        "reason": status.get("reason"),
        "startedAt": status.get("startedAt"),
        "finishedAt": status.get("finishedAt"),
        "rtoSeconds": status.get("rtoSeconds"),
        "timeToCorrectSeconds": _worst(steps, "timeToCorrectSeconds", max),
        "errorRatio": _worst(steps, "errorRatio", max),
        "p99LatencyMs": _worst(steps, "p99LatencyMs", max),
        "f1": _worst(after_steps, "f1", min),
        "dryRun": bool(spec.get("dryRun") or (spec.get("plan") or {}).get("dryRun")),
    }


def _worst(
    parts: list[dict[str, Any]], key: str, pick: Callable[[list[float]], float]
) -> float | None:
    values = [float(p[key]) for p in parts if isinstance(p.get(key), int | float)]
    return pick(values) if values else None


def manifest(ref: RunRef, plan_name: str, text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": config_map_name(ref.name),
            "namespace": ref.namespace,
            "labels": {DRILL_PLAN_LABEL: plan_name, RUN_LABEL: ref.name},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": DRILLRUN_KIND,
                    "name": ref.name,
                    "uid": ref.uid,
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "data": {REPORT_KEY: text},
    }


def write(hub: client.ApiClient, ref: RunRef, plan_name: str, text: str) -> str:
    """Create (or replace) the run's report ConfigMap; returns its name."""
    core = client.CoreV1Api(hub)
    body = manifest(ref, plan_name, text)
    name: str = body["metadata"]["name"]
    created = k8s.call(
        core.create_namespaced_config_map,
        ref.namespace,
        body,
        _request_timeout=TIMEOUT,
        conflict=None,
    )
    if created is None:  # written before (a retried end): the newer data wins
        core.patch_namespaced_config_map(
            name, ref.namespace, {"data": body["data"]}, _request_timeout=TIMEOUT
        )
    return name
