"""OperatorConfig from the environment the chart sets."""

from __future__ import annotations

import kopf
import pytest

from modeldr.kube.config import OperatorConfig
from modeldr.kube.errors import ConfigError
from modeldr.operator.runtime import CONFIG_KEY, config_of


def test_defaults_without_environment() -> None:
    cfg = OperatorConfig.from_env({})
    assert cfg.namespace == "modeldr-system"
    assert cfg.member_secrets_namespace == "modeldr-system"
    assert cfg.traffic_providers == ("endpointslice", "gatewayapi", "webhook", "haproxy")
    assert cfg.leader_election and cfg.health_port == 8080 and cfg.metrics_port == 9090
    assert not cfg.member_allow_unsafe_credentials


def test_chart_environment() -> None:
    cfg = OperatorConfig.from_env(
        {
            "MODELDR_OPERATOR_NAMESPACE": "ops",
            "MODELDR_OPERATOR_POD_NAME": "modeldr-abc",
            "MODELDR_MEMBER_SECRET_NAMES": "member-a, member-b",
            "MODELDR_TRAFFIC_PROVIDERS": "endpointslice,webhook",
            "MODELDR_LEADER_ELECTION": "false",
            "MODELDR_LEADER_ELECTION_LEASE_DURATION_S": "20",
            "MODELDR_METRICS_PORT": "0",
            "MODELDR_LOG_FORMAT": "text",
            "MODELDR_MEMBER_ALLOW_UNSAFE_CREDENTIALS": "true",
        }
    )
    assert cfg.namespace == "ops" and cfg.member_secrets_namespace == "ops"
    assert cfg.pod_name == "modeldr-abc"
    assert cfg.member_secret_names == ("member-a", "member-b")
    assert cfg.traffic_providers == ("endpointslice", "webhook")
    assert not cfg.leader_election and cfg.lease_duration_s == 20
    assert cfg.metrics_port == 0 and cfg.log_format == "text"
    assert cfg.member_allow_unsafe_credentials


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"MODELDR_TRAFFIC_PROVIDERS": "endpointslice,istio"}, "unknown providers ['istio']"),
        ({"MODELDR_HEALTH_PORT": "eighty"}, "MODELDR_HEALTH_PORT='eighty' is not an integer"),
        ({"MODELDR_LEADER_ELECTION_RETRY_PERIOD_S": "0"}, "must be >= 1"),
        ({"MODELDR_LOG_FORMAT": "xml"}, "must be json or text"),
    ],
)
def test_bad_environment_is_named(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        OperatorConfig.from_env(env)
    assert fragment in str(error.value)


def test_current_is_what_the_cli_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings reach the handlers through kopf's memo: what `modeldr operator` put
    there, else the environment (a bare `kopf run`)."""
    monkeypatch.setenv("MODELDR_OPERATOR_POD_NAME", "from-env")
    assert config_of(kopf.Memo()).pod_name == "from-env"
    cfg = OperatorConfig.from_env({"MODELDR_OPERATOR_POD_NAME": "replica-7"})
    assert config_of(kopf.Memo({CONFIG_KEY: cfg})) is cfg
