"""Small helpers around the kubernetes client for the sandbox (admin credentials)."""

from __future__ import annotations

import time
from typing import Any

import urllib3
from kubernetes import client, config

from sandbox.config import sandbox_paths


def api_client(cluster: str, *, timeout: float = 5.0) -> client.ApiClient:
    """An ApiClient for one sandbox cluster, from `.sandbox/kubeconfig`."""
    cfg = client.Configuration()
    config.load_kube_config(
        config_file=str(sandbox_paths().kubeconfig), context=cluster, client_configuration=cfg
    )
    # Fail fast while a control plane is down instead of hanging a caller.
    cfg.retries = urllib3.Retry(total=0, connect=0, read=0)
    api = client.ApiClient(cfg)
    api.rest_client.pool_manager.connection_pool_kw["timeout"] = urllib3.Timeout(
        connect=timeout, read=timeout * 3
    )
    return api


def core(cluster: str) -> client.CoreV1Api:
    return client.CoreV1Api(api_client(cluster))


def apiserver_ready(cluster: str) -> bool:
    try:
        api = api_client(cluster, timeout=2.0)
        response: Any = api.rest_client.request(
            "GET", api.configuration.host + "/readyz", _request_timeout=3
        )
        return bool(response.status == 200)
    except Exception:
        return False


def wait_for(
    predicate: Any, *, timeout: float, interval: float = 0.5, what: str = "condition"
) -> Any:
    """Poll `predicate` until it returns a truthy value; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # transient API errors while things start
            last_error = exc
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


def ready_endpoint_addresses(cluster: str, namespace: str, service: str) -> list[str]:
    """Addresses the Service's EndpointSlices list as ready, sorted: how clients find pods."""
    discovery = client.DiscoveryV1Api(api_client(cluster, timeout=1.0))
    slices = discovery.list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}", _request_timeout=3
    ).items
    return sorted(
        address
        for s in slices
        for endpoint in s.endpoints or []
        if endpoint.conditions and endpoint.conditions.ready
        for address in endpoint.addresses
    )


def ensure_namespace(cluster: str, namespace: str) -> None:
    try:
        core(cluster).create_namespace({"metadata": {"name": namespace}})
    except client.ApiException as exc:
        if exc.status != 409:
            raise
