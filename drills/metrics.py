"""The drills' Prometheus series, served by the operator with its own (on
MODELDR_METRICS_PORT).

- The probe: what the synthetic clients of each run saw, so gates and dashboards can use the
  same evidence as the verdict. Labelled by plan and run; a run's series are dropped a while
  after it ends (runs come and go: their labels must not pile up).
- Verdicts and schedules, per plan (plans are few and long-lived): runs ended by verdict,
  the last run's verdict, end time and RTO, the scheduler's next due time and its misses.
  The chart's dashboard and alerts (charts/modeldr/dashboards, templates/prometheusrule.yaml)
  read these names; tests/unit/test_observability.py checks that every name they use is
  defined here or in the operator's or the model server's registries.
"""

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
RUN_PHASE = Gauge(
    "modeldr_drill_run_phase",
    "1 for a DrillRun's current phase (Running, then its verdict), 0 for the others.",
    ["namespace", "plan", "run", "phase"],
)
# Keep a finished run's series this long, so the last scrape sees its final values.
FORGET_AFTER_S = 120.0

# Who started a run: its plan's schedule, or an apply / a person (`modeldr drill run`).
TRIGGERS = ("schedule", "manual")
RUNS = Counter(
    "modeldr_drill_runs_total",
    "DrillRuns ended, by verdict (phase), reason and trigger (schedule or manual).",
    ["namespace", "plan", "trigger", "verdict", "reason"],
)
LAST_VERDICT = Gauge(
    "modeldr_drill_last_verdict",
    "1 for the verdict and reason of the plan's last ended run of that trigger, 0 for the "
    "ones before it.",
    ["namespace", "plan", "trigger", "verdict", "reason"],
)
LAST_RUN_TIME = Gauge(
    "modeldr_drill_last_run_timestamp_seconds",
    "When the plan's last run of that trigger ended (Unix seconds).",
    ["namespace", "plan", "trigger"],
)
RTO = Gauge(
    "modeldr_drill_rto_seconds",
    "The worst step RTO (longest stretch without a successful probe request) of the plan's "
    "last ended run.",
    ["namespace", "plan"],
)
NEXT_SCHEDULE = Gauge(
    "modeldr_drill_next_schedule_timestamp_seconds",
    "When the plan's schedule next starts a run (Unix seconds); absent while suspended.",
    ["namespace", "plan"],
)
SCHEDULED_MISSED = Counter(
    "modeldr_drill_scheduled_missed_total",
    "Due times of a plan's schedule that started no run, by reason (StartingDeadlineExceeded, "
    "ConcurrencyForbidden, Superseded).",
    ["namespace", "plan", "reason"],
)


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
    for labels in list(RUN_PHASE._metrics):
        if labels[:3] == (namespace, plan, run):
            RUN_PHASE.remove(*labels)


def run_phase(namespace: str, plan: str, run: str, phase: str) -> None:
    """The run's phase gauge: 1 for `phase`, 0 for the others it had."""
    for labels in list(RUN_PHASE._metrics):
        if labels[:3] == (namespace, plan, run) and labels[3] != phase:
            RUN_PHASE.labels(*labels).set(0)
    RUN_PHASE.labels(namespace, plan, run, phase).set(1)


def run_ended(
    namespace: str,
    plan: str,
    trigger: str,
    verdict: str,
    reason: str | None,
    finished_at: float,
    rto_seconds: float | None,
) -> None:
    """A run's end, counted once by the caller."""
    RUNS.labels(namespace, plan, trigger, verdict, reason or "").inc()
    last_verdict(namespace, plan, trigger, verdict, reason, finished_at, rto_seconds)


def last_verdict(
    namespace: str,
    plan: str,
    trigger: str,
    verdict: str,
    reason: str | None,
    finished_at: float,
    rto_seconds: float | None,
) -> None:
    """The plan's last verdict gauges (also restored from its status after a restart, so an
    alert on a failed scheduled drill holds until the next run passes)."""
    for labels in list(LAST_VERDICT._metrics):
        if labels[:3] == (namespace, plan, trigger):
            LAST_VERDICT.labels(*labels).set(0)
    LAST_VERDICT.labels(namespace, plan, trigger, verdict, reason or "").set(1)
    LAST_RUN_TIME.labels(namespace, plan, trigger).set(finished_at)
    if rto_seconds is not None:
        RTO.labels(namespace, plan).set(rto_seconds)


def schedule_started(namespace: str, plan: str, reasons: tuple[str, ...]) -> None:
    """A scheduler's start: its miss counters exist at 0, so that the first miss is an
    increase() Prometheus sees (a counter born at 1 shows no increase)."""
    for reason in reasons:
        SCHEDULED_MISSED.labels(namespace, plan, reason)


def next_schedule(namespace: str, plan: str, at: float | None) -> None:
    if at is None:
        with contextlib.suppress(KeyError):
            NEXT_SCHEDULE.remove(namespace, plan)
    else:
        NEXT_SCHEDULE.labels(namespace, plan).set(at)


def forget_plan(namespace: str, plan: str) -> None:
    """Drop a deleted (or unscheduled) plan's per-plan gauges."""
    for gauge in (LAST_VERDICT, LAST_RUN_TIME, RTO, NEXT_SCHEDULE):
        for labels in list(gauge._metrics):
            if labels[:2] == (namespace, plan):
                gauge.remove(*labels)
