"""kind clusters on machines that reach no image registry (scripts/kind.sh, own engine).

Two pure parts, unit-tested, and a small CLI that scripts/kind.sh calls:

* ``render_config``: a kind/*.yaml cluster config for the offline node image
  (scripts/kind-node-image.sh): every node on that image, no kindnet (its image cannot be
  built here: its Go module is not on the proxy), the kubelet allowed on cgroup v1 (these
  hosts are cgroup v1 hybrid; kubelet 1.35+ refuses that by default) and etcd at the version
  the image was built with. kind/*.yaml themselves stay as users with Docker run them.
* ``cni_plan``: what kindnet would do, done once after ``kind create cluster``: each node a
  ptp + host-local CNI config for its own pod CIDR, and a route to every other node's pod
  CIDR via that node; pod traffic to the kind network itself (other clusters' nodes, the
  host's side of it) leaves with the node's address. Pods reach nothing outside that network.

    python -m kindtools.offline config kind/hub.yaml IMAGE ETCD_TAG > hub.yaml
    kubectl get nodes -o json | python -m kindtools.offline cni [SUBNET]  # docker exec
    # per node; SUBNET: the kind network's, the one destination pods are masqueraded to
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import yaml

CNI_CONFIG_PATH = "/etc/cni/net.d/10-modeldr.conflist"
CNI_NETWORK_NAME = "modeldr-kind"


def render_config(config: dict[str, Any], image: str, etcd_tag: str) -> dict[str, Any]:
    """The cluster config ``config`` (a kind/*.yaml) for the offline node image."""
    out = copy.deepcopy(config)
    nodes = out.get("nodes") or [{"role": "control-plane"}]
    out["nodes"] = [{**node, "image": image} for node in nodes]
    out["networking"] = {**(out.get("networking") or {}), "disableDefaultCNI": True}
    patches = list(out.get("kubeadmConfigPatches") or [])
    patches.append(
        yaml.safe_dump(
            {
                "apiVersion": "kubelet.config.k8s.io/v1beta1",
                "kind": "KubeletConfiguration",
                "failCgroupV1": False,
            }
        )
    )
    patches.append(
        yaml.safe_dump(
            {
                "apiVersion": "kubeadm.k8s.io/v1beta4",
                "kind": "ClusterConfiguration",
                "etcd": {"local": {"imageTag": etcd_tag}},
            }
        )
    )
    out["kubeadmConfigPatches"] = patches
    return out


@dataclass(frozen=True)
class NodeNetwork:
    """A node's CNI config and the routes it needs to the other nodes' pods."""

    node: str
    pod_cidr: str
    conflist: dict[str, Any]
    #: (other node's pod CIDR, that node's InternalIP)
    routes: tuple[tuple[str, str], ...]
    #: The kind nodes' own network (e.g. 172.30.213.0/24): pods reach other clusters' nodes
    #: (their NodePorts, apiservers) and the host's infrastructure provider through their
    #: node's address, as kindnet's masquerading does; nothing else is masqueraded.
    masquerade_to: str | None = None


class NotReadyYet(Exception):
    """A node has no pod CIDR or no InternalIP yet (the controller manager assigns them)."""


def _internal_ip(node: dict[str, Any]) -> str | None:
    for address in node.get("status", {}).get("addresses", []):
        if address.get("type") == "InternalIP" and ":" not in address.get("address", ""):
            return str(address["address"])
    return None


def conflist(pod_cidr: str) -> dict[str, Any]:
    """kindnet's CNI config shape: ptp with host-local IPAM on the node's range, portmap."""
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK_NAME,
        "plugins": [
            {
                "type": "ptp",
                "ipMasq": False,
                "mtu": 1500,
                "ipam": {
                    "type": "host-local",
                    "dataDir": "/run/cni-ipam-state",
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "ranges": [[{"subnet": pod_cidr}]],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def cni_plan(nodes: list[dict[str, Any]], masquerade_to: str | None = None) -> list[NodeNetwork]:
    """Each node's network from ``kubectl get nodes -o json``'s items; NotReadyYet while a
    node lacks its pod CIDR or address (the caller retries, bounded)."""
    known: list[tuple[str, str, str]] = []
    for node in nodes:
        name = node["metadata"]["name"]
        cidr = node.get("spec", {}).get("podCIDR")
        ip = _internal_ip(node)
        if not cidr or not ip:
            raise NotReadyYet(f"node {name}: podCIDR {cidr!r}, InternalIP {ip!r}")
        known.append((name, cidr, ip))
    return [
        NodeNetwork(
            node=name,
            pod_cidr=cidr,
            conflist=conflist(cidr),
            routes=tuple(
                (other_cidr, other_ip) for other, other_cidr, other_ip in known if other != name
            ),
            masquerade_to=masquerade_to,
        )
        for name, cidr, _ in known
    ]


def apply_node_network(net: NodeNetwork, docker: str = "docker") -> None:
    """Writes the CNI config in the node's container and replaces its routes (idempotent)."""
    tmp = f"{CNI_CONFIG_PATH}.tmp"
    script = f"mkdir -p /etc/cni/net.d && cat > {tmp} && mv {tmp} {CNI_CONFIG_PATH}"
    for cidr, via in net.routes:
        script += f" && ip route replace {cidr} via {via}"
    if net.masquerade_to:
        rule = f"POSTROUTING -s {net.pod_cidr} -d {net.masquerade_to} -j MASQUERADE"
        script += f" && {{ iptables -t nat -C {rule} 2>/dev/null || iptables -t nat -A {rule}; }}"
    subprocess.run(
        [docker, "exec", "-i", net.node, "sh", "-c", script],
        input=json.dumps(net.conflist, indent=2).encode(),
        check=True,
        timeout=60,
    )


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "config":
        with open(argv[1]) as f:
            config = yaml.safe_load(f)
        sys.stdout.write(yaml.safe_dump(render_config(config, argv[2], argv[3]), sort_keys=False))
        return 0
    if argv[:1] == ["cni"] and len(argv) <= 2:
        try:
            plan = cni_plan(json.load(sys.stdin)["items"], argv[1] if len(argv) == 2 else None)
        except NotReadyYet as e:
            print(f"not ready: {e}", file=sys.stderr)
            return 75  # EX_TEMPFAIL: scripts/kind.sh asks again
        for net in plan:
            apply_node_network(net)
            routes = ", ".join(c for c, _ in net.routes) or "none"
            print(f"{net.node}: pods {net.pod_cidr}, routes {routes}")
        return 0
    print(
        "usage: python -m kindtools.offline config CONFIG IMAGE ETCD_TAG | cni [SUBNET]",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
