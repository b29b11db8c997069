"""Fixed facts of the sandbox: where its state lives, its clusters and their address ranges.

Every address the sandbox hands out is inside 127.0.0.0/8, so all traffic to pods and
nodes stays on loopback (the project's network rule).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Annotation that asks the process runtime to run a pod's first container as a process.
RUN_ANNOTATION = "sandbox.modeldr.io/run"
RUN_PROCESS = "process"
#: Annotation on a node the sandbox has failed (its processes die, its heartbeat stops).
FAILED_NODE_ANNOTATION = "sandbox.modeldr.io/failed"
#: kwok manages only nodes carrying this annotation value (the sandbox's own nodes).
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_MANAGED = "fake"
#: Set in every pod process's environment to the sandbox root: how `sandbox down` finds them.
SANDBOX_ROOT_ENV = "MODELDR_SANDBOX_ROOT"

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    gpus: int
    #: Third octet of the node's pod CIDR (<cluster prefix>.<octet>.0/24).
    octet: int
    cpu: str = "32"
    memory: str = "256Gi"
    #: Pod capacity. The CPU node takes more than the kubelet's default 110, so that the
    #: scale benchmark's 200 ModelDeployments (plain kwok pods) fit in one sandbox.
    pods: int = 110


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    #: First two octets of every address in this cluster, e.g. "127.1".
    prefix: str
    #: Every control-plane port of this cluster is port_base + a fixed offset, so that
    #: clusters created in parallel never race for the same port.
    port_base: int
    nodes: tuple[NodeSpec, ...] = field(default_factory=tuple)

    @property
    def apiserver_port(self) -> int:
        return self.port_base + 1

    @property
    def ports(self) -> dict[str, int]:
        """kwokctl options naming each component's port."""
        return {
            "kubeApiserverPort": self.port_base + 1,
            "etcdPort": self.port_base + 2,
            "etcdPeerPort": self.port_base + 3,
            "kubeControllerManagerPort": self.port_base + 4,
            "kubeSchedulerPort": self.port_base + 5,
            "kwokControllerPort": self.port_base + 6,
        }

    @property
    def pod_cidr(self) -> str:
        return f"{self.prefix}.0.0/16"

    @property
    def node_ip(self) -> str:
        return f"{self.prefix}.0.1"

    def node_pod_cidr(self, node: NodeSpec) -> str:
        """Range kwok allocates plain pod IPs from on this node (a /24 per node)."""
        return f"{self.prefix}.{node.octet}.0/24"

    def process_pod_range(self, node: NodeSpec) -> str:
        """Range the process runtime allocates from on this node, disjoint from kwok's."""
        return f"{self.prefix}.{node.octet + 128}.0/24"


MEMBER_NODES = (
    NodeSpec("gpu-0", gpus=8, octet=1),
    NodeSpec("gpu-1", gpus=8, octet=2),
    NodeSpec("cpu-0", gpus=0, octet=3, pods=250),
)

CLUSTERS: dict[str, ClusterSpec] = {
    "hub": ClusterSpec("hub", "127.3", 16410, (NodeSpec("cpu-0", gpus=0, octet=1),)),
    "primary": ClusterSpec("primary", "127.1", 16420, MEMBER_NODES),
    "standby": ClusterSpec("standby", "127.2", 16430, MEMBER_NODES),
}
MEMBER_CLUSTERS = ("primary", "standby")
# `make operator-up` runs the operator as a local process on these loopback ports.
OPERATOR_HEALTH_PORT = 19180
OPERATOR_METRICS_PORT = 19190
#: The sandbox's infrastructure provider (NodeFailure, ClusterOutage) for the drill engine:
#: `python -m sandbox infra-webhook`, started by operator-up, on 127.0.0.1 only.
INFRA_WEBHOOK_PORT = 19200
#: The infrastructure webhook daemon (sandbox/infra_webhook.py): its pid file's name and the
#: marker in its command line.
INFRA_WEBHOOK = "infra-webhook"
INFRA_WEBHOOK_MARKER = "sandbox infra-webhook"

#: The sandbox's HAProxy (sandbox/haproxy.py): its own health frontend, and the ports the
#: operator may give ModelDeployments' frontends (traffic.haproxy.frontendPort).
HAPROXY_HEALTH_PORT = 19300
HAPROXY_PORTS = (19301, 19399)

PROMETHEUS_HOST = "127.0.0.1"
PROMETHEUS_PORT = 19090
#: Scrape often so tests and drills see changes within seconds.
PROMETHEUS_SCRAPE_INTERVAL = "2s"


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def prometheus_url_file(self) -> Path:
        return self.root / "prometheus-url"

    @property
    def kwok_workdir(self) -> Path:
        return self.root / "kwok"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def processes(self) -> Path:
        """Per-pod process logs and pid files of the process runtime."""
        return self.root / "pods"

    @property
    def prometheus_dir(self) -> Path:
        return self.root / "prometheus"

    def cluster_kubeconfig(self, cluster: str) -> Path:
        """Admin kubeconfig of one cluster, as kwokctl wrote it."""
        return self.kwok_workdir / "clusters" / cluster / "kubeconfig.yaml"

    def outage_marker(self, cluster: str) -> Path:
        return self.state / f"outage-{cluster}"

    def outage_ack(self, cluster: str) -> Path:
        return self.state / f"outage-{cluster}.ack"

    def pidfile(self, name: str) -> Path:
        return self.state / f"{name}.pid"


def sandbox_paths() -> Paths:
    return Paths(Path(os.environ.get("MODELDR_SANDBOX_DIR", REPO_ROOT / ".sandbox")).resolve())


class ToolMissingError(RuntimeError):
    pass


def tool(name: str) -> str:
    """Path of a pinned sandbox tool, from the environment `scripts/tools.sh --print-env` sets.

    Falls back to asking scripts/tools.sh, so the Python API works without the Makefile.
    """
    env_name = "MODELDR_" + name.upper().replace("-", "_")
    path = os.environ.get(env_name)
    if not path:
        path = _tools_env().get(env_name)
    if not path or not Path(path).exists():
        raise ToolMissingError(
            f"{name} is not installed (looked for ${env_name}={path!r}); run `make tools`"
        )
    return path


_TOOLS_ENV: dict[str, str] | None = None


def _tools_env() -> dict[str, str]:
    global _TOOLS_ENV
    if _TOOLS_ENV is None:
        import subprocess

        out = subprocess.run(
            ["bash", str(REPO_ROOT / "scripts" / "tools.sh"), "--print-env"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        env: dict[str, str] = {}
        for line in out.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
        _TOOLS_ENV = env
    return _TOOLS_ENV


def firewall_tool() -> str | None:
    return shutil.which("nft") or shutil.which("iptables")
