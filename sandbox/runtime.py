"""The process runtime: runs pods annotated `sandbox.modeldr.io/run: process` as real
local processes bound to their pod IPs (inside 127.0.0.0/8), the way a kubelet would; a
`hostNetwork` pod (the node agent's DaemonSet) gets its node's address instead.

kwok is configured to disregard these pods, so this runtime alone owns their status:
phase, pod IP, readiness from the container's readinessProbe, restarts per
restartPolicy, termination (preStop, SIGTERM, grace period, SIGKILL) on deletion, and
`activeDeadlineSeconds` (past it the process is stopped and the pod Failed,
DeadlineExceeded, as the kubelet does).

It also carries out the sandbox's faults for the processes: a cluster outage (marker
file) or a failed node (node annotation) kills the processes at once, like power loss.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import http.client
import ipaddress
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from sandbox import kube
from sandbox.config import (
    CLUSTERS,
    FAILED_NODE_ANNOTATION,
    RUN_ANNOTATION,
    RUN_PROCESS,
    SANDBOX_ROOT_ENV,
    ClusterSpec,
    sandbox_paths,
)
from sandbox.podspec import (
    PodSpecError,
    Probe,
    ProbeTracker,
    container_argv,
    container_env,
    parse_probe,
    restart_backoff,
    should_restart,
    termination_message,
)

log = logging.getLogger("sandbox.runtime")

TICK = 0.2  # seconds between a worker's checks of its process and probes
LIST_INTERVAL = 0.5  # seconds between listings of a cluster's pods
CONFIG_RETRY_S = 2.0  # seconds between tries of a container config that could not be made


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_probe(probe: Probe, pod_ip: str, env: dict[str, str], source_ip: str = "") -> bool:
    """One probe attempt against the pod's IP (loopback), bounded by the probe's timeout.

    `source_ip` is the node's address: a kubelet probes its pods from the node itself, so
    a network fault that cuts clients off (and exempts the node, as real partitions do)
    leaves the probes, and so the endpoints' readiness, untouched.
    """
    source = (source_ip, 0) if source_ip else None
    try:
        if probe.kind == "httpGet":
            connection: http.client.HTTPConnection
            if probe.scheme.upper() == "HTTPS":
                # The kubelet does not verify a probe's certificate either.
                connection = http.client.HTTPSConnection(
                    pod_ip,
                    probe.port,
                    timeout=probe.timeout,
                    source_address=source,
                    context=ssl._create_unverified_context(),
                )
            else:
                connection = http.client.HTTPConnection(
                    pod_ip, probe.port, timeout=probe.timeout, source_address=source
                )
            try:
                connection.request("GET", probe.path, headers={"User-Agent": "kube-probe/sandbox"})
                return 200 <= connection.getresponse().status < 400
            finally:
                connection.close()
        if probe.kind == "tcpSocket":
            with socket.create_connection(
                (pod_ip, probe.port), timeout=probe.timeout, source_address=source
            ):
                return True
        if probe.kind == "exec":
            done = subprocess.run(
                list(probe.command),
                env={**os.environ, **env},
                timeout=probe.timeout,
                capture_output=True,
                check=False,
            )
            return done.returncode == 0
    except Exception:
        return False
    return False


class IPAllocator:
    """Hands out pod IPs from each node's process range; knows what is in use."""

    def __init__(self, spec: ClusterSpec) -> None:
        self._spec = spec
        self._used: set[str] = set()
        self._lock = threading.Lock()

    def reserve(self, ip: str) -> None:
        with self._lock:
            self._used.add(ip)

    def release(self, ip: str) -> None:
        with self._lock:
            self._used.discard(ip)

    def allocate(self, node_name: str) -> str:
        node = next((n for n in self._spec.nodes if n.name == node_name), None)
        if node is None:
            raise PodSpecError(f"node {node_name!r} is not a sandbox node of {self._spec.name}")
        network = ipaddress.ip_network(self._spec.process_pod_range(node))
        with self._lock:
            for host in network.hosts():
                ip = str(host)
                if ip not in self._used:
                    self._used.add(ip)
                    return ip
        raise PodSpecError(f"no free pod IP left on node {node_name}")


@dataclass
class PodWorker:
    """Runs one pod's first container as a process and keeps the pod's status true."""

    cluster: ClusterSpec
    core: client.CoreV1Api
    allocator: IPAllocator
    pod: dict[str, Any]
    thread: threading.Thread | None = None
    process: subprocess.Popen[bytes] | None = None
    pod_ip: str = ""
    restart_count: int = 0
    ready: bool = False
    started_at: str = ""
    pod_started: float = 0.0  # monotonic: activeDeadlineSeconds counts from here
    deadline_exceeded: bool = False
    last_state: dict[str, Any] = field(default_factory=dict)
    deleting: threading.Event = field(default_factory=threading.Event)
    killed: threading.Event = field(default_factory=threading.Event)
    gone: threading.Event = field(default_factory=threading.Event)
    error: str = ""

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])

    @property
    def host_network(self) -> bool:
        return bool(self.pod["spec"].get("hostNetwork"))

    @property
    def container(self) -> dict[str, Any]:
        return dict(self.pod["spec"]["containers"][0])

    @property
    def log_path(self) -> Path:
        return sandbox_paths().processes / self.cluster.name / self.namespace / f"{self.name}.log"

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"pod-{self.name}", daemon=True)
        self.thread.start()

    def update(self, pod: dict[str, Any]) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.deleting.set()

    def kill_now(self) -> None:
        """Power loss: SIGKILL the process group at once; touch no API."""
        self.killed.set()
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        proc = self.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)

    def _run(self) -> None:
        try:
            self._lifecycle()
        except Exception as exc:  # a worker must never take the runtime down
            log.exception("%s/%s: worker failed: %s", self.namespace, self.name, exc)
        finally:
            self._signal(signal.SIGKILL)
            if self.pod_ip and not self.host_network and not self.killed.is_set():
                self.allocator.release(self.pod_ip)
            self.gone.set()

    def _lifecycle(self) -> None:
        # spec.activeDeadlineSeconds counts from here, as the kubelet's from the pod's start.
        self.pod_started = time.monotonic()
        status = self.pod.get("status") or {}
        self.pod_ip = status.get("podIP") or ""
        if self.host_network:
            # hostNetwork (a node agent's DaemonSet): the pod shares its node's address and
            # network namespace; no pod IP is allocated.
            self.pod_ip = self.cluster.node_ip
            if status.get("podIP"):
                self.restart_count = self._previous_restarts(status) + 1
        elif self.pod_ip:
            self.allocator.reserve(self.pod_ip)
            # A pod that ran before (runtime restart, cluster restore): its container restarts.
            self.restart_count = self._previous_restarts(status) + 1
        else:
            self.pod_ip = self.allocator.allocate(self.pod["spec"]["nodeName"])
        if self.deleting.is_set():
            self._terminate()
            return
        container = self.container
        while True:
            try:
                env = container_env(
                    self.pod, container, self.pod_ip, self.cluster.node_ip, self._secret_value
                )
                argv = container_argv(container, env)
                readiness = parse_probe(container.get("readinessProbe"), container)
                liveness = parse_probe(container.get("livenessProbe"), container)
                break
            except PodSpecError as exc:
                # As the kubelet: CreateContainerConfigError, tried again (a Secret created
                # after the pod lets it start), until the pod is deleted.
                if str(exc) != self.error:
                    self.error = str(exc)
                    self._patch_status(
                        waiting_reason="CreateContainerConfigError", message=str(exc)
                    )
                if self.deleting.wait(CONFIG_RETRY_S):
                    self._terminate()
                    return
        self.error = ""
        policy = str(self.pod["spec"].get("restartPolicy") or "Always")
        while not self.killed.is_set():
            self._spawn(argv, env)
            exit_code = self._supervise(readiness, liveness, env)
            if self.killed.is_set():
                return
            if self.deleting.is_set():
                self._terminate()
                return
            if self.deadline_exceeded:
                # What the kubelet does: the pod fails for good, its containers stopped.
                deadline = self.pod["spec"].get("activeDeadlineSeconds")
                self._patch_status(
                    phase="Failed",
                    terminated={"exitCode": exit_code, "reason": "DeadlineExceeded"},
                    message=f"Pod was active on the node longer than the specified deadline "
                    f"({deadline} s)",
                    reason="DeadlineExceeded",
                )
                self.deleting.wait()
                self._terminate()
                return
            finished = _now()
            self.last_state = {
                "terminated": {
                    "exitCode": exit_code,
                    "reason": "Completed" if exit_code == 0 else "Error",
                    "startedAt": self.started_at,
                    "finishedAt": finished,
                }
            }
            message = termination_message(container, exit_code, self._log_text())
            if message:
                self.last_state["terminated"]["message"] = message
            if not should_restart(policy, exit_code):
                phase = "Succeeded" if exit_code == 0 else "Failed"
                self._patch_status(phase=phase, terminated=self.last_state["terminated"])
                self.deleting.wait()
                self._terminate()
                return
            self.restart_count += 1
            delay = restart_backoff(self.restart_count)
            self._patch_status(
                waiting_reason="CrashLoopBackOff" if delay > 1 else "ContainerCreating"
            )
            log.info(
                "%s/%s exited %d; restart %d in %.0fs",
                self.namespace,
                self.name,
                exit_code,
                self.restart_count,
                delay,
            )
            if self.deleting.wait(delay):
                self._terminate()
                return

    def _secret_value(self, name: str, key: str) -> str | None:
        """Key `key` of Secret `name` in the pod's namespace, as the kubelet reads it."""
        try:
            secret = self.core.read_namespaced_secret(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise PodSpecError(f"reading Secret {name}: {exc.reason}") from exc
        data = secret.data or {}
        return base64.b64decode(data[key]).decode() if key in data else None

    def _log_text(self) -> str:
        """The end of the pod's log file (a termination message needs only its tail)."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(max(0, handle.seek(0, os.SEEK_END) - 65536))
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    @staticmethod
    def _previous_restarts(status: dict[str, Any]) -> int:
        statuses = status.get("containerStatuses") or []
        return int(statuses[0].get("restartCount") or 0) if statuses else 0

    def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        work_dir = self.container.get("workingDir")
        cwd = work_dir if work_dir and Path(work_dir).is_dir() else str(self.log_path.parent)
        # The runtime's own PATH (the project's virtualenv first) lets pods name console
        # scripts such as modeldr-serve; the container's env overrides.
        base_env = {
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "HOSTNAME": self.name,
            "KUBERNETES_POD_IP": self.pod_ip,
            # Marks the process as the sandbox's, so `sandbox down` finds it even if this
            # runtime died without cleaning up (its command line need not name .sandbox/).
            SANDBOX_ROOT_ENV: str(sandbox_paths().root),
        }
        with open(self.log_path, "ab") as out:
            out.write(f"--- {_now()} start {argv} (restart {self.restart_count})\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                argv,
                env={**base_env, **env},
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        pidfile = self.log_path.with_suffix(".pid")
        pidfile.write_text(str(self.process.pid))
        self.started_at = _now()
        self.ready = False
        self._patch_status(phase="Running")
        log.info(
            "%s/%s/%s: started pid %d on %s",
            self.cluster.name,
            self.namespace,
            self.name,
            self.process.pid,
            self.pod_ip,
        )

    def _supervise(
        self, readiness: Probe | None, liveness: Probe | None, env: dict[str, str]
    ) -> int:
        """Watch the process and run its probes until it exits or the pod is deleted."""
        assert self.process is not None
        started = time.monotonic()
        ready_tracker = ProbeTracker(readiness, healthy=False) if readiness else None
        live_tracker = ProbeTracker(liveness, healthy=True) if liveness else None
        next_ready = started + (readiness.initial_delay if readiness else 0)
        next_live = started + (liveness.initial_delay if liveness else 0)
        if readiness is None:
            self._set_ready(True)
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        while True:
            if deadline is not None and time.monotonic() - self.pod_started >= float(deadline):
                log.info(
                    "%s/%s: activeDeadlineSeconds %s passed", self.namespace, self.name, deadline
                )
                self.deadline_exceeded = True
                self._set_ready(False, patch=False)
                self._stop_process(self._grace_seconds())
                return self.process.wait()
            code = self.process.poll()
            if code is not None:
                self._set_ready(
                    False, patch=not self.killed.is_set() and not self.deleting.is_set()
                )
                return code
            if self.deleting.is_set() or self.killed.is_set():
                return -1
            now = time.monotonic()
            if ready_tracker and now >= next_ready:
                next_ready = now + ready_tracker.probe.period
                if ready_tracker.record(self._probe(ready_tracker.probe, env)):
                    self._set_ready(ready_tracker.healthy)
            if live_tracker and now >= next_live:
                next_live = now + live_tracker.probe.period
                if live_tracker.record(self._probe(live_tracker.probe, env)):
                    log.info("%s/%s: liveness failed; restarting", self.namespace, self.name)
                    self._stop_process(self._grace_seconds())
                    return self.process.wait()
            time.sleep(TICK)

    def _probe(self, probe: Probe, env: dict[str, str]) -> bool:
        """Probes and HTTP hooks come from the node's address, as the kubelet's do."""
        return run_probe(probe, self.pod_ip, env, source_ip=self.cluster.node_ip)

    def _set_ready(self, ready: bool, *, patch: bool = True) -> None:
        if ready != self.ready:
            self.ready = ready
            if patch:
                self._patch_status(phase="Running")

    def _grace_seconds(self) -> float:
        meta_grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        spec_grace = self.pod["spec"].get("terminationGracePeriodSeconds")
        grace = meta_grace if meta_grace is not None else spec_grace
        return float(30 if grace is None else grace)

    def _stop_process(self, grace: float) -> None:
        """preStop, SIGTERM, wait out the grace period, SIGKILL."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        deadline = time.monotonic() + grace
        pre_stop = (self.container.get("lifecycle") or {}).get("preStop") or {}
        if "sleep" in pre_stop:
            time.sleep(min(float(pre_stop["sleep"].get("seconds") or 0), max(0.0, grace)))
        elif "httpGet" in pre_stop:
            with contextlib.suppress(PodSpecError):
                hook = parse_probe(
                    {"httpGet": pre_stop["httpGet"], "timeoutSeconds": max(1, int(grace))},
                    self.container,
                )
                if hook:
                    self._probe(hook, {})
        elif "exec" in pre_stop:
            seconds = exec_sleep_seconds(list(pre_stop["exec"].get("command") or []))
            if seconds is not None:
                time.sleep(min(seconds, max(0.0, grace)))
        self._signal(signal.SIGTERM)
        # Like the kubelet: at least 2 s after SIGTERM even if preStop used the grace up.
        deadline = max(deadline, time.monotonic() + 2)
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            log.info("%s/%s: grace period over; SIGKILL", self.namespace, self.name)
            self._signal(signal.SIGKILL)
            proc.wait()

    def _terminate(self) -> None:
        """Pod deleted: stop the process gracefully, then let the API forget the pod."""
        self._set_ready(False)
        self._stop_process(self._grace_seconds())
        if self.killed.is_set():
            return
        code = self.process.returncode if self.process else 0
        log.info(
            "%s/%s/%s: terminated (exit %s)", self.cluster.name, self.namespace, self.name, code
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self.killed.is_set():
            try:
                self.core.delete_namespaced_pod(
                    self.name,
                    self.namespace,
                    grace_period_seconds=0,
                    body=client.V1DeleteOptions(
                        grace_period_seconds=0, preconditions=client.V1Preconditions(uid=self.uid)
                    ),
                )
                return
            except ApiException as exc:
                if exc.status in (404, 409):
                    return
            except Exception:
                pass
            time.sleep(0.5)

    # -- status -------------------------------------------------------------------------

    def _patch_status(
        self,
        *,
        phase: str = "Running",
        waiting_reason: str = "",
        message: str = "",
        terminated: dict[str, Any] | None = None,
        reason: str = "",
    ) -> None:
        if self.killed.is_set():
            return
        now = _now()
        container = self.container
        state: dict[str, Any]
        if terminated:
            state = {"terminated": terminated}
        elif waiting_reason:
            state = {"waiting": {"reason": waiting_reason, "message": message}}
        else:
            state = {"running": {"startedAt": self.started_at or now}}
        ready = "True" if self.ready else "False"
        container_status: dict[str, Any] = {
            "name": container["name"],
            "image": container.get("image") or "sandbox/process",
            "imageID": "sandbox://process",
            "containerID": f"process://{self.process.pid if self.process else 0}",
            "ready": self.ready,
            "started": bool(self.process and self.process.poll() is None),
            "restartCount": self.restart_count,
            "state": state,
        }
        if self.last_state:
            container_status["lastState"] = self.last_state
        conditions: list[dict[str, Any]] = [
            {"type": "PodReadyToStartContainers", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "PodScheduled", "status": "True"},
            {"type": "ContainersReady", "status": ready},
            {"type": "Ready", "status": ready},
        ]
        old = {c.get("type"): c for c in (self.pod.get("status") or {}).get("conditions") or []}
        for condition in conditions:
            previous = old.get(condition["type"])
            unchanged = previous is not None and previous.get("status") == condition["status"]
            condition["lastTransitionTime"] = (
                previous.get("lastTransitionTime", now) if previous and unchanged else now
            )
            condition["lastProbeTime"] = None
        body = {
            "status": {
                "phase": phase,
                "hostIP": self.cluster.node_ip,
                "hostIPs": [{"ip": self.cluster.node_ip}],
                "podIP": self.pod_ip,
                "podIPs": [{"ip": self.pod_ip}],
                "startTime": (self.pod.get("status") or {}).get("startTime") or now,
                "conditions": conditions,
                "containerStatuses": [container_status],
                "message": message or None,
                "reason": reason or None,
            }
        }
        for attempt in range(20):
            if self.killed.is_set():
                return
            try:
                updated = self.core.patch_namespaced_pod_status(self.name, self.namespace, body)
                self.pod["status"] = self.core.api_client.sanitize_for_serialization(updated.status)
                return
            except ApiException as exc:
                if exc.status == 404:
                    return
            except Exception:
                pass
            time.sleep(min(2.0, 0.2 * (attempt + 1)))
        log.warning("%s/%s: could not patch status", self.namespace, self.name)


class ClusterRuntime:
    """Watches one cluster's pods and keeps a PodWorker per annotated pod."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.allocator = IPAllocator(spec)
        self.workers: dict[str, PodWorker] = {}
        self.stopping = threading.Event()
        self._core: client.CoreV1Api | None = None

    def core(self) -> client.CoreV1Api:
        if self._core is None:
            self._core = client.CoreV1Api(kube.api_client(self.spec.name))
        return self._core

    def run(self) -> None:
        paths = sandbox_paths()
        while not self.stopping.is_set():
            if paths.outage_marker(self.spec.name).exists():
                self._kill_all()
                paths.outage_ack(self.spec.name).touch()
                self.stopping.wait(LIST_INTERVAL)
                continue
            try:
                self._reconcile()
                # First reconcile after an outage: pods are being restarted; tell restore().
                paths.outage_ack(self.spec.name).unlink(missing_ok=True)
            except Exception as exc:
                log.debug("%s: reconcile failed: %s", self.spec.name, exc)
                self._core = None
            self.stopping.wait(LIST_INTERVAL)

    def _kill_all(self) -> None:
        for key, worker in list(self.workers.items()):
            worker.kill_now()
            self.workers.pop(key)
            log.info("%s: outage killed %s/%s", self.spec.name, worker.namespace, worker.name)
        self.allocator = IPAllocator(self.spec)

    def _reconcile(self) -> None:
        core = self.core()
        failed_nodes = {
            n.metadata.name
            for n in core.list_node().items
            if (n.metadata.annotations or {}).get(FAILED_NODE_ANNOTATION) == "true"
        }
        pods = core.api_client.sanitize_for_serialization(core.list_pod_for_all_namespaces())
        seen: set[str] = set()
        for pod in pods.get("items") or []:
            meta = pod["metadata"]
            if (meta.get("annotations") or {}).get(RUN_ANNOTATION) != RUN_PROCESS:
                continue
            node = pod["spec"].get("nodeName")
            if not node:
                continue  # not scheduled yet
            uid = meta["uid"]
            seen.add(uid)
            worker = self.workers.get(uid)
            if node in failed_nodes:
                # The node is dead: its processes die with it and nobody reports status.
                if worker and not worker.killed.is_set():
                    worker.kill_now()
                    log.info("%s: node %s failed; killed %s", self.spec.name, node, worker.name)
                continue
            if worker and worker.killed.is_set():
                # The node came back (recover-node): the kubelet restarts its pods.
                self.workers.pop(uid)
                worker = None
            if worker is None:
                if (pod.get("status") or {}).get("phase") in (
                    "Succeeded",
                    "Failed",
                ) and not meta.get("deletionTimestamp"):
                    continue
                worker = PodWorker(self.spec, core, self.allocator, pod)
                worker.update(pod)
                self.workers[uid] = worker
                worker.start()
            else:
                worker.update(pod)
        for uid, worker in list(self.workers.items()):
            if uid not in seen:
                # Force-deleted from the API: the container goes too, and its IP is free.
                worker.deleting.set()
                worker.kill_now()
                self.workers.pop(uid)
                if worker.pod_ip and not worker.host_network:
                    self.allocator.release(worker.pod_ip)
            elif worker.gone.is_set() and not worker.killed.is_set():
                self.workers.pop(uid)

    def shutdown(self, grace: float = 5.0) -> None:
        """Runtime stopping (sandbox-down): SIGTERM every process, SIGKILL after `grace`."""
        self.stopping.set()
        for worker in self.workers.values():
            worker._signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for worker in self.workers.values():
            proc = worker.process
            while proc is not None and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            worker.kill_now()


def exec_sleep_seconds(command: list[str]) -> float | None:
    """The N of a preStop `exec: [sleep, N]` (the one exec hook the runtime understands)."""
    if len(command) != 2 or Path(command[0]).name != "sleep":
        return None
    try:
        seconds = float(command[1])
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def kill_stale_processes() -> None:
    """Processes left by a runtime that died: nothing may outlive its supervisor."""
    root = sandbox_paths().processes
    if not root.exists():
        return
    marker = f"{SANDBOX_ROOT_ENV}={sandbox_paths().root}".encode()
    for pidfile in root.rglob("*.pid"):
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError, OSError):
            pid = int(pidfile.read_text().strip())
            # Pid files outlive their processes: kill only a process that still carries this
            # sandbox's marker, never whatever reused the number since.
            if is_marked(pid, marker):
                os.killpg(pid, signal.SIGKILL)
        pidfile.unlink(missing_ok=True)


def is_marked(pid: int, marker: bytes) -> bool:
    """Whether process `pid` has `marker` (NAME=value) in its environment."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return marker in environ


def main(clusters: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    kill_stale_processes()
    runtimes = [ClusterRuntime(CLUSTERS[name]) for name in (clusters or list(CLUSTERS))]
    threads = [
        threading.Thread(target=r.run, name=f"cluster-{r.spec.name}", daemon=True) for r in runtimes
    ]
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping every pod process", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for thread in threads:
        thread.start()
    log.info("process runtime running for %s", ", ".join(r.spec.name for r in runtimes))
    stop.wait()
    for runtime in runtimes:
        runtime.shutdown()
    kill_stale_processes()
    log.info("process runtime stopped")
