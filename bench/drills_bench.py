"""`make bench-drills`: what the drill engine costs and how fast it reacts, on the sandbox.

1. The example drill (examples/sandbox/drillplan.yaml: pod kill, primary outage, an
   immediate failback, a Prometheus gate, model checks) end to end: wall time, verdict, each step's
   measured rtoSeconds / errorRatio / p99LatencyMs, the time from the run's creation to
   Running (preflight) and from the last step's end to the verdict. The three example
   files are applied as they are into a fresh hub namespace, with two adaptations so that
   nothing collides with a demo or a test in `modeldr-demo`: the member namespace of both
   clusters is the hub namespace (as the drill tests' manifest helper does), and the gate's
   PromQL selects that namespace instead of `modeldr-demo`.
2. Abort latency: a plan with a 120 s NodeDrain of a primary node and an abort condition on
   Prometheus's clock (`time()`, condition `result[0] > T`), so the moment it starts to hold,
   T, is known; from T to the fault's `undoneAt` and to the run's `finishedAt`, repeated.
   DRILLS.md requires every fault undone within 5 s.
3. The probe's own cost at 50 requests/s: (a) the latency a plain sequential urllib client
   sees against one served model address vs what a TrafficProbe run in this process
   reports against the same address (interleaved rounds, same rate, same inputs); (b) the
   operator's CPU (utime + stime of its process) over a window inside a 20 s Wait step of a
   drill at ratePerSecond 50, and at 1 (the engine's fixed cost), vs idle windows.

Writes bench/results/drills.json and prints the figures. Uses the running sandbox and
operator (brings them up only when they are not running); removes the namespaces it
creates. Every loop is bounded in count and time; it dials only 127.x addresses.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import random
import resource
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from modeldr.drills.probe import TrafficProbe, url_resolver
from modeldr.kube.constants import (
    DRILLPLANS,
    DRILLRUNS,
    GROUP,
    MODELDEPLOYMENTS,
    SWITCH_ANNOTATION,
    VERSION,
)
from sandbox import kube, prometheus
from sandbox.api import Sandbox
from sandbox.config import CLUSTERS, REPO_ROOT
from sandbox.operator_up import operator_pid, operator_up
from sandbox.probe import server_ready, serving_addresses
from sandbox.tenants import delete_policy, policy_body, put_policy

RESULTS = REPO_ROOT / "bench" / "results" / "drills.json"
EXAMPLES = REPO_ROOT / "examples" / "sandbox"
GOLDEN_SET = EXAMPLES / "golden-set.yaml"
MODELDEPLOYMENT = EXAMPLES / "modeldeployment.yaml"
DRILLPLAN = EXAMPLES / "drillplan.yaml"
EXAMPLE_MEMBER_NAMESPACE = "modeldr-demo"
FINAL = ("Passed", "Failed", "Aborted", "Error", "Inconclusive")
PID_FILE = REPO_ROOT / ".sandbox" / "state" / "operator.pid"


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def loopback(address: str) -> str:
    """Every address this benchmark dials goes through here."""
    if not address.startswith("127."):
        raise ValueError(f"refusing to dial {address}: the sandbox is loopback only")
    return address


def custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube.api_client("hub", timeout=10))


def moment(value: Any) -> float | None:
    """An RFC 3339 timestamp of a status (microseconds when the engine wrote them) as epoch
    seconds."""
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def between(start: Any, end: Any) -> float | None:
    a, b = moment(start), moment(end)
    return None if a is None or b is None else round(b - a, 3)


def wait_for(
    predicate: Callable[[], Any], what: str, timeout: float, interval: float = 0.25
) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # a busy or restarting apiserver: try again
            last_error = exc
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


# --- the ModelDeployment under test ---------------------------------------------------------


def md_status(ns: str, name: str) -> dict[str, Any]:
    md = custom().get_namespaced_custom_object(GROUP, VERSION, ns, MODELDEPLOYMENTS, name)
    return dict(md.get("status") or {})


def settled(ns: str, name: str, replicas: int) -> bool:
    """Primary active, every replica ready in both clusters, the hub entry point lists the
    primary's servers only and each of them answers ready."""
    s = md_status(ns, name)
    hub = kube.ready_endpoint_addresses("hub", ns, name)
    return (
        s.get("phase") == "Ready"
        and s.get("activeCluster") == "primary"
        and (s.get("primary") or {}).get("readyReplicas") == replicas
        and (s.get("standby") or {}).get("readyReplicas") == replicas
        and len(hub) == replicas
        and all(a.startswith("127.1.") and server_ready(loopback(a)) for a in hub)
    )


def settle(ns: str, name: str, replicas: int, timeout: float = 300) -> None:
    """Back to a steady primary: a drill that caused a failover leaves the standby active
    (the example's failback is manual), so fail back by hand once the primary serves."""
    deadline = time.monotonic() + timeout
    wait_for(
        lambda: len(serving_addresses("primary", ns, name)) == replicas,
        "the primary serving every replica",
        timeout,
    )
    if md_status(ns, name).get("activeCluster") != "primary":
        log("failing back to the primary by hand")
        custom().patch_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            MODELDEPLOYMENTS,
            name,
            {"metadata": {"annotations": {SWITCH_ANNOTATION: "primary"}}},
        )
    wait_for(
        lambda: settled(ns, name, replicas),
        "a steady primary",
        max(10.0, deadline - time.monotonic()),
    )


def setup(ns: str) -> tuple[str, int]:
    """A hub namespace with the example golden set and ModelDeployment (member namespaces =
    the hub namespace); returns the ModelDeployment's name and replicas once it serves."""
    kube.core("hub").create_namespace({"metadata": {"name": ns}})
    put_policy(policy_body(ns))  # no policy: the namespace may place and drill nothing
    kube.core("hub").create_namespaced_config_map(ns, yaml.safe_load(GOLDEN_SET.read_text()))
    md = copy.deepcopy(yaml.safe_load(MODELDEPLOYMENT.read_text()))
    for role in ("primary", "standby"):
        md["spec"]["clusters"][role]["namespace"] = ns
    name, replicas = str(md["metadata"]["name"]), int(md["spec"]["replicas"])
    custom().create_namespaced_custom_object(GROUP, VERSION, ns, MODELDEPLOYMENTS, md)
    started = time.monotonic()
    wait_for(lambda: settled(ns, name, replicas), "the example ModelDeployment serving", 300)
    log(f"{ns}/{name} serving in both clusters after {time.monotonic() - started:.0f}s")
    return name, replicas


def teardown(ns: str, name: str) -> None:
    api = custom()
    with contextlib.suppress(client.ApiException):
        api.delete_collection_namespaced_custom_object(GROUP, VERSION, ns, DRILLPLANS)
    with contextlib.suppress(client.ApiException):
        api.delete_namespaced_custom_object(GROUP, VERSION, ns, MODELDEPLOYMENTS, name)

    def gone() -> bool:
        try:
            api.get_namespaced_custom_object(GROUP, VERSION, ns, MODELDEPLOYMENTS, name)
        except client.ApiException as exc:
            return bool(exc.status == 404)
        return False

    # The operator's finalizer removes the member objects first.
    with contextlib.suppress(TimeoutError):
        wait_for(gone, f"{ns}/{name} deleted", 120, interval=0.5)
    for cluster in CLUSTERS:
        with contextlib.suppress(Exception):
            kube.core(cluster).delete_namespace(ns)
    delete_policy(ns)
    log(f"namespace {ns} deleted in {', '.join(CLUSTERS)}")


# --- drills ----------------------------------------------------------------------------------


def run_object(ns: str, name: str) -> dict[str, Any]:
    with contextlib.suppress(client.ApiException):
        return dict(custom().get_namespaced_custom_object(GROUP, VERSION, ns, DRILLRUNS, name))
    return {}


def apply_plan(ns: str, body: dict[str, Any]) -> str:
    """Create the plan; the name of the run it starts (one per generation, no schedule)."""
    custom().create_namespaced_custom_object(GROUP, VERSION, ns, DRILLPLANS, body)
    return f"{body['metadata']['name']}-1"


def verdict(ns: str, run: str, timeout: float) -> tuple[dict[str, Any], float]:
    """The finished run and when this benchmark saw its verdict (epoch seconds)."""
    found: dict[str, Any] = wait_for(
        lambda: (o := run_object(ns, run)) and (o.get("status") or {}).get("phase") in FINAL and o,
        f"the verdict of {run}",
        timeout,
    )
    return found, time.time()


def plan(
    name: str, target: str, steps: list[dict[str, Any]], rate: float, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "target": {"modelDeployment": target},
        "traffic": {"ratePerSecond": rate, "timeoutMilliseconds": 2000},
        "steadyState": {"durationSeconds": 2, "maxErrorRatio": 0.0},
        "steps": steps,
        "blastRadius": {"maxPodsPercent": 50},
    }
    body.update(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DrillPlan",
        "metadata": {"name": name},
        "spec": body,
    }


def example_plan(ns: str) -> tuple[dict[str, Any], list[str]]:
    """examples/sandbox/drillplan.yaml with its gates' PromQL pointed at namespace `ns`."""
    body = copy.deepcopy(yaml.safe_load(DRILLPLAN.read_text()))
    changes = []
    old, new = f'namespace="{EXAMPLE_MEMBER_NAMESPACE}"', f'namespace="{ns}"'
    for gate in body["spec"].get("gates") or []:
        query = (gate.get("prometheus") or {}).get("query")
        if query and old in query:
            gate["prometheus"]["query"] = query.replace(old, new)
            changes.append(f"gate {gate['name']}: PromQL {old} -> {new}")
    return body, changes


def step_figures(step: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": step.get("name"),
        "phase": step.get("phase"),
        "reason": step.get("reason"),
        "duration_s": between(step.get("startedAt"), step.get("finishedAt")),
        "rtoSeconds": step.get("rtoSeconds"),
        "errorRatio": step.get("errorRatio"),
        "p99LatencyMs": step.get("p99LatencyMs"),
        "activeCluster": step.get("activeCluster"),
        "requests": step.get("requests"),
        "failedRequests": step.get("failedRequests"),
    }


def example_drill(ns: str) -> dict[str, Any]:
    body, changes = example_plan(ns)
    planned = body["spec"]["steadyState"]["durationSeconds"] * 2 + sum(
        s["durationSeconds"] for s in body["spec"]["steps"]
    )
    log(f"[example] applying {DRILLPLAN.name} ({planned}s of steady states and steps)")
    applied_at = time.time()
    name = apply_plan(ns, body)
    run, seen_at = verdict(ns, name, timeout=planned + 300)
    s = run["status"]
    steps = s.get("steps") or []
    steady = s.get("steadyState") or {}
    before, after = steady.get("before") or {}, steady.get("after") or {}
    started, finished = moment(s.get("startedAt")), moment(s.get("finishedAt"))
    last_end = moment(steps[-1].get("finishedAt")) if steps else None
    result = {
        "plan": str(DRILLPLAN.relative_to(REPO_ROOT)),
        "adaptations": [f"member namespace of both clusters: {ns} (the hub namespace)", *changes],
        "run": name,
        "verdict": s.get("phase"),
        "reason": s.get("reason"),
        "message": s.get("message"),
        "planned_s": planned,
        "wall_s": round(seen_at - applied_at, 2),
        "run_s": between(s.get("startedAt"), s.get("finishedAt")),
        "apply_to_running_s": round(started - applied_at, 3) if started else None,
        # creationTimestamp has whole seconds (Kubernetes): +-1 s.
        "created_to_running_s": between(run["metadata"]["creationTimestamp"], s.get("startedAt")),
        "steady_state_before_s": between(before.get("startedAt"), before.get("finishedAt")),
        "first_step_start_after_running_s": (
            between(s.get("startedAt"), steps[0].get("startedAt")) if steps else None
        ),
        "last_step_end_to_verdict_s": (
            round(finished - last_end, 3) if finished and last_end else None
        ),
        "steady_state_after_s": between(after.get("startedAt"), after.get("finishedAt")),
        "verdict_seen_after_finished_s": round(seen_at - finished, 2) if finished else None,
        "steps": [step_figures(step) for step in steps],
        "gates": [
            {k: g.get(k) for k in ("name", "phase", "successful", "failed")}
            for g in s.get("gates") or []
        ],
        "model_checks": [
            {k: c.get(k) for k in ("name", "phase", "agreement", "cluster")}
            for c in s.get("modelChecks") or []
        ],
        "faults": [
            {k: f.get(k) for k in ("type", "cluster", "state")} for f in s.get("faults") or []
        ],
    }
    log(f"[example] {result['verdict']} ({result['reason']}) in {result['wall_s']}s")
    return result


def abort_runs(ns: str, target: str, replicas: int, runs: int, lead_s: float) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for i in range(1, runs + 1):
        settle(ns, target, replicas)
        # The condition starts to hold at T on Prometheus's clock (this machine's): after
        # preflight and the 2 s steady state, while the node is drained. T at a random point
        # of the watch's 1 s evaluation cycle: a fixed lead would line T up with the same
        # point of the cycle every run (the watch starts with the run).
        at = round(time.time() + lead_s + random.uniform(0, 1), 1)
        body = plan(
            f"abort-{i}",
            target,
            [
                {
                    "name": "drain",
                    "fault": {"type": "NodeDrain", "cluster": "primary"},
                    "durationSeconds": 120,
                }
            ],
            rate=10,
            # Both of the primary's pods may be on one node (the first drain moves them).
            blastRadius={"maxPodsPercent": 100},
            abortConditions=[
                {
                    "name": "clock",
                    "prometheus": {"query": "time()"},
                    "condition": f"result[0] > {at:.1f}",
                }
            ],
        )
        name = apply_plan(ns, body)
        run, _ = verdict(ns, name, timeout=lead_s + 90)
        s = run["status"]
        faults = s.get("faults") or []
        applied = [moment(f.get("appliedAt")) for f in faults]
        undone = [moment(f.get("undoneAt")) for f in faults]
        finished = moment(s.get("finishedAt"))
        ok = (
            s.get("phase") == "Aborted"
            and s.get("reason") == "AbortConditionMet"
            and bool(faults)
            and all(a is not None and a < at for a in applied)
            and all(u is not None for u in undone)
        )
        result: dict[str, Any] = {
            "run": i,
            "verdict": s.get("phase"),
            "reason": s.get("reason"),
            "faults": [f"{f.get('type')} {f.get('state')}" for f in faults],
            "fault_on_before_T_s": round(at - min(a for a in applied if a), 3)
            if any(applied)
            else None,
            "T_to_all_undone_s": round(max(u for u in undone if u) - at, 3) if ok else None,
            "T_to_finished_s": round(finished - at, 3) if ok and finished else None,
            "abort_evaluations": [c.get("evaluations") for c in s.get("abortConditions") or []],
        }
        if not ok:
            result["discarded"] = "not an abort of an applied fault: " + json.dumps(
                {k: s.get(k) for k in ("phase", "reason", "message")}
            )
        log(f"[abort] run {i}/{runs}: {json.dumps(result)}")
        out.append(result)
    undone_s = [r["T_to_all_undone_s"] for r in out if r["T_to_all_undone_s"] is not None]
    finished_s = [r["T_to_finished_s"] for r in out if r["T_to_finished_s"] is not None]
    settle(ns, target, replicas)
    return {
        "plan": "NodeDrain of a primary node, 120 s, blastRadius 100%; abort condition time() > T "
        f"(T = apply + {lead_s:.0f} s + U(0, 1) s), 2 s steady state, probe 10/s",
        "target": "every fault undone within 5 s of the condition holding (DRILLS.md)",
        "summary": {
            "runs": len(out),
            "measured": len(undone_s),
            "T_to_all_undone_s_median": round(statistics.median(undone_s), 3) if undone_s else None,
            "T_to_all_undone_s_max": max(undone_s) if undone_s else None,
            "T_to_finished_s_median": (
                round(statistics.median(finished_s), 3) if finished_s else None
            ),
            "T_to_finished_s_max": max(finished_s) if finished_s else None,
            "within_5_s": bool(undone_s) and max(undone_s) < 5 and len(undone_s) == len(out),
        },
        "runs": out,
    }


# --- the probe's cost -------------------------------------------------------------------------


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    """The ceil(q*n)-th smallest (the probe's p99 definition)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def latency_figures(
    latencies: list[float], failed: int, cpu_s: float, seconds: float
) -> dict[str, Any]:
    ms = [x * 1000 for x in latencies]

    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    sent = len(latencies) + failed
    return {
        "requests": sent,
        "failed": failed,
        "achieved_rate_per_s": round(sent / seconds, 1) if seconds else None,
        "p50_ms": r(nearest_rank(ms, 0.50)),
        "p90_ms": r(nearest_rank(ms, 0.90)),
        "p99_ms": r(nearest_rank(ms, 0.99)),
        "max_ms": r(max(ms)) if ms else None,
        "mean_ms": r(statistics.fmean(ms)) if ms else None,
        "client_cpu_s_per_1000_requests": round(cpu_s / sent * 1000, 3) if sent else None,
    }


def process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bare_client(
    url: str, inputs: Sequence[str], rate: float, seconds: float
) -> tuple[list[float], int, float]:
    """Plain sequential urllib POST /predict at `rate` (request i due at start + i/rate; a
    late one is sent at once): latencies of the successes, failures, CPU seconds used."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    latencies: list[float] = []
    failed = 0
    cpu0 = process_cpu_s()
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        due = start + i / rate
        if time.monotonic() > start + seconds + 10:
            break  # a server that hangs does not hold the benchmark
        if (delay := due - time.monotonic()) > 0:
            time.sleep(delay)
        request = urllib.request.Request(
            url,
            data=json.dumps({"texts": [inputs[i % len(inputs)]]}).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            method="POST",
        )
        t0 = time.monotonic()
        try:
            with opener.open(request, timeout=2) as response:
                answer = json.loads(response.read())
            if response.status != 200 or len(answer.get("predictions") or []) != 1:
                failed += 1
                continue
        except Exception:
            failed += 1
            continue
        latencies.append(time.monotonic() - t0)
    return latencies, failed, process_cpu_s() - cpu0


def in_process_probe(
    url: str, inputs: Sequence[str], rate: float, seconds: float
) -> tuple[list[float], int, float, dict[str, int]]:
    """The drill engine's TrafficProbe, in this process, on a fixed URL."""
    cpu0 = process_cpu_s()
    probe = TrafficProbe(
        url_resolver(url), rate_per_second=rate, timeout_s=2.0, inputs=inputs, max_seconds=seconds
    )
    probe.start()
    probe.wait(seconds + 5)
    probe.stop()
    samples = probe.samples()
    counters = probe.counters()
    latencies = [s.latency for s in samples if s.ok]
    extra = {"skipped": counters.skipped, "saturated": counters.saturated}
    return latencies, len(samples) - len(latencies), process_cpu_s() - cpu0, extra


def probe_latency(ns: str, target: str, rate: float, seconds: float, rounds: int) -> dict[str, Any]:
    address = loopback(sorted(serving_addresses("primary", ns, target))[0])
    port = int(yaml.safe_load(MODELDEPLOYMENT.read_text())["spec"]["runtime"]["port"])
    url = f"http://{address}:{port}/predict"
    inputs = list(yaml.safe_load(DRILLPLAN.read_text())["spec"]["traffic"]["inputs"])
    per_round = seconds / rounds
    bare: tuple[list[float], int, float] = ([], 0, 0.0)
    probe: tuple[list[float], int, float] = ([], 0, 0.0)
    extra: dict[str, int] = {"skipped": 0, "saturated": 0}
    log(
        f"[probe] {rounds} rounds of {per_round:.0f}s each, bare client then probe, {rate}/s "
        f"on {url}"
    )
    for _ in range(rounds):
        lat, failed, cpu = bare_client(url, inputs, rate, per_round)
        bare = (bare[0] + lat, bare[1] + failed, bare[2] + cpu)
        lat, failed, cpu, more = in_process_probe(url, inputs, rate, per_round)
        probe = (probe[0] + lat, probe[1] + failed, probe[2] + cpu)
        extra = {k: extra[k] + more[k] for k in extra}
    b = latency_figures(*bare, seconds=seconds)
    p = latency_figures(*probe, seconds=seconds) | extra

    def diff(key: str) -> float | None:
        return None if b[key] is None or p[key] is None else round(p[key] - b[key], 2)

    result = {
        "address": url,
        "rate_per_s": rate,
        "seconds_each": seconds,
        "bare_client": b,
        "traffic_probe": p,
        "probe_minus_bare_ms": {k: diff(k) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms")},
    }
    log(f"[probe] {json.dumps(result)}")
    return result


def operator_cpu_s(pid: int) -> float:
    """utime + stime of the operator process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_window(pid: int, start: float, end: float) -> dict[str, float]:
    """CPU seconds per second of the operator between two epoch moments."""
    if (delay := start - time.time()) > 0:
        time.sleep(delay)
    c0, t0 = operator_cpu_s(pid), time.monotonic()
    if (delay := end - time.time()) > 0:
        time.sleep(delay)
    c1, t1 = operator_cpu_s(pid), time.monotonic()
    return {
        "window_s": round(t1 - t0, 2),
        "cpu_s": round(c1 - c0, 3),
        "cpu_s_per_s": round((c1 - c0) / (t1 - t0), 4),
    }


def idle_cpu(pid: int, seconds: float) -> dict[str, float]:
    now = time.time()
    result = cpu_window(pid, now, now + seconds)
    log(f"[cpu] idle: {json.dumps(result)}")
    return result


def drill_cpu(ns: str, target: str, pid: int, rate: float, hold_s: int) -> dict[str, Any]:
    body = plan(
        f"cpu-{rate:g}",
        target,
        [{"name": "hold", "action": {"type": "Wait"}, "durationSeconds": hold_s}],
        rate=rate,
    )
    name = apply_plan(ns, body)
    started = wait_for(
        lambda: moment(
            ((run_object(ns, name).get("status") or {}).get("steps") or [{}])[0].get("startedAt")
        ),
        f"step hold of {name} started",
        120,
    )
    # A window inside the step: 1 s after its start to 1 s before its end.
    window = cpu_window(pid, max(time.time(), started + 1.0), started + hold_s - 1.0)
    run, _ = verdict(ns, name, timeout=hold_s + 60)
    s = run["status"]
    step = (s.get("steps") or [{}])[0]
    step_s = between(step.get("startedAt"), step.get("finishedAt"))
    sent_rate = (step.get("requests") or 0) / step_s if step_s else None
    result = {
        "rate_per_s": rate,
        "verdict": s.get("phase"),
        "step_requests": step.get("requests"),
        "step_s": step_s,
        "achieved_rate_per_s": round(sent_rate, 1) if sent_rate else None,
        **window,
    }
    log(f"[cpu] drill at {rate:g}/s: {json.dumps(result)}")
    return result


def operator_cpu(ns: str, target: str, rate: float, hold_s: int) -> dict[str, Any]:
    pid = operator_pid() or int(PID_FILE.read_text().strip())
    window = hold_s - 2
    idle_before = idle_cpu(pid, window)
    busy = drill_cpu(ns, target, pid, rate, hold_s)
    low = drill_cpu(ns, target, pid, 1, hold_s)
    idle_after = idle_cpu(pid, window)
    if (operator_pid() or pid) != pid:
        raise RuntimeError("the operator restarted during the CPU measurement")
    idle = (idle_before["cpu_s"] + idle_after["cpu_s"]) / (
        idle_before["window_s"] + idle_after["window_s"]
    )
    share = busy["cpu_s_per_s"]
    achieved = busy["achieved_rate_per_s"] or rate
    per_request_marginal = (share - low["cpu_s_per_s"]) / (achieved - 1)
    return {
        "pid": pid,
        "how": "utime+stime of /proc/<operator pid>/stat over a window from 1 s after the "
        f"{hold_s} s Wait step's start to 1 s before its end; idle: the same length, no drill",
        "idle": {"before": idle_before, "after": idle_after, "cpu_s_per_s": round(idle, 4)},
        "drill": busy,
        "drill_at_1_per_s": low,
        "cpu_s_per_s_during_drill": share,
        "cpu_s_per_s_above_idle": round(share - idle, 4),
        "cpu_s_per_1000_requests_above_idle": round((share - idle) / achieved * 1000, 3),
        "cpu_s_per_1000_requests_marginal": round(per_request_marginal * 1000, 3),
    }


# --- main ------------------------------------------------------------------------------------


def sandbox_running(sb: Sandbox) -> bool:
    status = sb.status()
    return all(status[c] == "running" for c in CLUSTERS) and bool(status["runtime"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--abort-runs", type=int, default=5, choices=range(1, 6))
    parser.add_argument(
        "--abort-lead", type=float, default=8.0, help="seconds from applying an abort plan to T"
    )
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--probe-seconds", type=float, default=20.0)
    parser.add_argument("--hold", type=int, default=20, help="the CPU drills' Wait step, s")
    args = parser.parse_args(argv)
    begun = time.monotonic()
    sb = Sandbox()
    if not sandbox_running(sb):
        sb.up()
    if not prometheus.ready():
        raise RuntimeError("the sandbox's Prometheus is not ready")
    operator_up()
    ns = f"bench-drills-{int(time.time()) % 10**6:06d}"
    target = str(yaml.safe_load(MODELDEPLOYMENT.read_text())["metadata"]["name"])
    try:
        target, replicas = setup(ns)
        example = example_drill(ns)
        settle(ns, target, replicas)
        latency = probe_latency(ns, target, args.rate, args.probe_seconds, rounds=4)
        settle(ns, target, replicas)
        cpu = operator_cpu(ns, target, args.rate, args.hold)
        aborts = abort_runs(ns, target, replicas, args.abort_runs, args.abort_lead)
    finally:
        teardown(ns, target)
    results: dict[str, Any] = {
        "benchmark": "drills",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "namespace": "a fresh hub namespace per benchmark run; member namespace = hub namespace",
        "example_drill": example,
        "abort": aborts,
        "probe_cost": {"latency": latency, "operator_cpu": cpu},
        "bench_wall_s": round(time.monotonic() - begun, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    summary = {
        "example_drill": {
            k: example[k]
            for k in (
                "verdict",
                "reason",
                "wall_s",
                "run_s",
                "planned_s",
                "apply_to_running_s",
                "created_to_running_s",
                "last_step_end_to_verdict_s",
            )
        }
        | {
            "steps": [
                {k: s[k] for k in ("name", "phase", "rtoSeconds", "errorRatio", "p99LatencyMs")}
                for s in example["steps"]
            ]
        },
        "abort": aborts["summary"],
        "probe_latency_ms": {
            "bare_p50_p99": [latency["bare_client"]["p50_ms"], latency["bare_client"]["p99_ms"]],
            "probe_p50_p99": [
                latency["traffic_probe"]["p50_ms"],
                latency["traffic_probe"]["p99_ms"],
            ],
        },
        "operator_cpu": {
            k: cpu[k]
            for k in (
                "cpu_s_per_s_during_drill",
                "cpu_s_per_s_above_idle",
                "cpu_s_per_1000_requests_above_idle",
                "cpu_s_per_1000_requests_marginal",
            )
        }
        | {"idle_cpu_s_per_s": cpu["idle"]["cpu_s_per_s"]},
        "bench_wall_s": results["bench_wall_s"],
    }
    print(json.dumps(summary, indent=2))
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
