"""Member cluster registration from hub Secrets: parsing and the errors that say what to fix."""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from modeldr.kube.config import OperatorConfig
from modeldr.kube.constants import MEMBER_CLUSTER_LABEL
from modeldr.kube.errors import MemberError
from modeldr.kube.members import (
    INFRASTRUCTURE_KEY,
    MemberRegistry,
    api_client_from_kubeconfig,
    unsafe_credentials,
)

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://127.1.0.1:6443"}}],
    "users": [{"name": "u", "user": {"token": "t"}}],
    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
    "current-context": "x",
}


def test_a_valid_kubeconfig_gives_a_client_without_retries() -> None:
    api = api_client_from_kubeconfig("primary", yaml.safe_dump(KUBECONFIG))
    assert api.configuration.host == "https://127.1.0.1:6443"
    assert api.configuration.retries == 0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("clusters: [unclosed", "key 'kubeconfig' is not YAML"),
        ("just a string", "holds no kubeconfig contexts"),
        ("", "holds no kubeconfig contexts"),
        (yaml.safe_dump({**KUBECONFIG, "contexts": []}), "holds no kubeconfig contexts"),
        (
            yaml.safe_dump({**KUBECONFIG, "current-context": "missing"}),
            "invalid kubeconfig",
        ),
    ],
    ids=["bad-yaml", "not-a-mapping", "empty", "no-contexts", "unknown-context"],
)
def test_bad_kubeconfigs_are_member_errors_naming_the_cluster(text: str, fragment: str) -> None:
    with pytest.raises(MemberError) as info:
        api_client_from_kubeconfig("primary", text)
    assert fragment in str(info.value)
    assert "member cluster 'primary'" in str(info.value)
    assert info.value.cluster == "primary"


def with_user(**user: Any) -> dict[str, Any]:
    return {**KUBECONFIG, "users": [{"name": "u", "user": user}]}


def with_cluster(**cluster: Any) -> dict[str, Any]:
    body = {"server": "https://127.1.0.1:6443", **cluster}
    return {**KUBECONFIG, "clusters": [{"name": "c", "cluster": body}]}


@pytest.mark.parametrize(
    ("kubeconfig", "field"),
    [
        (
            with_user(exec={"apiVersion": "client.authentication.k8s.io/v1", "command": "sh"}),
            "users[u].exec",
        ),
        (with_user(**{"auth-provider": {"name": "oidc", "config": {}}}), "users[u].auth-provider"),
        (
            with_user(tokenFile="/var/run/secrets/kubernetes.io/serviceaccount/token"),
            "users[u].tokenFile",
        ),
        (
            with_user(**{"client-certificate": "/etc/c.crt", "client-key": "/etc/c.key"}),
            "users[u].client-certificate",
        ),
        (
            with_cluster(**{"certificate-authority": "/etc/ca.crt"}),
            "clusters[c].certificate-authority",
        ),
        (
            with_cluster(**{"insecure-skip-tls-verify": True}),
            "clusters[c].insecure-skip-tls-verify",
        ),
    ],
    ids=["exec", "auth-provider", "tokenFile", "client-cert-files", "ca-file", "insecure"],
)
def test_credentials_that_run_code_or_read_files_are_refused_unless_allowed(
    kubeconfig: dict[str, Any], field: str, tmp_path: Any
) -> None:
    with pytest.raises(MemberError) as info:
        api_client_from_kubeconfig("primary", yaml.safe_dump(kubeconfig))
    assert f"kubeconfig refused: {field}" in str(info.value)
    assert "memberClusters.allowUnsafeCredentials" in str(info.value)
    assert field in unsafe_credentials(kubeconfig)


def test_an_exec_plugin_is_never_run_when_refused_and_runs_when_the_admin_allows_it(
    tmp_path: Any,
) -> None:
    marker = tmp_path / "ran"
    plugin = tmp_path / "plugin.sh"
    plugin.write_text(
        f"#!/bin/sh\ntouch {marker}\n"
        'echo \'{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", '
        '"status": {"token": "t"}}\'\n'
    )
    plugin.chmod(0o755)
    kubeconfig = yaml.safe_dump(
        with_user(exec={"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin)})
    )
    with pytest.raises(MemberError):
        api_client_from_kubeconfig("primary", kubeconfig)
    assert not marker.exists(), "the refused plugin ran"
    api = api_client_from_kubeconfig("primary", kubeconfig, allow_unsafe=True)
    assert marker.exists() and api.configuration.host == "https://127.1.0.1:6443"


def test_embedded_credentials_are_safe() -> None:
    embedded = with_user(**{"client-certificate-data": "Y2VydA==", "client-key-data": "a2V5"})
    embedded["clusters"][0]["cluster"]["certificate-authority-data"] = "Y2E="
    assert unsafe_credentials(embedded) == []
    assert unsafe_credentials(KUBECONFIG) == []


def _secret(name: str, cluster: str, version: str = "1", **data: str) -> Any:
    encoded = {k.replace("_", "-"): base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return SimpleNamespace(
        metadata=SimpleNamespace(
            name=name,
            namespace="modeldr-system",
            labels={MEMBER_CLUSTER_LABEL: cluster},
            resource_version=version,
        ),
        data=encoded,
    )


class FakeRegistry(MemberRegistry):
    def __init__(self, secrets: list[Any] | Exception) -> None:
        super().__init__(None, OperatorConfig())
        self.secrets = secrets

    def _secrets(self) -> list[Any]:
        if isinstance(self.secrets, Exception):
            raise self.secrets
        return self.secrets


def test_a_registered_member_with_its_prometheus_url() -> None:
    registry = FakeRegistry(
        [
            _secret(
                "member-primary",
                "primary",
                kubeconfig=yaml.safe_dump(KUBECONFIG),
                prometheus_url=" http://127.0.0.1:9090 \n",
            )
        ]
    )
    member = registry.get("primary")
    assert member.name == "primary"
    assert member.prometheus_url == "http://127.0.0.1:9090"
    assert member.api.configuration.host == "https://127.1.0.1:6443"


def test_a_secret_without_the_kubeconfig_key() -> None:
    registry = FakeRegistry([_secret("member-primary", "primary", config="x")])
    with pytest.raises(MemberError, match="Secret modeldr-system/member-primary has no key"):
        registry.get("primary")


def test_a_secret_with_a_bad_kubeconfig_is_named_and_its_text_never_quoted() -> None:
    secret_text = "token: s3cr3t-t0ken: [unclosed"
    registry = FakeRegistry([_secret("member-primary", "primary", kubeconfig=secret_text)])
    with pytest.raises(MemberError) as info:
        registry.get("primary")
    message = str(info.value)
    assert message.startswith("member cluster 'primary': Secret modeldr-system/member-primary:")
    assert "is not YAML" in message and "(line 1, column" in message
    # The message goes to status and Events: no fragment of the credentials in it.
    assert "s3cr3t" not in message and message.count("member cluster") == 1


def test_an_unregistered_cluster_says_how_to_register_it() -> None:
    registry = FakeRegistry([])
    with pytest.raises(MemberError) as info:
        registry.get("standby")
    message = str(info.value)
    assert "no Secret labelled modeldr.io/member-cluster=standby" in message
    assert "in namespace modeldr-system" in message


def test_hub_secrets_that_cannot_be_read_are_a_member_error() -> None:
    registry = FakeRegistry(ConnectionError("hub down"))
    with pytest.raises(MemberError, match="cannot read member Secrets in the hub: hub down"):
        registry.get("primary")


def test_the_infrastructure_webhook_url_is_read_when_the_secret_has_the_key() -> None:
    registry = FakeRegistry(
        [
            _secret(
                "member-primary",
                "primary",
                kubeconfig=yaml.safe_dump(KUBECONFIG),
                infrastructure_webhook_url=" http://127.0.0.1:19200\n",
            ),
            _secret("member-standby", "standby", kubeconfig=yaml.safe_dump(KUBECONFIG)),
        ]
    )
    assert INFRASTRUCTURE_KEY == "infrastructure-webhook-url"
    assert registry.get("primary").infrastructure_url == "http://127.0.0.1:19200"
    # Without the key (or with a blank value) the member has no infrastructure provider.
    assert registry.get("standby").infrastructure_url is None
    blank = FakeRegistry(
        [
            _secret(
                "member-standby",
                "standby",
                kubeconfig=yaml.safe_dump(KUBECONFIG),
                infrastructure_webhook_url="  ",
            )
        ]
    )
    assert blank.get("standby").infrastructure_url is None
