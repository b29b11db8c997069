"""Kubernetes control planes of the sandbox, made with `kwokctl --runtime binary`.

Each cluster is a real etcd, kube-apiserver (RBAC on), kube-controller-manager and
kube-scheduler built from the Kubernetes Go modules, with kwok standing in for kubelets.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import yaml

from sandbox import kube
from sandbox.config import (
    GPU_PRODUCT,
    GPU_RESOURCE,
    KWOK_NODE_ANNOTATION,
    KWOK_NODE_MANAGED,
    RUN_ANNOTATION,
    RUN_PROCESS,
    ClusterSpec,
    NodeSpec,
    sandbox_paths,
    tool,
)

log = logging.getLogger("sandbox.clusters")

#: How fast a node whose heartbeat stopped turns NotReady (Kubernetes' default is 50 s).
NODE_LEASE_SECONDS = 10
NODE_MONITOR_GRACE_MS = 15_000
NODE_MONITOR_PERIOD_MS = 1_000


def ca_file(spec: ClusterSpec) -> Path:
    """The cluster's CA certificate, as kwokctl writes it."""
    return cluster_dir(spec) / "pki" / "ca.crt"


def kwokctl_config(spec: ClusterSpec) -> str:
    """The kwokctl configuration (KwokctlConfiguration + KwokConfiguration) of a cluster."""
    kwok_args = {
        # kwokctl passes empty values for these; the last flag wins, so ours override.
        "node-ip": spec.node_ip,
        "cidr": f"{spec.prefix}.0.0/24",
        # Only nodes annotated kwok.x-k8s.io/node=fake get heartbeats: failing a node
        # means flipping that annotation, and its lease stops being renewed.
        "manage-all-nodes": "false",
        "manage-nodes-with-annotation-selector": f"{KWOK_NODE_ANNOTATION}={KWOK_NODE_MANAGED}",
    }
    kwokctl = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": {
            "runtime": "binary",
            "kubeVersion": os.environ.get("MODELDR_K8S_VERSION", "v1.36.3"),
            "bindAddress": "127.0.0.1",
            **spec.ports,
            "kubeAuthorization": True,
            "kubeAdmission": True,
            "kubeApiserverBinary": tool("kube-apiserver"),
            "kubeControllerManagerBinary": tool("kube-controller-manager"),
            "kubeSchedulerBinary": tool("kube-scheduler"),
            "kubectlBinary": tool("kubectl"),
            "etcdBinary": tool("etcd"),
            "kwokControllerBinary": tool("kwok"),
            # kwokctl multiplies the heartbeat settings by this factor (default 5).
            "heartbeatFactor": 1,
            "nodeLeaseDurationSeconds": NODE_LEASE_SECONDS,
            "kubeControllerManagerNodeMonitorPeriodMilliseconds": NODE_MONITOR_PERIOD_MS,
            "kubeControllerManagerNodeMonitorGracePeriodMilliseconds": NODE_MONITOR_GRACE_MS,
            "disableQPSLimits": True,
            "quietPull": True,
        },
        "componentsPatches": [
            {
                "name": "kwok-controller",
                "extraArgs": [{"key": k, "value": v} for k, v in kwok_args.items()],
            },
            {
                # Evict pods from an unreachable node after 30 s instead of 300 s; the
                # DefaultTolerationSeconds admission plugin adds these to every pod.
                "name": "kube-apiserver",
                "extraArgs": [
                    {"key": "default-not-ready-toleration-seconds", "value": "30"},
                    {"key": "default-unreachable-toleration-seconds", "value": "30"},
                    # Aggregated APIs (the custom metrics adapter) are reached at their
                    # endpoints' loopback addresses, never at a Service ClusterIP, and told
                    # who asked (kwokctl's proxy client certificate is signed by its CA).
                    {"key": "enable-aggregator-routing", "value": "true"},
                    {"key": "requestheader-client-ca-file", "value": str(ca_file(spec))},
                    # That certificate's CN: no other client certificate may set the headers.
                    {"key": "requestheader-allowed-names", "value": "kwok-admin"},
                    {"key": "requestheader-username-headers", "value": "X-Remote-User"},
                    {"key": "requestheader-group-headers", "value": "X-Remote-Group"},
                    {"key": "requestheader-extra-headers-prefix", "value": "X-Remote-Extra-"},
                ],
            },
            {
                # HorizontalPodAutoscalers re-evaluated every 5 s (Kubernetes' default is 15 s),
                # so the sandbox's scale-out tests see the autoscaler within seconds.
                "name": "kube-controller-manager",
                "extraArgs": [{"key": "horizontal-pod-autoscaler-sync-period", "value": "5s"}],
            },
        ],
    }
    kwok = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokConfiguration",
        "options": {
            # Pods the process runtime runs are its own: kwok leaves their status alone.
            "disregardStatusWithAnnotationSelector": f"{RUN_ANNOTATION}={RUN_PROCESS}",
            # kwok applies no defaults to a configuration file's options: state them.
            "podPlayStageParallelism": 4,
            "nodePlayStageParallelism": 4,
            "nodeLeaseParallelism": 4,
            "podsOnNodeSyncParallelism": 1,
            "enablePodsOnNodeSyncListPager": True,
            "enablePodsOnNodeSyncStreamWatch": True,
        },
    }
    return yaml.safe_dump_all([kwokctl, kwok], sort_keys=False)


def _kwokctl(spec: ClusterSpec, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    paths = sandbox_paths()
    env = dict(os.environ, KWOK_WORKDIR=str(paths.kwok_workdir))
    config_file = paths.kwok_workdir / f"{spec.name}.yaml"
    cmd = [tool("kwokctl"), "--name", spec.name, "-c", str(config_file), *args]
    log.debug("running %s", " ".join(cmd))
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"kwokctl {' '.join(args)} for cluster {spec.name} failed "
            f"(exit {result.returncode}):\n{result.stderr.strip()[-4000:]}"
        )
    return result


def cluster_dir(spec: ClusterSpec) -> Path:
    return sandbox_paths().kwok_workdir / "clusters" / spec.name


def exists(spec: ClusterSpec) -> bool:
    return (cluster_dir(spec) / "kwok.yaml").exists()


def check_ports_free(spec: ClusterSpec) -> None:
    """Fail clearly when another program (often a sandbox of another checkout) holds a port."""
    busy = []
    for option, port in spec.ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                busy.append(f"{port} ({option})")
    if busy:
        raise RuntimeError(
            f"cluster {spec.name}: 127.0.0.1 ports {', '.join(busy)} are in use; is a sandbox of "
            "another checkout running? Stop it with `make sandbox-down` there."
        )


def create_or_start(spec: ClusterSpec) -> None:
    """Idempotent: create the cluster, or start it if it exists, or leave it running."""
    paths = sandbox_paths()
    paths.kwok_workdir.mkdir(parents=True, exist_ok=True)
    (paths.kwok_workdir / f"{spec.name}.yaml").write_text(kwokctl_config(spec))
    if exists(spec):
        if kube.apiserver_ready(spec.name):
            log.info("cluster %s already running", spec.name)
            return
        log.info("starting cluster %s", spec.name)
        check_ports_free(spec)
        _kwokctl(spec, "start", "cluster", "--wait", "120s")
    else:
        log.info("creating cluster %s", spec.name)
        check_ports_free(spec)
        scratch_kubeconfig = paths.kwok_workdir / "kwokctl-kubeconfig"
        _kwokctl(
            spec,
            "create",
            "cluster",
            "--kubeconfig",
            str(scratch_kubeconfig),
            "--wait",
            "120s",
        )


def stop(spec: ClusterSpec) -> None:
    """Stop every control-plane process of the cluster; its etcd data stays on disk."""
    if exists(spec):
        _kwokctl(spec, "stop", "cluster")


def start(spec: ClusterSpec) -> None:
    _kwokctl(spec, "start", "cluster", "--wait", "120s")


def delete(spec: ClusterSpec) -> None:
    if exists(spec):
        scratch_kubeconfig = sandbox_paths().kwok_workdir / "kwokctl-kubeconfig"
        _kwokctl(spec, "delete", "cluster", "--kubeconfig", str(scratch_kubeconfig), check=False)


def write_kubeconfig(specs: list[ClusterSpec]) -> Path:
    """One kubeconfig with contexts named after the clusters (hub, primary, standby)."""
    merged: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [],
        "contexts": [],
        "current-context": "hub",
        "preferences": {},
    }
    for spec in specs:
        source = yaml.safe_load((cluster_dir(spec) / "kubeconfig.yaml").read_text())
        merged["clusters"].append({"name": spec.name, "cluster": source["clusters"][0]["cluster"]})
        merged["users"].append({"name": f"{spec.name}-admin", "user": source["users"][0]["user"]})
        merged["contexts"].append(
            {"name": spec.name, "context": {"cluster": spec.name, "user": f"{spec.name}-admin"}}
        )
    target = sandbox_paths().kubeconfig
    target.write_text(yaml.safe_dump(merged, sort_keys=False))
    target.chmod(0o600)
    return target


def node_manifest(spec: ClusterSpec, node: NodeSpec) -> dict[str, Any]:
    labels = {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        "sandbox.modeldr.io/cluster": spec.name,
    }
    capacity: dict[str, str] = {"cpu": node.cpu, "memory": node.memory, "pods": str(node.pods)}
    taints: list[dict[str, str]] = []
    if node.gpus:
        # The labels NVIDIA GPU feature discovery sets on a real GPU node.
        labels.update(
            {
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": GPU_PRODUCT,
                "nvidia.com/gpu.count": str(node.gpus),
                "nvidia.com/gpu.memory": "81559",
                "nvidia.com/gpu.family": "hopper",
                "nvidia.com/gpu.machine": "sandbox",
                "nvidia.com/cuda.driver.major": "560",
            }
        )
        capacity[GPU_RESOURCE] = str(node.gpus)
        taints.append({"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": labels,
            "annotations": {
                KWOK_NODE_ANNOTATION: KWOK_NODE_MANAGED,
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "spec": {
            "podCIDR": spec.node_pod_cidr(node),
            "podCIDRs": [spec.node_pod_cidr(node)],
            "taints": taints,
        },
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


def ensure_nodes(spec: ClusterSpec) -> None:
    core = kube.core(spec.name)
    existing = {n.metadata.name for n in core.list_node().items}
    for node in spec.nodes:
        body = node_manifest(spec, node)
        if node.name in existing:
            # Keep capacity as configured (a sandbox made by an older version, or edited).
            core.patch_node_status(
                node.name, {"status": {k: body["status"][k] for k in ("capacity", "allocatable")}}
            )
            continue
        core.create_node(body)
        core.patch_node_status(node.name, {"status": body["status"]})
        log.info("cluster %s: node %s (%d GPUs)", spec.name, node.name, node.gpus)


def nodes_ready(spec: ClusterSpec) -> bool:
    core = kube.core(spec.name)
    ready = 0
    for node in core.list_node().items:
        conditions = {c.type: c.status for c in (node.status.conditions or [])}
        ready += conditions.get("Ready") == "True"
    return ready >= len(spec.nodes)


def patch_node_annotations(cluster: str, node: str, annotations: dict[str, str | None]) -> None:
    kube.core(cluster).patch_node(node, {"metadata": {"annotations": annotations}})
