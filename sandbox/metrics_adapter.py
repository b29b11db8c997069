"""The members' custom metrics API: one modeldr-metrics-adapter per member cluster.

Each member's kube-apiserver aggregates `custom.metrics.k8s.io` from its own adapter
(sandbox/metrics-adapter, built by scripts/tools.sh on sigs.k8s.io/custom-metrics-apiserver),
which answers per pod from the sandbox's Prometheus. The kube-controller-manager's
HorizontalPodAutoscaler controller reads it there, as it reads prometheus-adapter on a real
cluster. The apiserver reaches the adapter through a selector-less Service whose endpoint is
the adapter's loopback port (`--enable-aggregator-routing`: endpoints, never a ClusterIP).
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from sandbox import clusters, daemons, kube
from sandbox.config import CLUSTERS, MEMBER_CLUSTERS, sandbox_paths, tool
from sandbox.prometheus import base_url

NAMESPACE = "kube-system"
SERVICE = "modeldr-metrics-adapter"
GROUP_VERSION = "v1beta2.custom.metrics.k8s.io"
MARKER = "modeldr-metrics-adapter"

#: The model server's load per pod: its average number of requests in flight over the last
#: 10 s, by Little's law the rate of its inference requests' summed duration (an exact
#: average over the window, where the modeldr_serve_inflight_requests gauge is only a sample
#: at each scrape).
INFLIGHT_METRIC = "modeldr_inflight_requests"
#: A scraped server that never answered an inference request has no such series: `up`
#: gives it a 0, so the autoscaler can scale an idle cluster in.
INFLIGHT_PROMQL = (
    "sum by (namespace, pod) (rate(modeldr_serve_request_duration_seconds_sum"
    '{route=~".*/infer|/predict",<<matchers>>}[10s]))'
    " or sum by (namespace, pod) (0 * up{<<matchers>>})"
)


def daemon_name(cluster: str) -> str:
    return f"metrics-adapter-{cluster}"


def adapter_port(cluster: str) -> int:
    """After the cluster's control-plane ports (ClusterSpec.ports uses base+1..+6)."""
    return CLUSTERS[cluster].port_base + 7


def start(cluster: str) -> int:
    paths = sandbox_paths()
    kubeconfig = str(paths.cluster_kubeconfig(cluster))
    argv = [
        tool("metrics-adapter"),
        f"--cluster={cluster}",
        f"--prometheus-url={base_url()}",
        f"--metric={INFLIGHT_METRIC}={INFLIGHT_PROMQL}",
        "--bind-address=127.0.0.1",
        f"--secure-port={adapter_port(cluster)}",
        f"--cert-dir={paths.state / daemon_name(cluster)}",
        f"--lister-kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
    ]
    return daemons.start(daemon_name(cluster), argv, MARKER)


def register(cluster: str) -> None:
    """The Service, its endpoint (the adapter's port) and the APIService (idempotent)."""
    api = kube.api_client(cluster)
    core = client.CoreV1Api(api)
    port = adapter_port(cluster)
    service = {
        "metadata": {"name": SERVICE},
        "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
    }
    endpoints = {
        "metadata": {"name": SERVICE},
        "subsets": [
            {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": port}]}
        ],
    }
    _create_or_replace(lambda: core.create_namespaced_service(NAMESPACE, service))
    _create_or_replace(
        lambda: core.create_namespaced_endpoints(NAMESPACE, endpoints),
        lambda: core.replace_namespaced_endpoints(SERVICE, NAMESPACE, endpoints),
    )
    # The adapter's serving certificate is self-signed (--cert-dir): the sandbox skips its
    # verification; on a real cluster prometheus-adapter's chart sets caBundle.
    apiservice = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": GROUP_VERSION},
        "spec": {
            "group": "custom.metrics.k8s.io",
            "version": "v1beta2",
            "service": {"namespace": NAMESPACE, "name": SERVICE, "port": 443},
            "insecureSkipTLSVerify": True,
            "groupPriorityMinimum": 100,
            "versionPriority": 200,
        },
    }
    registration = client.CustomObjectsApi(api)
    _create_or_replace(
        lambda: registration.create_cluster_custom_object(
            "apiregistration.k8s.io", "v1", "apiservices", apiservice
        )
    )


def _create_or_replace(create: Any, replace: Any = None) -> None:
    try:
        create()
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        if replace is not None:
            replace()


def ready(cluster: str) -> bool:
    """The member's apiserver answers the custom metrics API through the adapter."""
    try:
        api = kube.api_client(cluster, timeout=2.0)
        response: Any = api.rest_client.request(
            "GET",
            api.configuration.host + "/apis/custom.metrics.k8s.io/v1beta2",
            _request_timeout=5,
        )
        return bool(response.status == 200)
    except Exception:
        return False


def check_aggregator_routing(cluster: str) -> None:
    """A sandbox made before the adapter existed runs apiservers without aggregator routing:
    they would dial the adapter's Service ClusterIP (the network rule forbids it). Refuse."""
    saved = clusters.cluster_dir(CLUSTERS[cluster]) / "kwok.yaml"
    if "--enable-aggregator-routing=true" not in saved.read_text():
        raise RuntimeError(
            f"cluster {cluster} was created by an older sandbox (its apiserver lacks "
            "--enable-aggregator-routing): run `make sandbox-down && make sandbox-up`"
        )


def install_all(timeout: float = 120.0) -> None:
    for cluster in MEMBER_CLUSTERS:
        check_aggregator_routing(cluster)
    for cluster in MEMBER_CLUSTERS:
        start(cluster)
        register(cluster)
    for cluster in MEMBER_CLUSTERS:
        kube.wait_for(
            lambda c=cluster: ready(c),
            timeout=timeout,
            what=f"custom metrics API of {cluster} (modeldr-metrics-adapter)",
        )


def stop_all() -> None:
    for cluster in MEMBER_CLUSTERS:
        daemons.stop(daemon_name(cluster), MARKER)
