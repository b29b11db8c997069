"""The drill probe's Prometheus series, served by the operator with its own (on
MODELDR_METRICS_PORT): what the synthetic clients of each run saw, so gates and dashboards
can use the same evidence as the verdict. Labelled by plan and run; a run's series are
dropped a while after it ends (runs come and go: their labels must not pile up)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from modeldr.drills.probe_stats import ProbeSample

PROBE_REQUESTS = Counter(
    "modeldr_drill_probe_requests_total",
    "Synthetic inference requests of a drill's traffic probe, by serving cluster and outcome.",
    ["namespace", "plan", "run", "cluster", "outcome"],
)
PROBE_LATENCY = Histogram(
    "modeldr_drill_probe_request_duration_seconds",
    "Latency of a drill's probe requests (failed ones included, at the time they failed).",
    ["namespace", "plan", "run"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RUNS_IN_PROGRESS = Gauge(
    "modeldr_drill_runs_in_progress",
    "DrillRuns running now (1) per plan and run.",
    ["namespace", "plan", "run"],
)
# Keep a finished run's series this long, so the last scrape sees its final values.
FORGET_AFTER_S = 120.0


def sample_recorder(namespace: str, plan: str, run: str) -> Callable[[ProbeSample], None]:
    """The probe's `on_sample` hook for one run."""
    latency = PROBE_LATENCY.labels(namespace, plan, run)

    def record(sample: ProbeSample) -> None:
        outcome = "success" if sample.ok else "failure"
        PROBE_REQUESTS.labels(namespace, plan, run, sample.cluster or "unknown", outcome).inc()
        latency.observe(sample.latency)

    return record


def forget(namespace: str, plan: str, run: str) -> None:
    """Drop a finished run's series."""
    for labels in list(PROBE_REQUESTS._metrics):
        if labels[:3] == (namespace, plan, run):
            PROBE_REQUESTS.remove(*labels)
    for metric in (PROBE_LATENCY, RUNS_IN_PROGRESS):
        with contextlib.suppress(KeyError):
            metric.remove(namespace, plan, run)
