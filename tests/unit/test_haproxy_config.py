"""The haproxy provider's fragment, slots, weights and runtime commands (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldr.kube.errors import ConfigError
from modeldr.kube.haproxy import HAProxySettings, parse_ports
from modeldr.operator.traffic.base import ClusterTarget, Owner, TrafficError, TrafficTarget
from modeldr.operator.traffic.haproxy import HAProxyProvider
from modeldr.operator.traffic.haproxy_config import (
    bound_port,
    commands,
    file_structure,
    render,
    server_weight,
    slot_count,
    slots,
)

OWNER = Owner("team-a", "bert", "uid-1")
SETTINGS = HAProxySettings(Path("/run/h/conf.d"), Path("/run/h/m.sock"), Path("/run/h/r.sock"))


def target(
    primary: tuple[str, ...], standby: tuple[str, ...], weights: tuple[int, int] = (50, 50)
) -> TrafficTarget:
    return TrafficTarget(
        "east",
        "east",
        "west",
        primary,
        8080,
        clusters=(
            ClusterTarget("east", "primary", primary, weights[0]),
            ClusterTarget("west", "standby", standby, weights[1]),
        ),
        mode="activeActive",
    )


def test_a_clusters_weight_is_its_share_whatever_its_server_count() -> None:
    one, three = target(("127.1.0.1",), ("127.2.0.1", "127.2.0.2", "127.2.0.3")).clusters
    assert server_weight(one) == 128
    assert server_weight(three) == 43  # 3 x 43 = 129 against 128: the same half
    assert server_weight(ClusterTarget("c", "primary", ("a",) * 100, 1)) == 1  # never 0 by rounding
    assert server_weight(ClusterTarget("c", "primary", ("a",), 0)) == 0
    assert server_weight(ClusterTarget("c", "primary", (), 50)) == 0


def test_slots_fill_each_cluster_then_park_the_rest_and_drain_a_weightless_cluster() -> None:
    t = target(("127.1.0.1", "127.1.0.2"), ("127.2.0.1",), weights=(100, 0))
    all_slots = slots(t, slot_count(t))
    assert slot_count(t) == 8 and len(all_slots) == 16
    east = [s for s in all_slots if s.server.startswith("east.")]
    assert [(s.server, s.address, s.state) for s in east[:3]] == [
        ("east.1", "127.1.0.1", "ready"),
        ("east.2", "127.1.0.2", "ready"),
        ("east.3", "127.0.0.1", "maint"),
    ]
    west = [s for s in all_slots if s.server.startswith("west.")]
    assert (west[0].address, west[0].weight, west[0].state) == ("127.2.0.1", 0, "drain")


def test_slot_count_doubles_until_every_address_fits() -> None:
    many = tuple(f"127.1.0.{i}" for i in range(1, 12))
    assert slot_count(target(many, ())) == 16


def test_the_fragment_has_the_balance_the_check_the_cluster_header_and_every_slot() -> None:
    t = target(("127.1.0.1",), ("127.2.0.1",))
    text = render(OWNER, SETTINGS, "leastconn", 19301, slots(t, slot_count(t)))
    assert "frontend md.team-a.bert\n    bind 127.0.0.1:19301" in text
    assert "    balance leastconn\n" in text
    assert "option httpchk GET /v2/health/ready" in text
    assert "set-header Modeldr-Cluster %[srv_name,field(1,.)]" in text
    assert "    server east.1 127.1.0.1:8080 weight 128\n" in text
    assert "    server east.2 127.0.0.1:1 weight 0 disabled\n" in text
    assert bound_port(text) == 19301


def test_the_structure_moves_with_balance_port_or_slots_not_with_addresses_or_weights() -> None:
    def mark(t: TrafficTarget, balance: str = "roundrobin", port: int = 19301) -> str | None:
        return file_structure(render(OWNER, SETTINGS, balance, port, slots(t, slot_count(t))))

    base = mark(target(("127.1.0.1",), ("127.2.0.1",)))
    assert base is not None
    assert mark(target(("127.1.0.9",), ("127.2.0.1",), weights=(10, 90))) == base
    assert mark(target(("127.1.0.1",), ("127.2.0.1",)), balance="leastconn") != base
    assert mark(target(("127.1.0.1",), ("127.2.0.1",)), port=19302) != base
    assert mark(target(tuple(f"127.1.0.{i}" for i in range(1, 10)), ())) != base
    assert file_structure("frontend hand-written\n") is None


def test_commands_set_address_then_weight_then_state_for_every_slot() -> None:
    t = target(("127.1.0.1",), ())
    lines = commands("md.team-a.bert", slots(t, slot_count(t)))
    assert lines[:3] == [
        "set server md.team-a.bert/east.1 addr 127.1.0.1 port 8080",
        "set server md.team-a.bert/east.1 weight 128",
        "set server md.team-a.bert/east.1 state ready",
    ]
    assert "set server md.team-a.bert/west.1 state maint" in lines
    assert len(lines) == 3 * 16


def test_settings_come_from_the_environment_and_say_what_is_missing() -> None:
    with pytest.raises(ConfigError, match="MODELDR_HAPROXY_CONFIG_DIR"):
        HAProxySettings.from_env({})
    env = {
        "MODELDR_HAPROXY_CONFIG_DIR": "/c",
        "MODELDR_HAPROXY_MASTER_SOCKET": "/m.sock",
        "MODELDR_HAPROXY_RUNTIME_SOCKET": "/r.sock",
        "MODELDR_HAPROXY_PORTS": "19301-19399",
    }
    settings = HAProxySettings.from_env(env)
    assert (settings.port_min, settings.port_max) == (19301, 19399)
    assert settings.entry_url(19301) == "http://127.0.0.1:19301"
    assert parse_ports("8080") == (8080, 8080)
    for bad in ("a-b", "20-10", "0-5"):
        with pytest.raises(ConfigError):
            parse_ports(bad)


def test_only_ip_addresses_reach_the_config_and_the_runtime_api() -> None:
    smuggled = target(("127.1.0.1 weight 0;set server x state ready",), ())
    with pytest.raises(TrafficError, match="is not an IP address"):
        slots(smuggled, slot_count(smuggled))
    v6 = target(("fd00::5",), ())
    text = render(OWNER, SETTINGS, "roundrobin", 19301, slots(v6, slot_count(v6)))
    assert "    server east.1 [fd00::5]:8080 weight 128\n" in text


def test_cleanup_without_settings_has_nothing_to_remove(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ModelDeployment deleted on an operator without HAProxy settings is not held up."""
    for name in ("MODELDR_HAPROXY_CONFIG_DIR", "MODELDR_HAPROXY_MASTER_SOCKET"):
        monkeypatch.delenv(name, raising=False)
    HAProxyProvider().cleanup(None, OWNER, None)  # type: ignore[arg-type]
