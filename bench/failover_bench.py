"""`make bench-failover`: failover timings and operator scale, on the sandbox.

1. Client-observed RTO for a whole-primary outage (apiserver stopped, pod processes killed):
   the product's traffic probe (the one a drill runs) sends 20 requests/s through the hub
   entry point (the endpointslice provider's EndpointSlice); RTO = last success on primary to
   first success on standby (sent times; the cluster is the slice's active-cluster). Hot and warm
   standby with the sandbox example's failover settings (health interval 1 s, threshold 3),
   and hot standby with the CRD's defaults (5 s, 3). The operator's own detection and switch
   durations come from status.lastFailover.
2. Scale: time for N ModelDeployments whose pods are plain kwok pods (no process
   annotation) to converge (phase Ready, one ready replica in each cluster), and the
   operator's resident memory then. Their pods serve nothing, so their client probe
   (failover.probe) is switched off: the probe's cost is part 3.
3. The client probe's cost (on by default): the example ModelDeployment (2 replicas per
   cluster, checks every 1 s) with the probe on and off in alternating windows: the
   operator's CPU (utime + stime of its process), its health checks per second and the
   probe's requests per second (GET /v2/health/ready, one per entry address per check).

Writes bench/results/failover.json and prints the figures. Uses the running sandbox and
operator (`make operator-up`); brings them up if needed. Every loop is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import random
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from modeldr.kube.constants import GROUP, MODELDEPLOYMENTS, SWITCH_ANNOTATION, VERSION
from sandbox import kube
from sandbox.api import Sandbox
from sandbox.config import OPERATOR_METRICS_PORT, REPO_ROOT
from sandbox.operator_up import ensure_tiny_model, operator_pid, operator_up
from sandbox.probe import (
    failures,
    first_success,
    hub_traffic,
    last_success,
    server_ready,
    serving_addresses,
)
from sandbox.tenants import policy_body, put_policy

RESULTS = REPO_ROOT / "bench" / "results" / "failover.json"
EXAMPLE = REPO_ROOT / "examples" / "sandbox" / "modeldeployment.yaml"
PLURAL = MODELDEPLOYMENTS
MODEL_DIR = Path("/tmp/modeldr/models/tiny-bert")


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube.api_client("hub", timeout=10))


def status(ns: str, name: str) -> dict[str, Any]:
    md = custom().get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    return dict(md.get("status") or {})


def wait(predicate: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except client.ApiException:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def primary_serving(ns: str, name: str, replicas: int) -> bool:
    return len(serving_addresses("primary", ns, name)) == replicas


def ensure_namespace(cluster: str, name: str) -> None:
    """The namespace; in the hub, with the TenantPolicy its ModelDeployments need."""
    try:
        kube.core(cluster).create_namespace({"metadata": {"name": name}})
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    if cluster == "hub":
        put_policy(policy_body(name))


def delete_and_wait(ns: str, name: str) -> None:
    try:
        custom().delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    except client.ApiException as exc:
        if exc.status == 404:
            return
        raise

    def gone() -> bool:
        try:
            custom().get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        except client.ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait(gone, f"{ns}/{name} deleted", 120)


def rto_runs(
    sandbox: Sandbox, label: str, failover: dict[str, Any], standby: dict[str, Any], runs: int
) -> list[dict[str, Any]]:
    ns = f"bench-{label}"
    name = "tiny-bert"
    ensure_namespace("hub", ns)
    md = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    md["metadata"]["namespace"] = ns
    md["spec"]["clusters"]["primary"]["namespace"] = ns
    md["spec"]["clusters"]["standby"] = {"cluster": "standby", "namespace": ns, **standby}
    md["spec"]["failover"] = failover
    delete_and_wait(ns, name)
    custom().create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, md)
    replicas = md["spec"]["replicas"]
    idle_standby = standby.get("replicas", replicas)

    def settled() -> bool:
        s = status(ns, name)
        return (
            s.get("activeCluster") == "primary"
            and (s.get("primary") or {}).get("readyReplicas") == replicas
            and (s.get("standby") or {}).get("readyReplicas") == idle_standby
            and all(a.startswith("127.1.") for a in kube.ready_endpoint_addresses("hub", ns, name))
            and len(kube.ready_endpoint_addresses("hub", ns, name)) == replicas
            # Not a stale Ready from the restored control plane: every server answers.
            and all(server_ready(a) for a in kube.ready_endpoint_addresses("hub", ns, name))
        )

    out = []
    try:
        for run in range(1, runs + 1):
            log(f"[{label}] run {run}/{runs}: waiting for a steady state")
            wait(settled, "primary active with all replicas ready", 240)
            probe = hub_traffic(ns, name, rate=20, max_seconds=120).start()
            try:
                # 3 s of traffic, then the outage at a random point of the check interval: a
                # fixed delay would line the failure up with the operator's tick every run.
                time.sleep(3 + random.uniform(0, float(failover["healthIntervalSeconds"])))
                outage_at = time.time()
                sandbox.outage("primary")
                try:
                    wait(
                        lambda p=probe, t=outage_at: (
                            first_success(p.samples(), "standby", t) is not None
                        ),
                        "first success on standby",
                        90,
                    )
                    samples = probe.samples()
                    last = last_success(samples, "primary", before=outage_at)
                    first = first_success(samples, "standby", outage_at)
                    last_primary = last.sent_at if last else None
                    first_standby = first.sent_at if first else None
                    if last_primary is None or first_standby is None:
                        log(
                            f"[{label}] run {run}: no success on primary before the outage; "
                            "discarded"
                        )
                    else:
                        lf = status(ns, name).get("lastFailover") or {}
                        result = {
                            "run": run,
                            "rto_s": round(first_standby - last_primary, 3),
                            "outage_to_first_standby_success_s": round(
                                first_standby - outage_at, 3
                            ),
                            "failed_requests": failures(probe.samples(), since=outage_at),
                            "operator_detection_s": lf.get("detectionSeconds"),
                            "operator_switch_s": lf.get("switchSeconds"),
                            "operator_total_s": lf.get("totalSeconds"),
                        }
                        log(f"[{label}] run {run}: {json.dumps(result)}")
                        out.append(result)
                finally:
                    sandbox.restore("primary")
            finally:
                probe.stop()
            # Fail back by hand (the sandbox example's failback mode is manual).
            wait(lambda: primary_serving(ns, name, replicas), "primary serving after restore", 240)
            custom().patch_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                PLURAL,
                name,
                {"metadata": {"annotations": {SWITCH_ANNOTATION: "primary"}}},
            )
            wait(lambda: status(ns, name).get("activeCluster") == "primary", "failback", 60)
    finally:
        delete_and_wait(ns, name)
    return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    if not runs:
        return {}
    rto = [r["rto_s"] for r in runs]
    detection = [r["operator_detection_s"] for r in runs if r["operator_detection_s"] is not None]
    switch = [r["operator_switch_s"] for r in runs if r["operator_switch_s"] is not None]
    return {
        "runs": len(runs),
        "rto_s_median": round(statistics.median(rto), 3),
        "rto_s_max": round(max(rto), 3),
        "rto_s_min": round(min(rto), 3),
        "detection_s_median": round(statistics.median(detection), 3) if detection else None,
        "switch_s_median": round(statistics.median(switch), 3) if switch else None,
    }


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def scale(count: int) -> dict[str, Any]:
    ns = "bench-scale"
    ensure_namespace("hub", ns)
    base = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    base["metadata"].pop("annotations", None)  # plain kwok pods: no process runtime
    base["metadata"]["namespace"] = ns
    base["spec"]["replicas"] = 1
    base["spec"]["resources"] = {"gpusPerReplica": 0, "cpu": "10m", "memory": "16Mi"}
    base["spec"]["clusters"]["primary"]["namespace"] = ns
    base["spec"]["clusters"]["standby"]["namespace"] = ns
    # kwok pods serve nothing: the client probe would (rightly) find no server answering.
    base["spec"]["failover"] = {
        "healthIntervalSeconds": 5,
        "failureThreshold": 3,
        "probe": {"enabled": False},
    }
    names = [f"scale-{i:03d}" for i in range(count)]
    api = custom()
    pid = operator_pid()
    rss_before = rss_mib(pid) if pid else None
    log(f"[scale] creating {count} ModelDeployments")
    started = time.monotonic()
    for name in names:
        md = copy.deepcopy(base)
        md["metadata"]["name"] = name
        api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, md)
    created = time.monotonic() - started

    def converged() -> int:
        items = api.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
        return sum(
            1
            for md in items
            if (md.get("status") or {}).get("phase") == "Ready"
            and ((md["status"].get("primary") or {}).get("readyReplicas") == 1)
            and ((md["status"].get("standby") or {}).get("readyReplicas") == 1)
        )

    deadline = time.monotonic() + 900
    done = 0
    while time.monotonic() < deadline:
        done = converged()
        if done == count:
            break
        log(f"[scale] {done}/{count} converged after {time.monotonic() - started:.0f}s")
        time.sleep(5)
    converge_s = time.monotonic() - started
    rss_after = rss_mib(pid) if pid else None
    result = {
        "modeldeployments": count,
        "converged": done,
        "create_s": round(created, 1),
        "converge_s": round(converge_s, 1),
        "operator_rss_mib_before": rss_before,
        "operator_rss_mib_converged": rss_after,
    }
    log(f"[scale] {json.dumps(result)}")
    log("[scale] deleting")
    for name in names:
        with contextlib.suppress(client.ApiException):
            api.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    wait(
        lambda: not api.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"],
        "scale ModelDeployments deleted",
        600,
    )
    return result


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def health_checks(ns: str, name: str) -> float:
    """modeldr_health_checks_total of one ModelDeployment, from the operator's /metrics."""
    url = f"http://127.0.0.1:{OPERATOR_METRICS_PORT}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "modeldr_health_checks_total"
        and sample.labels.get("namespace") == ns
        and sample.labels.get("modeldeployment") == name
    )


def probe_cost(window_s: float = 30.0, rounds: int = 2) -> dict[str, Any]:
    """The operator's CPU and the probe's requests per second, probe on vs off."""
    ns, name = "bench-probe", "probe-cost"
    for cluster in ("hub", "primary", "standby"):
        ensure_namespace(cluster, ns)
    md = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    md["metadata"]["name"], md["metadata"]["namespace"] = name, ns
    md["spec"]["clusters"]["primary"]["namespace"] = ns
    md["spec"]["clusters"]["standby"]["namespace"] = ns
    replicas = int(md["spec"]["replicas"])
    custom().create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, md)
    try:
        wait(
            lambda: (
                status(ns, name).get("phase") == "Ready"
                and (status(ns, name).get("standby") or {}).get("readyReplicas") == replicas
            ),
            "the probe-cost ModelDeployment Ready",
            300,
        )
        pid = operator_pid()
        assert pid, "no operator process"
        windows: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
        for _ in range(rounds):
            for mode in ("on", "off"):
                patch = {"spec": {"failover": {"probe": {"enabled": mode == "on"}}}}
                custom().patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, patch)
                time.sleep(5)  # the daemon sees the change
                cpu0, checks0, t0 = cpu_seconds(pid), health_checks(ns, name), time.monotonic()
                time.sleep(window_s)
                took = time.monotonic() - t0
                checks = (health_checks(ns, name) - checks0) / took
                window = {
                    "operator_cpu_percent": round(100 * (cpu_seconds(pid) - cpu0) / took, 2),
                    "health_checks_per_s": round(checks, 2),
                    # Each check of a cluster asks each of its `replicas` entry addresses.
                    "probe_requests_per_s": round(checks * replicas if mode == "on" else 0, 2),
                }
                log(f"[probe-cost] probe {mode}: {json.dumps(window)}")
                windows[mode].append(window)
    finally:
        delete_and_wait(ns, name)

    def mean(mode: str, key: str) -> float:
        return round(statistics.fmean(w[key] for w in windows[mode]), 2)

    result = {
        "modeldeployment": f"examples/sandbox/modeldeployment.yaml ({replicas} replicas per "
        "cluster, healthIntervalSeconds 1, probe: readiness, every entry address)",
        "window_s": window_s,
        "rounds": rounds,
        "operator_cpu_percent_probe_on": mean("on", "operator_cpu_percent"),
        "operator_cpu_percent_probe_off": mean("off", "operator_cpu_percent"),
        "probe_requests_per_s": mean("on", "probe_requests_per_s"),
        "health_checks_per_s": mean("on", "health_checks_per_s"),
        "windows": windows,
    }
    log(f"[probe-cost] {json.dumps({k: v for k, v in result.items() if k != 'windows'})}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--default-settings-runs", type=int, default=5)
    parser.add_argument(
        "--scale",
        type=int,
        default=200,
        help="ModelDeployments for the scale part; 0 keeps the scale figures already saved",
    )
    parser.add_argument(
        "--only-scale",
        action="store_true",
        help="measure only the scale part; keep the RTO figures already in the results file",
    )
    parser.add_argument(
        "--only-probe-cost",
        action="store_true",
        help="measure only the client probe's cost; keep the other figures in the results file",
    )
    args = parser.parse_args(argv)
    if args.only_probe_cost:
        Sandbox().up()
        ensure_tiny_model(MODEL_DIR)
        operator_up()
        kept_all: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        kept_all["probe_cost"] = probe_cost()
        RESULTS.write_text(json.dumps(kept_all, indent=2) + "\n")
        print(json.dumps(kept_all["probe_cost"], indent=2))
        return 0
    if args.only_scale:
        Sandbox().up()
        operator_up()
        kept: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        kept["scale"] = scale(args.scale)
        RESULTS.write_text(json.dumps(kept, indent=2) + "\n")
        print(json.dumps(kept["scale"], indent=2))
        return 0
    sandbox = Sandbox()
    sandbox.up()
    ensure_tiny_model(MODEL_DIR)  # the trained fixture the example pins (operator_up too)
    operator_up()
    cost = probe_cost()  # first: the probe-cost ModelDeployment alone on the sandbox
    example_failover = {"healthIntervalSeconds": 1, "failureThreshold": 3}
    crd_defaults = {"healthIntervalSeconds": 5, "failureThreshold": 3}
    series = {
        "hot": rto_runs(sandbox, "hot", example_failover, {"mode": "hot"}, args.runs),
        "warm": rto_runs(
            sandbox, "warm", example_failover, {"mode": "warm", "replicas": 1}, args.runs
        ),
    }
    if args.default_settings_runs:
        series["hot_crd_defaults"] = rto_runs(
            sandbox, "hot-defaults", crd_defaults, {"mode": "hot"}, args.default_settings_runs
        )
    results: dict[str, Any] = {
        "benchmark": "failover",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "probe": "the drills' TrafficProbe, 20 requests/s through the hub EndpointSlice; RTO = "
        "last success on primary to first success on standby",
        "settings": {
            "hot": example_failover | {"replicas": 2, "standby": "hot"},
            "warm": example_failover | {"replicas": 2, "standby": "warm, 1 replica"},
            "hot_crd_defaults": crd_defaults | {"replicas": 2, "standby": "hot"},
        },
        "target": "hot standby RTO <= 5 s (CRD defaults and the sandbox example's settings)",
        "summary": {k: summary(v) for k, v in series.items()},
        "runs": series,
    }
    results["probe_cost"] = cost
    if args.scale:
        results["scale"] = scale(args.scale)
    elif RESULTS.exists() and "scale" in (saved := json.loads(RESULTS.read_text())):
        results["scale"] = saved["scale"]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["summary"], indent=2))
    if "scale" in results:
        print(json.dumps(results["scale"], indent=2))
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
