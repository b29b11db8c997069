"""Sandbox faults: a whole-cluster outage and a failed node, and their undoing."""

from __future__ import annotations

import socket
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from sandbox import kube
from sandbox.api import Sandbox
from tests.integration.workloads import answers, echo_deployment, ready_pods

pytestmark = pytest.mark.integration


def sandbox_cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "sandbox", *args], check=True, timeout=180)


def test_outage_makes_pods_and_apiserver_unreachable_and_restore_brings_them_back(
    sandbox: Sandbox, namespace: str
) -> None:
    core = kube.core("primary")
    apps = client.AppsV1Api(kube.api_client("primary"))
    apps.create_namespaced_deployment(namespace, echo_deployment("outage", replicas=2))
    kube.wait_for(
        lambda: len(ready_pods(core, namespace, "outage")) == 2, timeout=60, what="2 pods Ready"
    )
    ips = [p.status.pod_ip for p in ready_pods(core, namespace, "outage")]
    assert all(answers(ip) for ip in ips)

    # The command `make sandbox-outage` / `make sandbox-restore` run.
    sandbox_cli("outage", "primary")
    try:
        assert not kube.apiserver_ready("primary")
        host, port = urlsplit(kube.api_client("primary").configuration.host).netloc.split(":")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=2).close()
        assert not any(answers(ip) for ip in ips)
        assert kube.apiserver_ready("standby"), "an outage of primary must not touch standby"
    finally:
        sandbox_cli("restore", "primary")

    assert kube.apiserver_ready("primary")
    core = kube.core("primary")
    kube.wait_for(
        lambda: len(ready_pods(core, namespace, "outage")) == 2,
        timeout=90,
        what="pods Ready again after restore",
    )
    kube.wait_for(
        lambda: all(answers(p.status.pod_ip) for p in ready_pods(core, namespace, "outage")),
        timeout=30,
        what="the restarted processes to answer",
    )


def test_failed_node_goes_not_ready_and_its_processes_die(sandbox: Sandbox, namespace: str) -> None:
    core = kube.core("standby")
    apps = client.AppsV1Api(kube.api_client("standby"))
    deployment = echo_deployment("pinned", replicas=1)
    deployment["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "cpu-0"}
    apps.create_namespaced_deployment(namespace, deployment)
    kube.wait_for(
        lambda: len(ready_pods(core, namespace, "pinned")) == 1,
        timeout=60,
        what="pod Ready on cpu-0",
    )
    ip = ready_pods(core, namespace, "pinned")[0].status.pod_ip

    def node_ready() -> str:
        node = core.read_node("cpu-0")
        return str(next(c.status for c in node.status.conditions if c.type == "Ready"))

    sandbox.fail_node("standby", "cpu-0")
    try:
        kube.wait_for(lambda: not answers(ip), timeout=10, what="the node's process to die")
        kube.wait_for(lambda: node_ready() != "True", timeout=60, what="node cpu-0 NotReady")
        # The node controller then marks the pod not Ready, as for a real dead kubelet.
        kube.wait_for(
            lambda: not ready_pods(core, namespace, "pinned"),
            timeout=30,
            what="the pod on the dead node to turn not Ready",
        )
    finally:
        sandbox.recover_node("standby", "cpu-0")
    kube.wait_for(lambda: node_ready() == "True", timeout=60, what="node cpu-0 Ready again")
    kube.wait_for(
        lambda: len(ready_pods(core, namespace, "pinned")) == 1,
        timeout=90,
        what="the pod Ready again after recovery",
    )
