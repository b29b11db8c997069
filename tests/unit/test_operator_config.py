"""OperatorConfig from the environment the chart sets; leader election decisions; JSON logs."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from modeldr.operator.config import ConfigError, OperatorConfig
from modeldr.operator.leader import may_acquire
from modeldr.operator.logs import DropNudges, JsonFormatter


def test_defaults_without_environment() -> None:
    cfg = OperatorConfig.from_env({})
    assert cfg.namespace == "modeldr-system"
    assert cfg.member_secrets_namespace == "modeldr-system"
    assert cfg.traffic_providers == ("endpointslice", "gatewayapi", "webhook")
    assert cfg.leader_election and cfg.health_port == 8080 and cfg.metrics_port == 9090


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
        }
    )
    assert cfg.namespace == "ops" and cfg.member_secrets_namespace == "ops"
    assert cfg.pod_name == "modeldr-abc"
    assert cfg.member_secret_names == ("member-a", "member-b")
    assert cfg.traffic_providers == ("endpointslice", "webhook")
    assert not cfg.leader_election and cfg.lease_duration_s == 20
    assert cfg.metrics_port == 0 and cfg.log_format == "text"


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


NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def lease(holder: str, renewed: datetime, duration: int = 15) -> dict[str, object]:
    return {
        "holderIdentity": holder,
        "renewTime": renewed.isoformat(),
        "leaseDurationSeconds": duration,
    }


def test_lease_free_or_mine_may_be_taken() -> None:
    assert may_acquire({}, "me", NOW)
    assert may_acquire({"holderIdentity": ""}, "me", NOW)
    assert may_acquire(lease("me", NOW), "me", NOW)


def test_lease_of_a_live_peer_is_respected_until_it_expires() -> None:
    assert not may_acquire(lease("peer", NOW - timedelta(seconds=5)), "me", NOW)
    assert not may_acquire(lease("peer", NOW - timedelta(seconds=14)), "me", NOW)
    assert may_acquire(lease("peer", NOW - timedelta(seconds=15)), "me", NOW)
    # A released lease (duration 1 s) is taken over almost at once.
    assert may_acquire(lease("peer", NOW - timedelta(seconds=1), duration=1), "me", NOW)


def test_json_log_lines() -> None:
    record = logging.LogRecord("modeldr.operator", logging.WARNING, __file__, 1, "x=%d", (3,), None)
    record.k8s_ref = {"namespace": "ns", "name": "md", "kind": "ModelDeployment", "uid": "u"}
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "warning" and line["message"] == "x=3"
    assert line["object"] == {"namespace": "ns", "name": "md", "kind": "ModelDeployment"}


def test_nudge_lines_are_dropped() -> None:
    drop = DropNudges()
    noisy = logging.LogRecord(
        "kopf.objects", 20, __file__, 1, "Handler '_nudge' succeeded.", (), None
    )
    useful = logging.LogRecord("kopf.objects", 20, __file__, 1, "Handler 'x' succeeded.", (), None)
    assert not drop.filter(noisy) and drop.filter(useful)
