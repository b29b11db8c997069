"""`make demo`: the modeldr operator end to end on the local sandbox.

1. The sandbox comes up (hub, primary, standby, the process runtime, Prometheus), the tiny
   trained review classifier (tests/fixtures/models/tiny-review-bert, `modeldr-serve
   train-tiny`) is copied to /tmp/modeldr/models/tiny-bert, and the operator starts
   (`sandbox.operator_up`: the Helm chart in the hub, the member clusters registered as
   Secrets, `modeldr operator` running with the chart's ServiceAccount; log in
   .sandbox/logs/operator.log).
2. `examples/sandbox/modeldeployment.yaml` is applied to the hub; the operator renders a
   Deployment, Service and PodDisruptionBudget in both member clusters (2 replicas each, real
   `modeldr-serve` processes) and a Service `tiny-bert` with an EndpointSlice in the hub that
   lists the active cluster's ready pods.
3. A client sends 20 requests/s to /predict. It finds the pods only through the hub's
   EndpointSlice: it re-resolves after every error and at least every second.
4. Mid-traffic, the whole primary cluster goes down (pods SIGKILLed, control plane stopped).
   The operator notices, switches the hub's EndpointSlice to standby, and the client follows.
   The demo prints the timeline, the client-observed RTO, the operator's status.lastFailover
   and the ModelDeployment's Events.
5. Prometheus's view: requests per cluster, and the operator's modeldr_failovers_total when
   the sandbox Prometheus scrapes the operator.
6. Primary is restored; once its replicas are Ready again the demo fails back by annotating
   the ModelDeployment `modeldr.io/switch-to=primary`, and the client returns to primary.
7. Events and Prometheus after the fail back.
8. The drill: `examples/sandbox/golden-set.yaml` is applied, then the CLI runs the example
   plan: `modeldr drill run examples/sandbox/drillplan.yaml --wait --junit ... --report ...`
   (sandbox/demo_drill.py) applies it, and follows the DrillRun the operator runs (steady
   state, a pod kill, a whole-primary outage through the sandbox's infrastructure webhook,
   recovery, failback, the final steady state, with a Prometheus gate and model checks on
   the golden set) live; the demo prints the verdict and the paths of the HTML report and the
   JUnit file (.sandbox/drill-report/), and fails unless the drill Passed.
9. The model loop (sandbox/demo_loop.py, docs/models.md): the evaluation the operator made
   after the failover (spec.evaluation), then `examples/sandbox/rollout-bad.yaml` (a worse
   version: rolled back on the standby, the primary untouched) and `rollout-good.yaml`
   (promoted to both clusters), each followed with `modeldr rollout status --wait`, then the
   example's version again.
10. A Markdown report goes to .sandbox/demo-report.md.

The sandbox and the operator stay up at the end (`make operator-down`, `make sandbox-down`).
Every wait and the client are bounded; a wait that runs out exits non-zero and says which.
All traffic goes to loopback pod addresses (127.0.0.0/8) found through EndpointSlices; the
primary is always restored if the demo took it down.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from kubernetes import client

from modeldr.drills.probe import TrafficProbe
from modeldr.drills.probe_stats import ProbeSample
from modeldr.kube.constants import GROUP, MODELDEPLOYMENTS, SWITCH_ANNOTATION, VERSION
from sandbox import demo_drill, demo_loop, kube, probe, prometheus
from sandbox.api import Sandbox
from sandbox.config import REPO_ROOT, sandbox_paths
from sandbox.operator_up import (
    METRICS_PORT,
    TINY_MODEL_FIXTURE,
    ensure_tiny_model,
    operator_log,
    operator_up,
)
from sandbox.probe import hub_traffic, infer, serving_addresses

log = logging.getLogger("demo")

NAMESPACE = "modeldr-demo"  # the ModelDeployment's hub namespace (and its members')
NAME = "tiny-bert"  # ModelDeployment, and the hub Service the endpointslice provider keeps
MODEL_DIR = Path("/tmp/modeldr/models/tiny-bert")  # spec.model.source of the example
EXAMPLE = REPO_ROOT / "examples" / "sandbox" / "modeldeployment.yaml"
GOLDEN = REPO_ROOT / "examples" / "sandbox" / "golden-set.yaml"
PLURAL = MODELDEPLOYMENTS
PORT = 8080
REPLICAS = 2

RATE = 20  # client requests per second
TRAFFIC_MAX_SECONDS = 120.0  # the client stops by itself after this, whatever happens
RESOLVE_EVERY = 1.0  # seconds between EndpointSlice lookups while requests succeed
REQUEST_TIMEOUT = 2.0
TRAFFIC_BEFORE_OUTAGE = 3.0
STEP = 3  # seconds between points of the Prometheus range query

READY_TIMEOUT = 180.0  # ModelDeployment Ready, 2 + 2 replicas
FAILOVER_TIMEOUT = 60.0  # outage -> activeCluster standby and the client served by standby
RESTORE_TIMEOUT = 180.0  # primary restored -> its 2 replicas Ready
FAILBACK_TIMEOUT = 60.0  # switch-to=primary -> activeCluster primary, client served by primary


class DemoTimeout(Exception):
    """A bounded wait ran out."""


# --- the hub's view -------------------------------------------------------------------------


def custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube.api_client("hub"))


def get_md() -> dict[str, Any] | None:
    try:
        body: dict[str, Any] = custom().get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, NAME, _request_timeout=5
        )
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return body


def columns(md: dict[str, Any]) -> tuple[str, str, str, str]:
    """`kubectl get md` columns: Active, Primary Ready, Standby Ready, Phase."""
    status = md.get("status") or {}
    return (
        str(status.get("activeCluster") or "-"),
        str((status.get("primary") or {}).get("readyReplicas", "-")),
        str((status.get("standby") or {}).get("readyReplicas", "-")),
        str(status.get("phase") or "-"),
    )


HEADER = f"{'':>9}  {'NAME':<10} {'ACTIVE':<8} {'PRIMARY READY':<14} {'STANDBY READY':<14} PHASE"


def md_line(md: dict[str, Any], elapsed: float) -> str:
    active, primary, standby, phase = columns(md)
    return f"{elapsed:>+8.1f}s  {NAME:<10} {active:<8} {primary:<14} {standby:<14} {phase}"


def ready_replicas(md: dict[str, Any], role: str) -> int:
    return int(((md.get("status") or {}).get(role) or {}).get("readyReplicas") or 0)


def active_cluster(md: dict[str, Any]) -> str:
    return str((md.get("status") or {}).get("activeCluster") or "")


def watch_md(
    predicate: Callable[[dict[str, Any]], bool],
    *,
    timeout: float,
    what: str,
    extra: Callable[[], bool] = lambda: True,
) -> dict[str, Any]:
    """Poll the ModelDeployment every second, print a line whenever its columns change, and
    return it once `predicate(md)` and `extra()` hold; DemoTimeout after `timeout` seconds."""
    print(HEADER, flush=True)
    started = time.monotonic()
    last: tuple[str, ...] | None = None
    last_error = ""
    while True:
        elapsed = time.monotonic() - started
        md: dict[str, Any] | None = None
        try:
            md = get_md()
        except Exception as exc:  # the hub stays up; a transient error is retried
            last_error = f"{type(exc).__name__}: {exc}"[:200]
        if md is not None:
            shown = columns(md)
            if shown != last:
                print(md_line(md, elapsed), flush=True)
                last = shown
            try:
                if predicate(md) and extra():
                    return md
            except DemoTimeout:
                raise
            except Exception as exc:  # e.g. a member apiserver still starting
                last_error = f"{type(exc).__name__}: {exc}"[:200]
        if elapsed > timeout:
            state = " ".join(columns(md)) if md else "ModelDeployment missing"
            detail = f"; last error: {last_error}" if last_error else ""
            raise DemoTimeout(
                f"timed out after {timeout:.0f}s waiting for {what} (now: {state}{detail})"
            )
        time.sleep(1.0)


def kubectl(*args: str) -> str:
    command = [
        os.environ.get("MODELDR_KUBECTL", "kubectl"),
        f"--kubeconfig={sandbox_paths().kubeconfig}",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:1] + list(args))} failed: {result.stderr.strip()}")
    return result.stdout


def ensure_hub_namespace() -> None:
    try:
        kube.core("hub").create_namespace({"metadata": {"name": NAMESPACE}})
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def annotate_switch(to: str) -> None:
    custom().patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        PLURAL,
        NAME,
        {"metadata": {"annotations": {SWITCH_ANNOTATION: to}}},
        _request_timeout=5,
    )


def md_events(since: float) -> list[tuple[datetime, str, str, str]]:
    """(time, type, reason, message) of the ModelDeployment's Events since `since` (epoch)."""
    events = (
        kube.core("hub")
        .list_namespaced_event(
            NAMESPACE,
            field_selector=f"involvedObject.kind=ModelDeployment,involvedObject.name={NAME}",
            _request_timeout=5,
        )
        .items
    )
    rows = []
    for event in events:
        when = event.last_timestamp or event.event_time or event.first_timestamp
        if when is None or when.timestamp() < since:
            continue
        rows.append((when, str(event.type), str(event.reason), str(event.message or "")))
    return sorted(rows, key=lambda row: row[0])


def is_condition_event(reason: str) -> bool:
    """The operator posts an Event per condition change (ReadyTrue, DegradedFalse...)."""
    return reason.endswith(("True", "False"))


# --- the client: the drills' TrafficProbe (the hub EndpointSlice is the only way to pods) ---


def resolve() -> list[str]:
    """Ready addresses of the hub Service `tiny-bert` (loopback only)."""
    return [
        a for a in kube.ready_endpoint_addresses("hub", NAMESPACE, NAME) if a.startswith("127.")
    ]


def serving(cluster: str) -> list[str]:
    """Pods of the member Service whose server answers ready (admin view, for waits only)."""
    return serving_addresses(cluster, NAMESPACE, NAME, PORT)


def first_success(traffic: TrafficProbe, cluster: str, after: float) -> ProbeSample | None:
    found = probe.first_success(traffic.samples(), cluster, after)
    if found is None and traffic.stopped_by_itself:
        raise DemoTimeout(f"the client stopped by itself after {TRAFFIC_MAX_SECONDS:.0f} s")
    return found


# --- Prometheus -----------------------------------------------------------------------------


def query_range(expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    """Range query against the sandbox Prometheus (127.0.0.1); the result matrix."""
    params = urlencode({"query": expr, "start": start, "end": end, "step": step})
    url = f"{prometheus.base_url()}/api/v1/query_range?{params}"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus query {expr!r} failed: {body}")
    return list(body["data"]["result"])


def prometheus_view(since: float) -> list[str]:
    """Requests per cluster as the sandbox Prometheus scraped them from the model servers,
    and the operator's failover counter if Prometheus scrapes the operator."""
    selector = f'{{namespace="{NAMESPACE}", route="/predict"}}'
    window = max(10, math.ceil(time.time() - since))
    rate = f"sum by (cluster) (rate(modeldr_serve_requests_total{selector}[10s]))"
    total = f"sum by (cluster, code) (increase(modeldr_serve_requests_total{selector}[{window}s]))"
    lines = []
    try:
        lines.append(f"{rate}, every {STEP} s since the client started:")
        series = {
            str(s["metric"].get("cluster")): {float(t): float(v) for t, v in s["values"]}
            for s in query_range(rate, since, time.time(), STEP)
        }
        steps = sorted({t for values in series.values() for t in values})
        clusters = sorted(series)
        if steps:
            lines.append("  time      " + " ".join(f"{c:>9}" for c in clusters) + "  (req/s)")
        for t in steps:
            row = " ".join(
                f"{series[c][t]:>9.1f}" if t in series[c] else f"{'-':>9}" for c in clusters
            )
            lines.append(f"  {datetime.fromtimestamp(t).strftime('%H:%M:%S')}  {row}")
        if not steps:
            lines.append("  (no series)")
        lines.append(f"{total}:")
        samples = prometheus.query(total)
        for s in sorted(samples, key=lambda s: str(s["metric"])):
            metric = s["metric"]
            lines.append(
                f"  cluster={metric.get('cluster')} code={metric.get('code')}: "
                f"~{float(s['value'][1]):.0f} requests"
            )
        if not samples:
            lines.append("  (no series)")
        failovers = prometheus.query(
            f'modeldr_failovers_total{{namespace="{NAMESPACE}", modeldeployment="{NAME}"}}'
        )
        lines.append("modeldr_failovers_total (the operator's counter):")
        for s in failovers:
            metric = s["metric"]
            lines.append(
                f"  {metric.get('from_cluster')} -> {metric.get('to_cluster')} "
                f"({metric.get('trigger')}): {float(s['value'][1]):.0f}"
            )
        if not failovers:
            lines.append("  (no series: the sandbox Prometheus does not scrape the operator)")
            lines += operator_metrics_view()
    except Exception as exc:
        lines.append(f"Prometheus query failed: {type(exc).__name__}: {exc}")
    return lines


def operator_metrics_view() -> list[str]:
    """modeldr_failovers_total straight from the operator's /metrics (127.0.0.1)."""
    url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except Exception as exc:
        return [f"  {url} did not answer: {type(exc).__name__}: {exc}"]
    found = [
        line
        for line in text.splitlines()
        if line.startswith("modeldr_failovers_total{")
        and f'modeldeployment="{NAME}"' in line
        and f'namespace="{NAMESPACE}"' in line
    ]
    return [f"  from the operator's own {url}:"] + [f"    {line}" for line in found or ["(none)"]]


# --- the demo -------------------------------------------------------------------------------


def clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%H:%M:%S.%f")[:-3]


def parse_time(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class Timeline:
    rows: list[tuple[float, str]]

    def add(self, at: float, what: str) -> None:
        self.rows.append((at, what))
        log.info("%s", what)

    def lines(self, origin: float | None) -> list[str]:
        out = []
        for at, what in sorted(self.rows, key=lambda row: row[0]):  # stable: ties keep order
            relative = f"{at - origin:+7.2f}s" if origin is not None else ""
            out.append(f"{clock(at)} {relative}  {what}")
        return out


STEPS = 9  # the numbered parts of the demo (module docstring)


def step(n: int, title: str) -> None:
    print(f"\n== {n}/{STEPS} {title}", flush=True)


def run_demo(sandbox: Sandbox, report: dict[str, Any]) -> None:
    timeline = Timeline([])
    report["timeline"] = timeline
    started = time.time()

    step(1, "sandbox, tiny BERT, operator")
    sandbox.up()
    digest = ensure_tiny_model(MODEL_DIR)
    print(
        f"model: {MODEL_DIR} (the tiny review classifier `modeldr-serve train-tiny` trained,"
        f" committed as {TINY_MODEL_FIXTURE.relative_to(REPO_ROOT)}; sha256:{digest})"
    )
    # operator_up publishes it (and the rollout examples' versions) to the sandbox's object
    # stores: the example serves s3://models/tiny-bert, each region from its own store.
    operator_up()

    step(2, f"kubectl --context hub apply -n {NAMESPACE} -f {EXAMPLE.relative_to(REPO_ROOT)}")
    ensure_hub_namespace()
    print(kubectl("--context", "hub", "apply", "-n", NAMESPACE, "-f", str(EXAMPLE)).strip())
    # The golden set its spec.evaluation reads: the failover below is evaluated on it.
    print(kubectl("--context", "hub", "apply", "-n", NAMESPACE, "-f", str(GOLDEN)).strip())
    md = watch_md(
        lambda md: (
            columns(md)[3] == "Ready"
            and ready_replicas(md, "primary") == REPLICAS
            and ready_replicas(md, "standby") == REPLICAS
        ),
        timeout=READY_TIMEOUT,
        what=f"{NAME} Ready with {REPLICAS} replicas in primary and standby",
    )
    if active_cluster(md) != "primary":  # a previous run left traffic on standby
        print(f"traffic is on {active_cluster(md)}; switching it back to primary first")
        annotate_switch("primary")
        watch_md(
            lambda md: active_cluster(md) == "primary",
            timeout=FAILBACK_TIMEOUT,
            what="activeCluster primary",
        )
    addresses = resolve()
    print(f"hub EndpointSlice of Service {NAME}: {', '.join(addresses)}")
    if not addresses:
        raise DemoTimeout(f"the hub EndpointSlice of {NAME} lists no ready address")
    answer = infer(addresses[0], "the standby must take over", PORT)
    print(f"sample answer: {json.dumps(answer)[:160]}")

    step(3, f"client: {RATE} req/s, endpoints from the hub EndpointSlice only")
    traffic = hub_traffic(
        NAMESPACE,
        NAME,
        rate=RATE,
        max_seconds=TRAFFIC_MAX_SECONDS,
        refresh_s=RESOLVE_EVERY,
        timeout_s=REQUEST_TIMEOUT,
    )
    report["client"] = traffic
    traffic.start()
    traffic_started = time.time()
    timeline.add(time.time(), "client started")
    time.sleep(TRAFFIC_BEFORE_OUTAGE)

    step(4, "whole-primary outage mid-traffic")
    outage_at = time.time()
    report["outage_at"] = outage_at
    timeline.add(outage_at, "primary outage begins (pods SIGKILLed, control plane stopped)")
    report["outage_started"] = True
    sandbox.outage("primary")
    timeline.add(time.time(), "primary's pods dead and control plane stopped (outage() returned)")
    md = watch_md(
        lambda md: active_cluster(md) == "standby",
        timeout=FAILOVER_TIMEOUT,
        what="the operator to fail over to standby (status.activeCluster == standby)",
        extra=lambda: first_success(traffic, "standby", outage_at) is not None,
    )
    samples = traffic.samples()
    last_primary = probe.last_success(samples, "primary", outage_at + FAILOVER_TIMEOUT)
    first_standby = probe.first_success(samples, "standby", outage_at)
    assert first_standby is not None  # watch_md waited for it
    if last_primary is not None:
        timeline.add(last_primary.sent_at, "last success on primary (request sent)")
        report["rto"] = first_standby.sent_at - last_primary.sent_at
    timeline.add(first_standby.sent_at, "first success on standby (request sent)")
    report["outage_to_standby"] = first_standby.sent_at - outage_at
    last_failover = dict((md.get("status") or {}).get("lastFailover") or {})
    report["last_failover"] = last_failover
    for key, label in (
        ("failureTime", "operator: first failed health check of primary (1 s precision)"),
        ("detectedTime", "operator: primary declared down (1 s precision)"),
        ("switchedTime", "operator: hub EndpointSlice switched to standby (1 s precision)"),
    ):
        at = parse_time(last_failover.get(key))
        if at is not None:
            timeline.add(at, label)
    failed_during = [
        s for s in samples if not s.ok and outage_at <= s.sent_at <= first_standby.sent_at
    ]
    report["failed_during_outage"] = len(failed_during)
    print("\nTimeline (relative to the outage):")
    for line in timeline.lines(outage_at):
        print("  " + line)
    rto = report.get("rto")
    print(
        "\nclient-observed RTO (last success on primary -> first success on standby): "
        + (f"{rto:.2f} s" if rto is not None else "n/a (no success on primary before)")
    )
    print(f"outage -> first success on standby: {report['outage_to_standby']:.2f} s")
    print(f"requests that failed meanwhile: {len(failed_during)}")
    print(
        "operator status.lastFailover: "
        + ", ".join(
            f"{k}={last_failover[k]}"
            for k in ("from", "to", "detectionSeconds", "switchSeconds", "totalSeconds")
            if k in last_failover
        )
    )
    print(f"  reason: {last_failover.get('reason', '-')}")

    time.sleep(6)  # a few scrapes of the standby's servers, two steps of the range query
    step(5, "what Prometheus saw")
    report["prometheus_failover"] = prometheus_view(traffic_started)
    for line in report["prometheus_failover"]:
        print("  " + line)

    step(6, "restore primary, then fail back (annotation modeldr.io/switch-to=primary)")
    restore_at = time.time()
    sandbox.restore("primary")
    report["outage_started"] = False
    timeline.add(time.time(), f"primary restored (took {time.time() - restore_at:.1f} s)")
    watch_md(
        lambda md: (
            ready_replicas(md, "primary") == REPLICAS
            and bool(((md.get("status") or {}).get("primary") or {}).get("reachable"))
        ),
        timeout=RESTORE_TIMEOUT,
        what=f"{REPLICAS} Ready replicas in primary again",
        # The status keeps the last readyReplicas it saw; ask the restarted servers too.
        extra=lambda: len(serving("primary")) == REPLICAS,
    )
    timeline.add(time.time(), f"primary has {REPLICAS} Ready replicas again")
    failback_at = time.time()
    annotate_switch("primary")
    timeline.add(failback_at, f"annotated {SWITCH_ANNOTATION}=primary")
    md = watch_md(
        lambda md: (
            active_cluster(md) == "primary"
            and SWITCH_ANNOTATION not in ((md.get("metadata") or {}).get("annotations") or {})
        ),
        timeout=FAILBACK_TIMEOUT,
        what="fail back: activeCluster primary and the switch-to annotation removed",
        extra=lambda: first_success(traffic, "primary", failback_at) is not None,
    )
    back = probe.first_success(traffic.samples(), "primary", failback_at)
    assert back is not None
    timeline.add(back.sent_at, "first success on primary again (request sent)")
    report["failback_to_primary"] = back.sent_at - failback_at
    failback = dict((md.get("status") or {}).get("lastFailover") or {})
    report["last_failback"] = failback
    if failback.get("failureTime") and failback.get("failureTime") == last_failover.get(
        "failureTime"
    ):
        report["failback_note"] = (
            "failureTime, detectedTime and the *Seconds fields here repeat the failover's: "
            "the operator carried them over into this manual switch"
        )
        print(f"note: status.lastFailover after the fail back: {report['failback_note']}")
    print(f"fail back: annotation -> first success on primary: {back.sent_at - failback_at:.2f} s")
    time.sleep(8)  # traffic on primary again, long enough for Prometheus to see it
    traffic.stop()
    timeline.add(time.time(), "client stopped")

    step(7, "Events, Prometheus after the fail back, report")
    events = md_events(started - 5)
    report["events"] = events
    print(f"\nEvents of the ModelDeployment (kubectl --context hub get events -n {NAMESPACE}),")
    print("condition transitions (reasons ending in True/False) left out:")
    for when, kind, reason, message in events:
        if not is_condition_event(reason):
            stamp = when.astimezone().strftime("%H:%M:%S")
            print(f"  {stamp} {kind:<8} {reason:<20} {message[:120]}")
    report["prometheus_end"] = prometheus_view(traffic_started)
    for line in report["prometheus_end"]:
        print("  " + line)

    step(8, "the drill: modeldr drill run examples/sandbox/drillplan.yaml --wait")
    drill = demo_drill.run_drill(NAMESPACE)
    report["drill_result"] = drill
    if drill.markdown.exists():
        report["drill"] = drill.markdown.read_text().splitlines()
    print()
    print(f"drill verdict: {drill.verdict} (modeldr drill run exited {drill.exit_code})")
    for what, path in (("HTML report", drill.html), ("JUnit XML", drill.junit)):
        print(f"{what}: {path}" if path.exists() else f"{what}: not written")
    if drill.exit_code != 0:
        raise demo_drill.DrillFailed(
            f"the drill ended {drill.verdict} (exit {drill.exit_code}); see {drill.html}"
        )

    step(9, "the model loop: a worse version rolled back on the standby, a good one promoted")
    loop_started = time.monotonic()
    report["loop"] = demo_loop.run_loop(NAMESPACE, NAME).lines
    report["loop_seconds"] = time.monotonic() - loop_started
    print(f"the model loop took {report['loop_seconds']:.0f} s")


def write_report(report: dict[str, Any], path: Path, error: str | None) -> None:
    traffic: TrafficProbe | None = report.get("client")
    samples = traffic.samples() if traffic else []
    outage_at: float | None = report.get("outage_at")
    timeline: Timeline | None = report.get("timeline")
    lf: dict[str, Any] = report.get("last_failover") or {}
    out = [
        "# modeldr demo report",
        "",
        f"Generated {datetime.now(UTC).isoformat(timespec='seconds')} by `make demo`: "
        f"ModelDeployment `{NAMESPACE}/{NAME}` (examples/sandbox/modeldeployment.yaml), "
        f"a client at {RATE} req/s resolving the hub EndpointSlice of Service `{NAME}`, "
        "a whole-primary outage, automatic failover, manual fail back.",
        "",
        f"**Result: {'FAILED: ' + error if error else 'passed'}**",
        "",
        "## Figures",
        "",
        "| figure | value |",
        "| --- | --- |",
    ]

    def figure(name: str, value: Any, unit: str = " s") -> None:
        if isinstance(value, float):
            out.append(f"| {name} | {value:.2f}{unit} |")
        elif value is not None:
            out.append(f"| {name} | {value} |")

    figure("client-observed RTO (last success on primary -> first on standby)", report.get("rto"))
    figure("outage -> first success on standby", report.get("outage_to_standby"))
    figure("operator detectionSeconds", lf.get("detectionSeconds"))
    figure("operator switchSeconds", lf.get("switchSeconds"))
    figure("operator totalSeconds (first failed check -> switched)", lf.get("totalSeconds"))
    figure("requests failed during the failover", report.get("failed_during_outage"))
    figure("fail back: annotation -> first success on primary", report.get("failback_to_primary"))
    ok = sum(s.ok for s in samples)
    by_cluster = {
        cluster: sum(s.ok and s.cluster == cluster for s in samples)
        for cluster in ("primary", "standby")
    }
    figure("requests sent", len(samples))
    figure(
        "requests ok", f"{ok} (primary {by_cluster['primary']}, standby {by_cluster['standby']})"
    )
    figure("requests failed", len(samples) - ok)
    if lf:
        out += ["", "## status.lastFailover (the failover)", "", "```json"]
        out += [json.dumps(lf, indent=2), "```"]
    if report.get("last_failback"):
        out += ["", "## status.lastFailover (after the fail back)", "", "```json"]
        out += [json.dumps(report["last_failback"], indent=2), "```"]
        if report.get("failback_note"):
            out += ["", f"Note: {report['failback_note']}."]
    if timeline:
        out += ["", "## Timeline (relative to the outage)", "", "```"]
        out += [*timeline.lines(outage_at), "```"]
    errors: dict[str, int] = {}
    for s in samples:
        if not s.ok:
            error = (s.error or "failed")[:120]
            errors[error] = errors.get(error, 0) + 1
    if errors:
        out += ["", "## Client errors", "", "| count | error |", "| --- | --- |"]
        out += [f"| {n} | `{e}` |" for e, n in sorted(errors.items(), key=lambda x: -x[1])]
    if report.get("events"):
        events = report["events"]
        hidden = sum(is_condition_event(r) for _, _, r, _ in events)
        out += ["", "## Events of the ModelDeployment", ""]
        out += [
            f"{hidden} condition-transition Events (reasons ending in True/False) left out.",
            "",
        ]
        out += ["| time | type | reason | message |", "| --- | --- | --- | --- |"]
        out += [
            f"| {w.astimezone().strftime('%H:%M:%S')} | {t} | {r} | {m.replace('|', '/')} |"
            for w, t, r, m in events
            if not is_condition_event(r)
        ]
    if report.get("drill"):
        out += ["", "## The drill (examples/sandbox/drillplan.yaml)", "", *report["drill"]]
    if report.get("loop"):
        took = f" ({report['loop_seconds']:.0f} s)" if report.get("loop_seconds") else ""
        out += ["", f"## The model loop{took}", "", "```", *report["loop"], "```"]
    for key, title in (
        ("prometheus_failover", "Prometheus during the outage"),
        ("prometheus_end", "Prometheus after the fail back"),
    ):
        if report.get(key):
            out += ["", f"## {title}", "", "```", *report[key], "```"]
    path.write_text("\n".join(out) + "\n")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("kubernetes").setLevel(logging.ERROR)
    sandbox = Sandbox()
    report: dict[str, Any] = {}
    error: str | None = None
    try:
        run_demo(sandbox, report)
    except (
        DemoTimeout,
        demo_drill.DrillTimeout,
        demo_drill.DrillFailed,
        demo_loop.LoopFailed,
        subprocess.TimeoutExpired,
    ) as exc:
        error = str(exc)
    except Exception as exc:
        traceback.print_exc()
        error = f"{type(exc).__name__}: {exc}"
    finally:
        traffic: TrafficProbe | None = report.get("client")
        if traffic is not None and traffic.running:
            traffic.stop()
        if report.get("outage_started"):
            print("restoring primary (the demo stopped during its outage)", flush=True)
            try:
                sandbox.restore("primary")
            except Exception as exc:
                print(f"restoring primary failed: {exc}; run `make sandbox-restore`", flush=True)
    path = sandbox_paths().root / "demo-report.md"
    if report.get("timeline") is not None:
        write_report(report, path, error)
    samples = traffic.samples() if traffic else []
    ok = sum(s.ok for s in samples)
    total = len(samples)
    if total:
        print(f"\nrequests: {total} sent, {ok} ok, {total - ok} failed")
    if report.get("timeline") is not None:
        print(f"report: {path}")
    drill: demo_drill.DrillResult | None = report.get("drill_result")
    if drill is not None:
        print(f"drill: {drill.verdict}; HTML report {drill.html}; JUnit {drill.junit}")
    print(
        "\nThe sandbox and the operator keep running: "
        "export KUBECONFIG=$PWD/.sandbox/kubeconfig; kubectl --context hub get md -A. "
        "Stop them with `make operator-down` and `make sandbox-down`."
    )
    if error:
        print(f"\ndemo FAILED: {error}", file=sys.stderr)
        print(f"operator log: {operator_log()}", file=sys.stderr)
        return 1
    print("\ndemo passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
