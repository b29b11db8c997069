"""The sandbox's Python API, used by `python -m sandbox`, the tests and the drill engine.

from sandbox.api import Sandbox
sb = Sandbox()
sb.up()
sb.outage("primary"); sb.restore("primary")
sb.fail_node("primary", "gpu-0"); sb.recover_node("primary", "gpu-0")
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

from modeldr.operator.render import FETCH_MOUNT
from sandbox import (
    agent,
    clusters,
    daemons,
    haproxy,
    infra_daemon,
    kube,
    metrics_adapter,
    objectstores,
    prometheus,
    runtime,
)
from sandbox.config import (
    CLUSTERS,
    FAILED_NODE_ANNOTATION,
    INFRA_WEBHOOK,
    INFRA_WEBHOOK_MARKER,
    INFRA_WEBHOOK_PORT,
    MEMBER_CLUSTERS,
    SANDBOX_ROOT_ENV,
    Paths,
    sandbox_paths,
)

log = logging.getLogger("sandbox")

RUNTIME = "runtime"
RUNTIME_MARKER = "sandbox runtime"
#: nftables table the network faults use; sandbox-down removes it.
NFT_TABLE = "modeldr_sandbox"
#: Holder the sandbox writes into a failed node's Lease so that kwok stops renewing it.
FAILED_NODE_LEASE_HOLDER = "sandbox.modeldr.io/failed-node"


class SandboxError(RuntimeError):
    pass


@dataclass
class Sandbox:
    paths: Paths

    def __init__(self, paths: Paths | None = None) -> None:
        self.paths = paths or sandbox_paths()

    # -- whole sandbox --------------------------------------------------------------------

    def up(self, *, timeout: float = 240.0) -> None:
        """Start (or reuse) hub, primary, standby, the process runtime and Prometheus."""
        t0 = time.monotonic()
        for directory in (self.paths.root, self.paths.logs, self.paths.state, self.paths.processes):
            directory.mkdir(parents=True, exist_ok=True)
        for name in CLUSTERS:
            if self.paths.outage_marker(name).exists():
                log.info("cluster %s was in an outage; restoring it", name)
                self.restore(name)
        specs = list(CLUSTERS.values())
        # Control planes come up in parallel; each is mostly waiting on its own processes.
        with ThreadPoolExecutor(max_workers=len(specs)) as pool:
            for future in [pool.submit(clusters.create_or_start, spec) for spec in specs]:
                future.result()
        clusters.write_kubeconfig(specs)
        for spec in specs:
            kube.wait_for(
                lambda s=spec: kube.apiserver_ready(s.name),
                timeout=timeout,
                what=f"apiserver of {spec.name}",
            )
            clusters.ensure_nodes(spec)
        for spec in specs:
            kube.wait_for(
                lambda s=spec: clusters.nodes_ready(s),
                timeout=timeout,
                what=f"nodes of {spec.name} Ready",
            )
        daemons.start(RUNTIME, [sys.executable, "-m", "sandbox", "runtime"], RUNTIME_MARKER)
        url = prometheus.start()
        kube.wait_for(prometheus.ready, timeout=60, what="Prometheus ready")
        # The load balancer of the haproxy traffic provider (its frontends: the operator's).
        haproxy.start()
        kube.wait_for(haproxy.ready, timeout=30, what="HAProxy ready")
        # The members' custom metrics API (HorizontalPodAutoscalers on the server's load).
        metrics_adapter.install_all()
        # The regions' object stores and the backup store (s3:// model sources, backups).
        objectstores.install_all()
        # The members' infrastructure provider (NodeFailure, ClusterOutage of drills);
        # `operator-up` registers it in the member Secrets.
        webhook = infra_daemon.ensure_running()
        # The node agents (network faults of drills): one process per member node.
        agent.install_all()
        log.info(
            "sandbox up in %.1fs: kubeconfig %s, Prometheus %s, infrastructure webhook %s",
            time.monotonic() - t0,
            self.paths.kubeconfig,
            url,
            webhook,
        )

    def down(self) -> None:
        """Stop everything and remove the sandbox's state (logs are kept under .sandbox/logs)."""
        # The operator first: it would otherwise log every member going away.
        daemons.stop("operator", "modeldr operator", grace=20.0)
        # Then the infrastructure webhook, before the clusters go: it would otherwise restore
        # an expired outage while its cluster is being deleted.
        daemons.stop(INFRA_WEBHOOK, INFRA_WEBHOOK_MARKER, grace=10.0)
        daemons.stop(RUNTIME, RUNTIME_MARKER)
        # Pod processes run in sessions of their own: if the runtime died without stopping
        # them, its pidfiles still name them.
        runtime.kill_stale_processes()
        metrics_adapter.stop_all()
        objectstores.stop_all()
        prometheus.stop()
        haproxy.stop()
        for spec in CLUSTERS.values():
            try:
                clusters.delete(spec)
            except Exception as exc:  # keep going: down must clean up as much as it can
                log.warning("deleting cluster %s: %s", spec.name, exc)
        self._remove_firewall_rules()
        # The agents removed their chains on SIGTERM; the table (and anything a SIGKILLed
        # agent left) goes with the sandbox.
        agent.remove_table()
        self._kill_leftovers()
        # The pods' fetched model copies (s3:// sources): a real pod's emptyDir goes with the
        # pod; here the processes share the host's path, and a killed one (an outage is a
        # SIGKILL) leaves its copy.
        shutil.rmtree(FETCH_MOUNT, ignore_errors=True)
        if self.paths.root.exists():
            for child in self.paths.root.iterdir():
                if child.name != "logs":
                    if child.is_dir():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
        log.info("sandbox down")

    def _kill_leftovers(self) -> None:
        """Any process still running out of the sandbox directory (belt and braces)."""
        for pid in leftover_pids(self.paths.root):
            subprocess.run(["kill", "-9", str(pid)], check=False, capture_output=True)

    def _remove_firewall_rules(self) -> None:
        nft = shutil.which("nft")
        if nft:
            subprocess.run(
                [nft, "delete", "table", "inet", NFT_TABLE], check=False, capture_output=True
            )

    def status(self) -> dict[str, object]:
        result: dict[str, object] = {}
        for name in CLUSTERS:
            state = (
                "outage"
                if self.paths.outage_marker(name).exists()
                else ("running" if kube.apiserver_ready(name) else "down")
            )
            result[name] = state
        result["runtime"] = bool(daemons.running_pid(RUNTIME, RUNTIME_MARKER))
        result["prometheus"] = prometheus.base_url() if prometheus.ready() else None
        result["infra-webhook"] = (
            f"http://127.0.0.1:{INFRA_WEBHOOK_PORT}"
            if daemons.running_pid(INFRA_WEBHOOK, INFRA_WEBHOOK_MARKER)
            else None
        )
        return result

    @property
    def kubeconfig(self) -> Path:
        return self.paths.kubeconfig

    @property
    def prometheus_url(self) -> str:
        return self.paths.prometheus_url_file.read_text().strip()

    # -- faults ---------------------------------------------------------------------------

    def _check_member(self, cluster: str) -> None:
        if cluster not in CLUSTERS:
            raise SandboxError(
                f"unknown cluster {cluster!r}; expected one of {', '.join(CLUSTERS)}"
            )

    def outage(self, cluster: str, *, timeout: float = 30.0) -> None:
        """Whole-cluster outage: its pod processes die at once, then its control plane stops."""
        self._check_member(cluster)
        self.paths.state.mkdir(parents=True, exist_ok=True)
        ack = self.paths.outage_ack(cluster)
        ack.unlink(missing_ok=True)
        self.paths.outage_marker(cluster).write_text(
            time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime())
        )
        if daemons.running_pid(RUNTIME, RUNTIME_MARKER):
            kube.wait_for(
                ack.exists,
                timeout=timeout,
                interval=0.1,
                what=f"process runtime to kill {cluster}'s pods",
            )
        clusters.stop(CLUSTERS[cluster])
        log.info("cluster %s: outage (pods killed, control plane stopped)", cluster)

    def restore(self, cluster: str, *, timeout: float = 120.0) -> None:
        """Bring a cluster back with its stored state; the runtime restarts its pods."""
        self._check_member(cluster)
        clusters.start(CLUSTERS[cluster])
        kube.wait_for(
            lambda: kube.apiserver_ready(cluster), timeout=timeout, what=f"apiserver of {cluster}"
        )
        self.paths.outage_marker(cluster).unlink(missing_ok=True)
        ack = self.paths.outage_ack(cluster)
        if daemons.running_pid(RUNTIME, RUNTIME_MARKER):
            kube.wait_for(
                lambda: not ack.exists(),
                timeout=30,
                interval=0.1,
                what=f"process runtime to restart {cluster}'s pods",
            )
        ack.unlink(missing_ok=True)
        log.info("cluster %s: restored", cluster)

    def fail_node(self, cluster: str, node: str) -> None:
        """The node dies: its pod processes are killed and its heartbeat stops.

        The heartbeat is the node's Lease: the sandbox takes it over for a day and never
        renews it. kwok does not renew a Lease another holder owns, so the node lifecycle
        controller sees no heartbeat and marks the node NotReady after its grace period.
        """
        self._check_member(cluster)
        coordination = client.CoordinationV1Api(kube.api_client(cluster))
        coordination.patch_namespaced_lease(
            node,
            "kube-node-lease",
            {"spec": {"holderIdentity": FAILED_NODE_LEASE_HOLDER, "leaseDurationSeconds": 86400}},
        )
        clusters.patch_node_annotations(cluster, node, {FAILED_NODE_ANNOTATION: "true"})
        log.info("cluster %s: node %s failed", cluster, node)

    def recover_node(self, cluster: str, node: str) -> None:
        """The node comes back: kwok takes its Lease again and the runtime restarts its pods."""
        self._check_member(cluster)
        clusters.patch_node_annotations(cluster, node, {FAILED_NODE_ANNOTATION: None})
        coordination = client.CoordinationV1Api(kube.api_client(cluster))
        coordination.patch_namespaced_lease(
            node,
            "kube-node-lease",
            {"spec": {"holderIdentity": None, "leaseDurationSeconds": clusters.NODE_LEASE_SECONDS}},
        )
        log.info("cluster %s: node %s recovered", cluster, node)


__all__ = ["MEMBER_CLUSTERS", "Sandbox", "SandboxError"]


def leftover_pids(root: Path) -> list[int]:
    """Processes of the sandbox at `root`: its path on their command line (control planes,
    daemons) or its marker in their environment (pod processes)."""
    marker = f"{SANDBOX_ROOT_ENV}={root}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(root).encode() in cmdline or marker in environ:
            found.append(int(proc.name))
    return found
