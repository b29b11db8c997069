"""kindtools/offline.py: the kind configs rendered for the offline node image, and the
CNI plan (what kindnet would set up) from the nodes' pod CIDRs and addresses."""

from __future__ import annotations

import copy
import io
import ipaddress
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kindtools import offline as kind_offline
from kindtools.offline import NotReadyYet, cni_plan, render_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "kind").glob("*.yaml"))
IMAGE = "modeldr.local/kind-node:v1.36.3-r1"


def patches(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["kind"]: p for p in map(yaml.safe_load, config["kubeadmConfigPatches"])}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_each_kind_config_rendered_for_the_offline_image(path: Path) -> None:
    original = yaml.safe_load(path.read_text())
    before = copy.deepcopy(original)
    out = render_config(original, IMAGE, "v3.6.16")
    assert original == before  # the input is not changed
    assert [n["image"] for n in out["nodes"]] == [IMAGE] * len(original["nodes"])
    # Everything else of each node (role, GPU labels, mounts) is kept.
    assert [{k: v for k, v in n.items() if k != "image"} for n in out["nodes"]] == original["nodes"]
    # kindnet cannot be built here: the scripts set up ptp CNI instead.
    assert out["networking"] == {**original["networking"], "disableDefaultCNI": True}
    assert out["networking"]["apiServerAddress"] == "127.0.0.1"
    kubelet = patches(out)["KubeletConfiguration"]
    assert kubelet == {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
    }
    assert patches(out)["ClusterConfiguration"]["etcd"] == {"local": {"imageTag": "v3.6.16"}}
    # What kind reads back is the same document.
    assert yaml.safe_load(yaml.safe_dump(out)) == out


def test_existing_patches_and_a_config_without_nodes() -> None:
    config = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "kubeadmConfigPatches": ["kind: InitConfiguration\n"],
    }
    out = render_config(config, IMAGE, "v3.6.16")
    assert out["nodes"] == [{"role": "control-plane", "image": IMAGE}]  # kind's default: one node
    assert out["kubeadmConfigPatches"][0] == "kind: InitConfiguration\n"
    assert len(out["kubeadmConfigPatches"]) == 3


def node(name: str, cidr: str | None, *addresses: tuple[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr} if cidr else {},
        "status": {"addresses": [{"type": t, "address": a} for t, a in addresses]},
    }


NODES = [
    node(
        "cp",
        "10.241.0.0/24",
        ("InternalIP", "172.30.213.2"),
        ("InternalIP", "fc00::2"),
        ("Hostname", "cp"),
    ),
    node("w1", "10.241.1.0/24", ("InternalIP", "172.30.213.3")),
    node("w2", "10.241.2.0/24", ("InternalIP", "172.30.213.4")),
]


def test_cni_plan_routes_every_other_nodes_pods_via_that_node() -> None:
    plan = {n.node: n for n in cni_plan(NODES)}
    assert set(plan) == {"cp", "w1", "w2"}
    assert plan["cp"].routes == (
        ("10.241.1.0/24", "172.30.213.3"),
        ("10.241.2.0/24", "172.30.213.4"),
    )
    assert plan["w2"].routes == (
        ("10.241.0.0/24", "172.30.213.2"),
        ("10.241.1.0/24", "172.30.213.3"),
    )
    for net in plan.values():
        # No route to the node's own range; every via is an IPv4 address (the IPv6 one is not).
        assert net.pod_cidr not in [c for c, _ in net.routes]
        assert all(ipaddress.ip_address(via).version == 4 for _, via in net.routes)
        ptp, portmap = net.conflist["plugins"]
        assert ptp["type"] == "ptp" and ptp["ipMasq"] is False  # nothing leaves the kind network
        assert ptp["ipam"]["ranges"] == [[{"subnet": net.pod_cidr}]]
        assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}


def test_a_single_node_has_no_routes() -> None:
    (only,) = cni_plan(NODES[:1])
    assert only.routes == ()


@pytest.mark.parametrize(
    "broken",
    [
        node("w3", None, ("InternalIP", "172.30.213.5")),
        node("w3", "10.241.3.0/24", ("InternalIP", "fc00::5")),
    ],
    ids=["no pod CIDR yet", "no IPv4 address"],
)
def test_a_node_not_ready_yet_is_said_so(broken: dict[str, Any]) -> None:
    with pytest.raises(NotReadyYet, match="w3"):
        cni_plan([*NODES, broken])


def test_cli_exit_codes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kind_offline.main(["nonsense"]) == 2
    monkeypatch.setattr(
        "sys.stdin", io.StringIO(json.dumps({"items": [NODES[0], node("w", None)]}))
    )
    assert kind_offline.main(["cni"]) == 75  # scripts/kind.sh retries on this code
    assert "not ready" in capsys.readouterr().err
    assert kind_offline.main(["config", str(CONFIGS[0]), IMAGE, "v3.6.16"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["nodes"][0]["image"] == IMAGE


def test_the_node_image_is_named_for_the_sandbox_kubernetes_it_reuses() -> None:
    """scripts/kind-node-image.sh copies the sandbox's Kubernetes build (scripts/tools.sh):
    both pin one version, and the image name and etcd tag scripts/kind.sh asks for say it."""

    def pinned(script: str, name: str) -> str:
        match = re.search(rf"^{name}=(\S+)", (ROOT / script).read_text(), re.MULTILINE)
        assert match, f"{name} in {script}"
        return match.group(1)

    k8s = pinned("scripts/tools.sh", "K8S_VERSION")
    assert pinned("scripts/kind-node-image.sh", "K8S_VERSION") == k8s
    assert pinned("scripts/kind-node-image.sh", "ETCD_VERSION") == pinned(
        "scripts/tools.sh", "ETCD_VERSION"
    )
    assert pinned("scripts/kind-node-image.sh", "KIND_VERSION") == pinned(
        "scripts/kind.sh", "KIND_VERSION"
    )

    def ask(flag: str) -> str:
        out = subprocess.run(
            ["bash", "scripts/kind-node-image.sh", flag],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    assert re.fullmatch(rf"modeldr\.local/kind-node:{re.escape(k8s)}-r\d+", ask("--name"))
    assert ask("--etcd-tag") == pinned("scripts/tools.sh", "ETCD_VERSION")


def test_pods_are_masqueraded_only_towards_the_kind_network() -> None:
    assert all(n.masquerade_to is None for n in cni_plan(NODES))
    plan = cni_plan(NODES, "172.30.213.0/24")
    assert {n.masquerade_to for n in plan} == {"172.30.213.0/24"}
