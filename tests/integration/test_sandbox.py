"""The sandbox itself: real pod lifecycles, endpoints, Prometheus scraping and RBAC."""

from __future__ import annotations

import os
import sys
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from sandbox import kube, prometheus
from sandbox.api import Sandbox
from sandbox.config import RUN_ANNOTATION, RUN_PROCESS, sandbox_paths
from tests.integration.workloads import (
    answers,
    echo_deployment,
    http_get,
    pods,
    ready_pods,
    service,
)

pytestmark = pytest.mark.integration


def test_deployment_available_only_once_both_processes_answer(
    sandbox: Sandbox, namespace: str, core_primary: client.CoreV1Api
) -> None:
    apps = client.AppsV1Api(kube.api_client("primary"))
    apps.create_namespaced_deployment(namespace, echo_deployment("web", replicas=2, ready_after=4))
    core_primary.create_namespaced_service(namespace, service("web"))

    saw_running_not_ready = False
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        current = pods(core_primary, namespace, "web")
        running = [p for p in current if p.status.phase == "Running"]
        if running and len(ready_pods(core_primary, namespace, "web")) < len(running):
            saw_running_not_ready = True
        deployment = apps.read_namespaced_deployment(namespace=namespace, name="web")
        if (deployment.status.available_replicas or 0) == 2:
            # At the moment the Deployment turns Available, both processes answer.
            ips = [p.status.pod_ip for p in ready_pods(core_primary, namespace, "web")]
            assert len(ips) == 2
            assert all(http_get(ip, path="/healthz")[0] == 200 for ip in ips)
            break
        time.sleep(0.2)
    else:
        pytest.fail("Deployment web never became Available")
    assert saw_running_not_ready, "pods turned Ready before their readiness probe could pass"

    # The EndpointSlice lists the pods' loopback addresses, and each answers.
    def slice_addresses() -> list[str]:
        return kube.ready_endpoint_addresses("primary", namespace, "web")

    addresses = kube.wait_for(
        lambda: (a := slice_addresses()) and len(a) == 2 and a, timeout=30, what="2 ready endpoints"
    )
    assert all(a.startswith("127.1.") for a in addresses), addresses
    for address in addresses:
        status, body = http_get(address)
        assert status == 200 and body.strip().startswith("web-")


def test_pod_deletion_sigterms_process_and_replacement_becomes_ready(
    sandbox: Sandbox, namespace: str, core_primary: client.CoreV1Api
) -> None:
    apps = client.AppsV1Api(kube.api_client("primary"))
    apps.create_namespaced_deployment(namespace, echo_deployment("term", replicas=1, drain=1))
    kube.wait_for(
        lambda: len(ready_pods(core_primary, namespace, "term")) == 1, timeout=60, what="pod Ready"
    )
    victim = ready_pods(core_primary, namespace, "term")[0]
    log_file = sandbox_paths().processes / "primary" / namespace / f"{victim.metadata.name}.log"
    core_primary.delete_namespaced_pod(victim.metadata.name, namespace)

    def replaced() -> bool:
        ready = ready_pods(core_primary, namespace, "term")
        return len(ready) == 1 and ready[0].metadata.uid != victim.metadata.uid

    kube.wait_for(replaced, timeout=60, what="a replacement pod Ready")
    kube.wait_for(
        lambda: "SIGTERM received" in log_file.read_text(),
        timeout=15,
        what="the old process to log SIGTERM",
    )
    # The old pod is gone from the API once its process exited; the new one answers.
    kube.wait_for(
        lambda: len(pods(core_primary, namespace, "term")) == 1,
        timeout=30,
        what="the old pod to be removed",
    )
    assert "exiting" in log_file.read_text(), "the process did not shut down by itself on SIGTERM"
    new_ip = ready_pods(core_primary, namespace, "term")[0].status.pod_ip
    assert answers(new_ip)


def test_failing_readiness_probe_takes_pod_out_of_endpoints_and_back(
    sandbox: Sandbox, namespace: str, core_primary: client.CoreV1Api
) -> None:
    apps = client.AppsV1Api(kube.api_client("primary"))
    apps.create_namespaced_deployment(namespace, echo_deployment("flap", replicas=2))
    core_primary.create_namespaced_service(namespace, service("flap"))
    kube.wait_for(
        lambda: len(kube.ready_endpoint_addresses("primary", namespace, "flap")) == 2,
        timeout=60,
        what="2 ready endpoints",
    )
    victim, survivor = kube.ready_endpoint_addresses("primary", namespace, "flap")
    assert http_get(victim, path="/fail")[0] == 200

    kube.wait_for(
        lambda: kube.ready_endpoint_addresses("primary", namespace, "flap") == [survivor],
        timeout=30,
        what="the failing pod to leave the ready endpoints",
    )
    pod = next(p for p in pods(core_primary, namespace, "flap") if p.status.pod_ip == victim)
    conditions = {c.type: c.status for c in pod.status.conditions}
    assert conditions["Ready"] == "False"
    # Not-Ready is not dead: the process keeps running and is not restarted.
    assert answers(victim) and pod.status.container_statuses[0].restart_count == 0

    assert http_get(victim, path="/recover")[0] == 200
    kube.wait_for(
        lambda: (
            kube.ready_endpoint_addresses("primary", namespace, "flap")
            == sorted([victim, survivor])
        ),
        timeout=30,
        what="the recovered pod back in the ready endpoints",
    )


def test_deletion_runs_prestop_then_sigterm_then_sigkill_after_grace(
    sandbox: Sandbox, namespace: str, core_primary: client.CoreV1Api
) -> None:
    """A process that ignores SIGTERM is killed once the grace period is over."""
    apps = client.AppsV1Api(kube.api_client("primary"))
    deployment = echo_deployment(
        "stubborn",
        replicas=1,
        grace=2,
        extra_args=("--ignore-sigterm",),
        lifecycle={"preStop": {"httpGet": {"path": "/prestop", "port": "http"}}},
    )
    apps.create_namespaced_deployment(namespace, deployment)
    kube.wait_for(
        lambda: len(ready_pods(core_primary, namespace, "stubborn")) == 1,
        timeout=60,
        what="pod Ready",
    )
    victim = ready_pods(core_primary, namespace, "stubborn")[0]
    pod_dir = sandbox_paths().processes / "primary" / namespace
    log_file = pod_dir / f"{victim.metadata.name}.log"
    pid = int((pod_dir / f"{victim.metadata.name}.pid").read_text())
    core_primary.delete_namespaced_pod(victim.metadata.name, namespace)

    def gone() -> bool:
        names = [p.metadata.name for p in pods(core_primary, namespace, "stubborn")]
        return victim.metadata.name not in names

    kube.wait_for(gone, timeout=30, what="the old pod to be removed from the API")
    log = log_file.read_text()
    assert "preStop hook called" in log and "SIGTERM received (ignored)" in log
    assert log.index("preStop hook called") < log.index("SIGTERM received (ignored)")
    assert "exiting" not in log, "the process must have been killed, not have exited"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_exited_process_is_restarted_and_counted(
    sandbox: Sandbox, namespace: str, core_primary: client.CoreV1Api
) -> None:
    import os
    import signal

    apps = client.AppsV1Api(kube.api_client("primary"))
    apps.create_namespaced_deployment(namespace, echo_deployment("crash", replicas=1))
    kube.wait_for(
        lambda: len(ready_pods(core_primary, namespace, "crash")) == 1, timeout=60, what="pod Ready"
    )
    pod = ready_pods(core_primary, namespace, "crash")[0]
    pidfile = sandbox_paths().processes / "primary" / namespace / f"{pod.metadata.name}.pid"
    os.kill(int(pidfile.read_text()), signal.SIGKILL)

    def restarted() -> bool:
        p = core_primary.read_namespaced_pod(pod.metadata.name, namespace)
        status = p.status.container_statuses[0]
        return bool(status.restart_count >= 1 and status.ready)

    kube.wait_for(restarted, timeout=60, what="the container to restart and turn Ready again")
    assert answers(pod.status.pod_ip)


def test_a_pod_past_its_active_deadline_is_stopped_and_failed(
    sandbox: Sandbox, namespace: str, core_primary: client.CoreV1Api
) -> None:
    """spec.activeDeadlineSeconds, as the kubelet enforces it: the process is stopped and the
    pod ends Failed, DeadlineExceeded (a drill's corrupted replica relies on it)."""

    # A process that binds nothing: the runtime may hand a new pod the address of one still
    # in its grace period, and this test is about the deadline, not about addresses.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "deadline", "annotations": {RUN_ANNOTATION: RUN_PROCESS}},
        "spec": {
            "activeDeadlineSeconds": 3,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "sleeper",
                    "image": "sandbox/sleeper",
                    "command": [sys.executable, "-c", "import time; time.sleep(120)"],
                }
            ],
        },
    }
    core_primary.create_namespaced_pod(namespace, pod)

    def running() -> bool:
        status = core_primary.read_namespaced_pod("deadline", namespace).status
        return bool(status.phase == "Running" and status.container_statuses)

    kube.wait_for(running, timeout=30, what="the pod running")
    pidfile = sandbox_paths().processes / "primary" / namespace / "deadline.pid"
    kube.wait_for(pidfile.exists, timeout=30, what="its process")
    pid = int(pidfile.read_text())
    started = time.monotonic()

    def failed() -> bool:
        pod = core_primary.read_namespaced_pod("deadline", namespace)
        return bool(pod.status.phase == "Failed" and pod.status.reason == "DeadlineExceeded")

    kube.wait_for(failed, timeout=30, interval=0.2, what="Failed, DeadlineExceeded")
    assert time.monotonic() - started < 15
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_prometheus_scrapes_both_pods_with_cluster_label(
    sandbox: Sandbox, namespace: str, core_primary: client.CoreV1Api
) -> None:
    apps = client.AppsV1Api(kube.api_client("primary"))
    apps.create_namespaced_deployment(namespace, echo_deployment("scraped", replicas=2))
    kube.wait_for(
        lambda: len(ready_pods(core_primary, namespace, "scraped")) == 2,
        timeout=60,
        what="2 pods Ready",
    )
    names = {p.metadata.name for p in ready_pods(core_primary, namespace, "scraped")}
    query = f'up{{cluster="primary", namespace="{namespace}"}} == 1'

    def scraped() -> bool:
        return {s["metric"]["pod"] for s in prometheus.query(query)} == names

    kube.wait_for(scraped, timeout=60, what=f"Prometheus to report up == 1 for {sorted(names)}")
    assert sandbox.prometheus_url == prometheus.base_url()


def test_service_account_without_rolebinding_is_denied(sandbox: Sandbox, namespace: str) -> None:
    core = kube.core("primary")
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    admin = kube.api_client("primary").configuration
    cfg = client.Configuration()
    cfg.host = admin.host
    cfg.ssl_ca_cert = admin.ssl_ca_cert
    cfg.api_key = {"authorization": f"Bearer {token}"}
    as_nobody = client.CoreV1Api(client.ApiClient(cfg))
    with pytest.raises(ApiException) as denied:
        as_nobody.list_namespaced_pod(namespace)
    assert denied.value.status == 403
    # Same token, once bound to a Role, is allowed: the denial was RBAC, not a broken token.
    rbac = client.RbacAuthorizationV1Api(kube.api_client("primary"))
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "read-pods"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "nobody-reads-pods"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "read-pods",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}],
        },
    )
    kube.wait_for(
        lambda: as_nobody.list_namespaced_pod(namespace) is not None,
        timeout=20,
        what="the RoleBinding to take effect",
    )
