"""Sandbox configuration: every address on loopback, kwok and Prometheus set up to match."""

from __future__ import annotations

import ipaddress

import pytest
import yaml

from sandbox import clusters, prometheus
from sandbox.config import CLUSTERS, GPU_RESOURCE, MEMBER_CLUSTERS
from sandbox.runtime import IPAllocator

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


@pytest.fixture(autouse=True)
def _fake_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setattr(clusters, "tool", lambda name: f"/cache/bin/{name}")


def test_every_cidr_and_node_ip_is_on_loopback() -> None:
    for spec in CLUSTERS.values():
        assert ipaddress.ip_address(spec.node_ip) in LOOPBACK
        assert ipaddress.IPv4Network(spec.pod_cidr).subnet_of(LOOPBACK)
        for node in spec.nodes:
            kwok_range = ipaddress.IPv4Network(spec.node_pod_cidr(node))
            process_range = ipaddress.IPv4Network(spec.process_pod_range(node))
            assert kwok_range.subnet_of(ipaddress.IPv4Network(spec.pod_cidr))
            assert process_range.subnet_of(ipaddress.IPv4Network(spec.pod_cidr))
            assert not kwok_range.overlaps(process_range)


def test_clusters_have_distinct_ranges_and_ports() -> None:
    cidrs = [ipaddress.IPv4Network(s.pod_cidr) for s in CLUSTERS.values()]
    assert all(not a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1 :])
    ports = [p for s in CLUSTERS.values() for p in s.ports.values()]
    assert len(ports) == len(set(ports))


def test_kwokctl_config_binds_loopback_and_overrides_kwok_defaults() -> None:
    spec = CLUSTERS["primary"]
    kwokctl, kwok = yaml.safe_load_all(clusters.kwokctl_config(spec))
    options = kwokctl["options"]
    assert options["bindAddress"] == "127.0.0.1"
    assert options["kubeAuthorization"] is True
    assert options["kubeApiserverBinary"] == "/cache/bin/kube-apiserver"
    kwok_args = {a["key"]: a["value"] for a in kwokctl["componentsPatches"][0]["extraArgs"]}
    assert kwok_args["node-ip"] == "127.1.0.1"
    assert ipaddress.IPv4Network(kwok_args["cidr"]).subnet_of(LOOPBACK)
    assert (
        kwok["options"]["disregardStatusWithAnnotationSelector"] == "sandbox.modeldr.io/run=process"
    )


def test_gpu_node_carries_capacity_gfd_labels_and_taint() -> None:
    spec = CLUSTERS["standby"]
    gpu = next(n for n in spec.nodes if n.gpus)
    node = clusters.node_manifest(spec, gpu)
    assert node["status"]["capacity"][GPU_RESOURCE] == str(gpu.gpus)
    assert node["status"]["allocatable"][GPU_RESOURCE] == str(gpu.gpus)
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"]
    assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
    assert {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"} in node["spec"][
        "taints"
    ]
    cpu = next(n for n in spec.nodes if not n.gpus)
    assert GPU_RESOURCE not in clusters.node_manifest(spec, cpu)["status"]["capacity"]


def test_each_member_cluster_gets_a_scrape_job_labelled_with_its_name() -> None:
    jobs = prometheus.config()["scrape_configs"]
    names = [j["job_name"] for j in jobs]
    assert names == [*(f"pods-{c}" for c in MEMBER_CLUSTERS), "modeldr-operator"]
    operator_job = jobs[-1]
    targets = operator_job["static_configs"][0]["targets"]
    assert all(t.startswith("127.0.0.1:") for t in targets)  # loopback only
    assert operator_job["static_configs"][0]["labels"] == {"cluster": "hub"}
    for cluster, job in zip(MEMBER_CLUSTERS, jobs[:-1], strict=True):
        relabels = job["relabel_configs"]
        assert {"target_label": "cluster", "replacement": cluster} in relabels
        loopback_rule = next(r for r in relabels if r.get("source_labels") == ["__address__"])
        assert loopback_rule["action"] == "keep" and loopback_rule["regex"].startswith("127")


def test_ip_allocator_hands_out_distinct_loopback_addresses_and_reuses_released() -> None:
    spec = CLUSTERS["primary"]
    allocator = IPAllocator(spec)
    first, second = allocator.allocate("gpu-0"), allocator.allocate("gpu-0")
    assert first != second
    assert ipaddress.ip_address(first) in ipaddress.IPv4Network(
        spec.process_pod_range(spec.nodes[0])
    )
    allocator.release(first)
    assert allocator.allocate("gpu-0") == first
    allocator.reserve("127.1.129.3")
    assert allocator.allocate("gpu-0") == "127.1.129.4"
