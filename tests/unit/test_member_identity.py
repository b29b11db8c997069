"""`modeldr member-kubeconfig`: the operator's least-privilege kubeconfig for a member, with
everything embedded (the operator refuses file references) and never an admin's
credentials. The chart side (its ClusterRole): tests/unit/test_agent.py; on the sandbox,
every member Secret holds it (sandbox/operator_up.py)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modeldr.kube import memberidentity
from modeldr.kube.members import unsafe_credentials


def admin(**cluster: Any) -> dict[str, Any]:
    return {
        "contexts": [{"name": "primary", "context": {"cluster": "kind-primary", "user": "admin"}}],
        "clusters": [
            {"name": "kind-primary", "cluster": {"server": "https://127.0.0.1:1", **cluster}}
        ],
        "users": [{"name": "admin", "user": {"client-key-data": "c2VjcmV0"}}],
        "current-context": "primary",
    }


class FakeCore:
    def __init__(self, status: int | None = None) -> None:
        self.asked: list[tuple[str, str, dict[str, Any]]] = []
        self.status = status

    def create_namespaced_service_account_token(
        self, name: str, namespace: str, body: dict[str, Any], **_: Any
    ) -> Any:
        self.asked.append((name, namespace, body))
        if self.status:
            raise client.ApiException(status=self.status, reason="test")
        return client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[]),
            status=client.V1TokenRequestStatus(token="t0ken", expiration_timestamp=None),
        )


def test_the_kubeconfig_holds_the_member_accounts_token_and_the_ca_embedded(
    tmp_path: Path,
) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    name, cluster = memberidentity.cluster_of(admin(**{"certificate-authority": str(ca)}), None)
    assert name == "primary"
    core = FakeCore()
    printed = memberidentity.member_kubeconfig(
        core,
        name,
        cluster,
        server="https://172.30.213.4:6443",
    )
    assert core.asked == [
        (
            "modeldr-agent-member",
            "modeldr-agent",
            {"spec": {"expirationSeconds": memberidentity.DEFAULT_DURATION_S}},
        )
    ]
    [entry] = printed["clusters"]
    assert entry["cluster"] == {
        "server": "https://172.30.213.4:6443",
        "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode(),
    }
    assert printed["users"] == [
        {
            "name": "system:serviceaccount:modeldr-agent:modeldr-agent-member",
            "user": {"token": "t0ken"},
        }
    ]
    assert unsafe_credentials(printed) == []  # what the operator accepts as it is
    assert "c2VjcmV0" not in str(printed)  # nothing of the admin's credentials


def test_a_cluster_that_skips_tls_verification_is_refused() -> None:
    with pytest.raises(memberidentity.IdentityError, match="skips TLS verification"):
        memberidentity.cluster_of(admin(**{"insecure-skip-tls-verify": True}), "primary")
    with pytest.raises(memberidentity.IdentityError, match="no context 'nope'"):
        memberidentity.cluster_of(admin(), "nope")


def test_a_member_without_the_chart_says_what_to_install() -> None:
    _, cluster = memberidentity.cluster_of(admin(), None)
    with pytest.raises(memberidentity.IdentityError, match="install charts/modeldr-agent"):
        memberidentity.member_kubeconfig(FakeCore(404), "primary", cluster)
