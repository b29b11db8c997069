"""ModelDeployments on the sandbox for integration tests: the operator fixture (the chart in
the hub and `modeldr operator` under its ServiceAccount), a hub namespace per test, the
sandbox example ModelDeployment as a manifest, and its status. Shared by the operator and
drill tests."""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from modeldr.kube.constants import GROUP, MODELDEPLOYMENTS, VERSION
from sandbox import kube
from sandbox.api import Sandbox
from sandbox.operator_up import operator_up
from sandbox.tenants import delete_policy, policy_body, put_policy

__all__ = ["delete_policy", "policy_body", "put_policy"]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples/sandbox/modeldeployment.yaml"
PLURAL = MODELDEPLOYMENTS
NAME = "tiny-bert"


@pytest.fixture(scope="module")
def operator(sandbox: Sandbox) -> None:
    # operator_up() first makes /tmp/modeldr/models/tiny-bert a copy of the trained fixture
    # the example pins (sandbox.operator_up.ensure_tiny_model).
    operator_up()


def custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube.api_client("hub"))


def tenant_namespace(name: str, *, admitted: bool = True) -> None:
    """A hub namespace and the TenantPolicy it needs (delete_policy(name) afterwards); with
    `admitted`, once the admission policy reads it (the operator must be running)."""
    kube.core("hub").create_namespace({"metadata": {"name": name}})
    put_policy(policy_body(name), admitted=admitted)


def manifest(member_namespace: str, **spec: Any) -> dict[str, Any]:
    """The example with 1 replica per cluster in `member_namespace`, `spec` merged in; without
    the example's evaluation and rollout unless `spec` gives them (most tests have no golden
    set, and an evaluation per ModelDeployment is load the sandbox does not need)."""
    md = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    md["spec"].pop("evaluation", None)
    md["spec"].pop("rollout", None)
    md["spec"]["replicas"] = 1
    # The node's copy of the same model (operator_up writes it): the object stores have tests
    # of their own (test_model_store.py); the others need no store Secrets in their namespaces.
    md["spec"]["model"]["source"] = "file:///tmp/modeldr/models/tiny-bert"
    md["spec"]["model"].pop("store", None)
    for role in ("primary", "standby"):
        md["spec"]["clusters"][role]["namespace"] = member_namespace
    md["spec"].update(spec)
    return dict(md)


def create(hub_ns: str, md: dict[str, Any]) -> None:
    custom().create_namespaced_custom_object(GROUP, VERSION, hub_ns, PLURAL, md)


def get(hub_ns: str, name: str = NAME) -> dict[str, Any]:
    return dict(custom().get_namespaced_custom_object(GROUP, VERSION, hub_ns, PLURAL, name))


def status(hub_ns: str) -> dict[str, Any]:
    return dict(get(hub_ns).get("status") or {})


def condition(hub_ns: str, type_: str) -> str | None:
    for c in status(hub_ns).get("conditions") or []:
        if c["type"] == type_:
            return str(c["status"])
    return None


def patch_probe(hub_ns: str, probe: dict[str, Any] | None) -> None:
    """Set spec.failover.probe (None: remove it, which means the default: on)."""
    patch = {"spec": {"failover": {"probe": probe}}}
    custom().patch_namespaced_custom_object(GROUP, VERSION, hub_ns, PLURAL, NAME, patch)


@contextlib.contextmanager
def client_probe(hub_ns: str, probe: dict[str, Any]) -> Iterator[None]:
    """The ModelDeployment's client probe set to `probe` for the block (e.g. switched off,
    to see what the member's own signals miss), the default again after it."""
    patch_probe(hub_ns, probe)
    try:
        yield
    finally:
        patch_probe(hub_ns, None)


def wait_status(hub_ns: str, predicate: Any, what: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(client.ApiException):
            last = status(hub_ns)
            if predicate(last):
                return last
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; last status: {json.dumps(last, indent=1)}")


def serving_everywhere(s: dict[str, Any], replicas: int = 1) -> bool:
    return (
        s.get("phase") == "Ready"
        and (s.get("primary") or {}).get("readyReplicas") == replicas
        and (s.get("standby") or {}).get("readyReplicas") == replicas
    )


@pytest.fixture
def hub_ns(operator: None, sandbox: Sandbox) -> Iterator[str]:
    """A hub namespace for the ModelDeployment; the member namespace of the same name is
    created by the operator and removed here."""
    name = f"t-{int(time.time() * 1000) % 10**8:08d}"
    tenant_namespace(name)
    yield name
    with contextlib.suppress(Exception):
        custom().delete_namespaced_custom_object(GROUP, VERSION, name, PLURAL, NAME)
    # Let the operator's finalizer remove the member objects, then drop the namespaces.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            get(name)
        except client.ApiException:
            break
        time.sleep(0.5)
    for cluster in ("hub", "primary", "standby"):
        with contextlib.suppress(Exception):
            kube.core(cluster).delete_namespace(name)
    delete_policy(name)
