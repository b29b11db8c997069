"""The operator's Prometheus series (served on MODELDR_METRICS_PORT at /metrics).

Names are part of the chart's contract: the PrometheusRule alerts on modeldr_failovers_total,
modeldr_modeldeployment_serving and modeldr_modeldeployment_failover_ready.
"""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "modeldr_reconciles_total",
    "Reconciles of a ModelDeployment into its member clusters, by result.",
    ["namespace", "modeldeployment", "result"],
)
RECONCILE_ERRORS = Counter(
    "modeldr_reconcile_errors_total",
    "Reconcile errors, by member cluster and reason.",
    ["namespace", "modeldeployment", "cluster", "reason"],
)
RECONCILE_SECONDS = Histogram(
    "modeldr_reconcile_duration_seconds",
    "Time to apply a ModelDeployment's objects to its member clusters.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
HEALTH_CHECKS = Counter(
    "modeldr_health_checks_total",
    "Health checks of a member cluster for a ModelDeployment, by result (ok, failed).",
    ["namespace", "modeldeployment", "cluster", "result"],
)
FAILOVERS = Counter(
    "modeldr_failovers_total",
    "Switches of the active cluster, by direction and trigger (automatic, manual).",
    ["namespace", "modeldeployment", "from_cluster", "to_cluster", "trigger"],
)
FAILOVER_SECONDS = Histogram(
    "modeldr_failover_duration_seconds",
    "First failed health check to traffic switched, per failover.",
    buckets=(0.5, 1, 2, 3, 5, 7.5, 10, 15, 30, 60, 120),
)
ACTIVE_CLUSTER = Gauge(
    "modeldr_modeldeployment_active_cluster",
    "1 for the cluster that receives a ModelDeployment's traffic, 0 for the other.",
    ["namespace", "modeldeployment", "cluster"],
)
SERVING = Gauge(
    "modeldr_modeldeployment_serving",
    "1 when the active cluster has ready replicas behind the traffic provider.",
    ["namespace", "modeldeployment"],
)
FAILOVER_READY = Gauge(
    "modeldr_modeldeployment_failover_ready",
    "1 when the standby could take the traffic now (reachable, ready, capacity).",
    ["namespace", "modeldeployment"],
)
MEMBER_REACHABLE = Gauge(
    "modeldr_member_cluster_reachable",
    "1 when the member cluster's apiserver answered the last probe.",
    ["cluster"],
)
LEADER = Gauge("modeldr_leader", "1 while this replica holds the leader Lease.")
MODEL_VERIFIED = Gauge(
    "modeldr_model_verified",
    "1 when the model the active cluster serves passed its last evaluation (spec.evaluation), "
    "0 when it did not or could not be evaluated.",
    ["namespace", "modeldeployment", "cluster"],
)
MODEL_EVALUATION_SCORE = Gauge(
    "modeldr_model_evaluation_score",
    "The last evaluation's scores on the golden set (agreement, accuracy, precision, recall, "
    "f1), of the cluster it evaluated.",
    ["namespace", "modeldeployment", "cluster", "score"],
)
MODEL_EVALUATIONS = Counter(
    "modeldr_model_evaluations_total",
    "Evaluations of the model after a switch of the active cluster, by outcome (Verified, "
    "NotVerified, Unknown).",
    ["namespace", "modeldeployment", "cluster", "outcome"],
)


# The triggers a switch is counted under (tick.switch_traffic's kinds).
FAILOVER_TRIGGERS = ("automatic", "manual", "failback")


def zero_failovers(namespace: str, name: str, primary: str, standby: str) -> None:
    """Create a ModelDeployment's failover series at 0, so `increase()` in the chart's alert
    sees the first failover after an operator start (a series born at 1 shows no increase)."""
    for from_cluster, to_cluster in ((primary, standby), (standby, primary)):
        for trigger in FAILOVER_TRIGGERS:
            FAILOVERS.labels(namespace, name, from_cluster, to_cluster, trigger)


def forget(namespace: str, name: str) -> None:
    """Drop a deleted ModelDeployment's gauges so they do not report forever."""
    for gauge in (SERVING, FAILOVER_READY):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
    for family in (ACTIVE_CLUSTER, FAILOVERS):
        for labels in list(family._metrics):
            if labels[:2] == (namespace, name):
                family.remove(*labels)


BACKUP_RESULT = Gauge(
    "modeldr_backup_last_result",
    "1 when a ModelBackup's last run of the mode succeeded, 0 when it failed.",
    ["namespace", "modelbackup", "mode"],
)
BACKUP_LAST_SUCCESS = Gauge(
    "modeldr_backup_last_success_timestamp_seconds",
    "Unix time of a ModelBackup's last successful run of the mode (its age: time() - this).",
    ["namespace", "modelbackup", "mode"],
)
STANDBY_COPY_TIMESTAMP = Gauge(
    "modeldr_backup_standby_copy_timestamp_seconds",
    "Unix time the standby region's copy was last made equal to the source (the RPO: "
    "time() - this).",
    ["namespace", "modelbackup"],
)
