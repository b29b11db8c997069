"""Session fixtures for integration tests: a running sandbox and a namespace per test.

The sandbox is brought up if it is not running (or reused). If it cannot come up, the
session fails and says why: integration tests never skip.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client

from sandbox import kube, prometheus
from sandbox.api import Sandbox
from sandbox.config import CLUSTERS, MEMBER_CLUSTERS


def _running(sb: Sandbox) -> bool:
    status = sb.status()
    return (
        all(status[name] == "running" for name in CLUSTERS)
        and bool(status["runtime"])
        and bool(status["prometheus"])
    )


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    sb = Sandbox()
    if not _running(sb):
        try:
            sb.up()
        except Exception as exc:
            pytest.fail(f"the sandbox could not come up: {exc}", pytrace=False)
    assert prometheus.ready(), "Prometheus is not ready"
    return sb


@pytest.fixture
def core_primary(sandbox: Sandbox) -> client.CoreV1Api:
    return kube.core("primary")


@pytest.fixture
def namespace(sandbox: Sandbox) -> Iterator[str]:
    """A fresh namespace of the same name in primary and standby, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    for cluster in MEMBER_CLUSTERS:
        kube.core(cluster).create_namespace({"metadata": {"name": name}})
    yield name
    for cluster in MEMBER_CLUSTERS:
        # A cluster left in an outage by a failed test cannot answer; sandbox-down cleans it.
        with contextlib.suppress(Exception):
            kube.core(cluster).delete_namespace(name)


@pytest.fixture
def hub_namespace(sandbox: Sandbox) -> Iterator[str]:
    """A fresh namespace in the hub, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    # With the TenantPolicy it needs (none: nothing allowed). Not waiting for the admission
    # grants: modules using this fixture may run without the operator (it compiles them).
    tenant_namespace(name, admitted=False)
    yield name
    with contextlib.suppress(Exception):
        kube.core("hub").delete_namespace(name)
    delete_policy(name)


# The operator (module scope) and a hub namespace per test, for every module that needs a
# ModelDeployment served on the sandbox (tests/integration/modeldeployments.py).
from tests.integration.modeldeployments import (  # noqa: E402
    delete_policy,
    hub_ns,  # noqa: F401
    operator,  # noqa: F401
    tenant_namespace,
)
