"""The node agent's pure parts: the nftables rule builder (golden text), the order model,
expiry and startup-cleanup decisions, the generated CRD, and the agent chart (rendered by
the real helm). The agent against real nftables and a real apiserver:
tests/integration/test_network_faults.py."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from modeldr.agent import decide, rules
from modeldr.agent.rules import Rule
from modeldr.api.networkfault import (
    MAX_EXPIRY_AHEAD_S,
    NetworkFaultSpec,
    NodeReport,
    Order,
    order_name,
)
from modeldr.kube.crds import AGENT_CRDS, render, write_or_check
from tests.tooling import require_tool

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
BASE = rules.chain_base("primary", "gpu-0")
CRD_FILE = "modeldr.io_networkfaults.yaml"

# ------------------------------------------------------------------------ rule builder

GOLDEN_PARTITION_AND_LOSS = """\
add table inet modeldr_agent
add chain inet modeldr_agent primary_gpu_0_forward { type filter hook forward priority -10; policy accept; }
add chain inet modeldr_agent primary_gpu_0_output { type filter hook output priority -10; policy accept; }
add chain inet modeldr_agent primary_gpu_0_input { type filter hook input priority -10; policy accept; }
flush chain inet modeldr_agent primary_gpu_0_forward
flush chain inet modeldr_agent primary_gpu_0_output
flush chain inet modeldr_agent primary_gpu_0_input
add set inet modeldr_agent primary_gpu_0_0123abcd_4 { type ipv4_addr; flags timeout; }
delete set inet modeldr_agent primary_gpu_0_0123abcd_4
add set inet modeldr_agent primary_gpu_0_6dea6145_4 { type ipv4_addr; flags timeout; }
flush set inet modeldr_agent primary_gpu_0_6dea6145_4
add element inet modeldr_agent primary_gpu_0_6dea6145_4 { 127.1.129.2 timeout 30000ms, 127.1.129.10 timeout 30000ms }
add rule inet modeldr_agent primary_gpu_0_output ip daddr @primary_gpu_0_6dea6145_4 ip saddr != 127.1.0.1 meta l4proto { tcp, udp } th dport { 8080, 9090 } numgen random mod 100 < 30 drop comment "modeldr:ml/loss/u1"
add rule inet modeldr_agent primary_gpu_0_input ip saddr @primary_gpu_0_6dea6145_4 ip daddr != 127.1.0.1 meta l4proto { tcp, udp } th sport { 8080, 9090 } numgen random mod 100 < 30 drop comment "modeldr:ml/loss/u1"
add rule inet modeldr_agent primary_gpu_0_forward ip daddr @primary_gpu_0_6dea6145_4 meta l4proto { tcp, udp } th dport { 8080, 9090 } numgen random mod 100 < 30 drop comment "modeldr:ml/loss/u1"
add rule inet modeldr_agent primary_gpu_0_forward ip saddr @primary_gpu_0_6dea6145_4 meta l4proto { tcp, udp } th sport { 8080, 9090 } numgen random mod 100 < 30 drop comment "modeldr:ml/loss/u1"
add set inet modeldr_agent primary_gpu_0_8abdb7d1_4 { type ipv4_addr; flags timeout; }
flush set inet modeldr_agent primary_gpu_0_8abdb7d1_4
add element inet modeldr_agent primary_gpu_0_8abdb7d1_4 { 127.1.129.4 timeout 12346ms }
add set inet modeldr_agent primary_gpu_0_8abdb7d1_6 { type ipv6_addr; flags timeout; }
flush set inet modeldr_agent primary_gpu_0_8abdb7d1_6
add element inet modeldr_agent primary_gpu_0_8abdb7d1_6 { fd00::4 timeout 12346ms }
add rule inet modeldr_agent primary_gpu_0_output ip daddr @primary_gpu_0_8abdb7d1_4 ip saddr != 127.1.0.1 drop comment "modeldr:ml/part/u2"
add rule inet modeldr_agent primary_gpu_0_input ip saddr @primary_gpu_0_8abdb7d1_4 ip daddr != 127.1.0.1 drop comment "modeldr:ml/part/u2"
add rule inet modeldr_agent primary_gpu_0_forward ip daddr @primary_gpu_0_8abdb7d1_4 drop comment "modeldr:ml/part/u2"
add rule inet modeldr_agent primary_gpu_0_forward ip saddr @primary_gpu_0_8abdb7d1_4 drop comment "modeldr:ml/part/u2"
add rule inet modeldr_agent primary_gpu_0_output ip6 daddr @primary_gpu_0_8abdb7d1_6 drop comment "modeldr:ml/part/u2"
add rule inet modeldr_agent primary_gpu_0_input ip6 saddr @primary_gpu_0_8abdb7d1_6 drop comment "modeldr:ml/part/u2"
add rule inet modeldr_agent primary_gpu_0_forward ip6 daddr @primary_gpu_0_8abdb7d1_6 drop comment "modeldr:ml/part/u2"
add rule inet modeldr_agent primary_gpu_0_forward ip6 saddr @primary_gpu_0_8abdb7d1_6 drop comment "modeldr:ml/part/u2"
"""  # noqa: E501

GOLDEN_NOTHING = """\
add table inet modeldr_agent
add chain inet modeldr_agent primary_gpu_0_forward { type filter hook forward priority -10; policy accept; }
add chain inet modeldr_agent primary_gpu_0_output { type filter hook output priority -10; policy accept; }
add chain inet modeldr_agent primary_gpu_0_input { type filter hook input priority -10; policy accept; }
delete chain inet modeldr_agent primary_gpu_0_forward
delete chain inet modeldr_agent primary_gpu_0_output
delete chain inet modeldr_agent primary_gpu_0_input
add set inet modeldr_agent primary_gpu_0_0123abcd_4 { type ipv4_addr; flags timeout; }
delete set inet modeldr_agent primary_gpu_0_0123abcd_4
"""  # noqa: E501

STALE_SET = "primary_gpu_0_0123abcd_4"  # an order's set the kernel holds, no order needs


def golden_rules() -> list[Rule]:
    loss = Rule(
        "ml/loss/u1",
        "PacketLoss",
        ("127.1.129.2", "127.1.129.10"),
        (8080, 9090),
        30,
        expires_at=NOW + timedelta(seconds=30),
    )
    partition = Rule(
        "ml/part/u2",
        "NetworkPartition",
        ("fd00::4", "127.1.129.4"),
        expires_at=NOW + timedelta(seconds=12.3456),
    )
    return [partition, loss]


def test_rule_text_for_a_partition_and_a_packet_loss_is_golden() -> None:
    # Orders sorted by key, addresses by family and value (127.1.129.2 before .10); each
    # order's addresses in a set per family whose elements time out at its expiry (12.3456 s
    # left: 12346 ms, rounded up); the stale set deleted after the chains were flushed.
    text = rules.script(BASE, "127.1.0.1", golden_rules(), NOW, {STALE_SET})
    assert text == GOLDEN_PARTITION_AND_LOSS


def test_no_order_deletes_the_agents_chains_and_sets_and_nothing_else() -> None:
    text = rules.script(BASE, "127.1.0.1", [], NOW, {STALE_SET})
    assert text == GOLDEN_NOTHING
    assert "delete table" not in text  # other agents' chains in the same table stay


def test_a_renewal_changes_only_the_time_left() -> None:
    renewed = [
        Rule(
            r.key,
            r.effect,
            r.ips,
            r.ports,
            r.loss_percent,
            expires_at=r.expires_at + timedelta(seconds=20),
        )
        for r in golden_rules()
    ]
    before = rules.script(BASE, "127.1.0.1", golden_rules(), NOW)
    after = rules.script(BASE, "127.1.0.1", renewed, NOW)
    changed = [
        (a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    assert [b for _, b in changed] == [
        "add element inet modeldr_agent primary_gpu_0_6dea6145_4 "
        "{ 127.1.129.2 timeout 50000ms, 127.1.129.10 timeout 50000ms }",
        "add element inet modeldr_agent primary_gpu_0_8abdb7d1_4 { 127.1.129.4 timeout 32346ms }",
        "add element inet modeldr_agent primary_gpu_0_8abdb7d1_6 { fd00::4 timeout 32346ms }",
    ]


def test_the_time_left_is_rounded_up_and_never_zero() -> None:
    assert rules.timeout_ms(NOW + timedelta(microseconds=1), NOW) == 1
    assert rules.timeout_ms(NOW - timedelta(seconds=1), NOW) == 1
    assert rules.timeout_ms(NOW + timedelta(seconds=2), NOW) == 2000


def test_owned_sets_are_this_agents_only_even_when_its_name_prefixes_another() -> None:
    listing = {
        "nftables": [
            {"set": {"name": "primary_gpu_0_0123abcd_4"}},
            {"set": {"name": "primary_gpu_0_89abcdef_6"}},
            # primary_gpu's agent must not take primary_gpu_0's sets, nor anyone's else
            {"set": {"name": "primary_gpu_0_0_0123abcd_4"}},
            {"set": {"name": "primary_gpu_1_0123abcd_4"}},
            {"set": {"name": "primary_gpu_0_0123abcd_4x"}},
            {"chain": {"name": "primary_gpu_0_output"}},
        ]
    }
    assert rules.owned_sets(listing, BASE) == {
        "primary_gpu_0_0123abcd_4",
        "primary_gpu_0_89abcdef_6",
    }
    assert rules.owned_sets(listing, "primary_gpu") == set()
    assert rules.owned_sets({}, BASE) == set()


def test_latency_is_never_an_nftables_rule() -> None:
    # tc netem makes it (tests/unit/test_agent_tc.py); no packet mark a CNI relies on is
    # rewritten.
    with pytest.raises(ValueError, match="unknown effect 'Latency'"):
        rules.rule_lines(Rule("a/b/c", "Latency", ("10.0.0.5",), expires_at=NOW), BASE, "10.0.0.1")


def test_chain_names_are_short_safe_and_distinct() -> None:
    assert rules.chain_base("primary", "gpu-0") == "primary_gpu_0"
    long = rules.chain_base("a-very-long-cluster-name", "ip-10-0-12-34.ec2.internal")
    assert len(long) <= rules.MAX_CHAIN_BASE and long.isascii()
    assert set(long) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")
    assert long != rules.chain_base("a-very-long-cluster-name", "ip-10-0-12-35.ec2.internal")


def test_owned_keys_reads_this_agents_rule_comments_only() -> None:
    listing = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "modeldr_agent"}},
            {"rule": {"chain": "primary_gpu_0_output", "comment": "modeldr:ml/a/u1"}},
            {"rule": {"chain": "primary_gpu_0_input", "comment": "modeldr:ml/a/u1"}},
            {"rule": {"chain": "primary_gpu_0_forward", "comment": "modeldr:ml/b/u2"}},
            {"rule": {"chain": "primary_gpu_1_output", "comment": "modeldr:ml/c/u3"}},
            {"rule": {"chain": "primary_gpu_0_output", "comment": "someone else's"}},
            {"rule": {"chain": "primary_gpu_0_output"}},
        ]
    }
    assert rules.owned_keys(listing, BASE) == {"ml/a/u1", "ml/b/u2"}
    assert rules.owned_keys({}, BASE) == set()


@pytest.mark.skipif(not Path("/usr/sbin/nft").exists(), reason="no nft binary here")
def test_the_golden_script_is_valid_nftables() -> None:
    """`nft -c` parses and checks the script against the kernel without applying it."""
    done = subprocess.run(
        ["nft", "-c", "-f", "-"],
        input=GOLDEN_PARTITION_AND_LOSS + GOLDEN_NOTHING,
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- orders and decisions


def order(
    name: str = "f1",
    *,
    effect: str = "NetworkPartition",
    expires: datetime = NOW + timedelta(seconds=10),
    targets: list[dict[str, str]] | None = None,
    deleting: bool = False,
    **extra: Any,
) -> Order:
    targets = targets or [{"ip": "127.1.129.2", "node": "gpu-0"}]
    spec = {
        "effect": effect,
        "targets": targets,
        "nodes": sorted({t["node"] for t in targets}),
        "expiresAt": expires.isoformat(),
        **extra,
    }
    return Order.model_validate(
        {
            "namespace": "ml",
            "name": name,
            "uid": f"uid-{name}",
            "deleting": deleting,
            "spec": spec,
        }
    )


def test_an_order_holds_on_its_nodes_until_it_expires() -> None:
    both = [{"ip": "127.1.129.2", "node": "gpu-0"}, {"ip": "127.1.130.2", "node": "gpu-1"}]
    live = order("live", targets=both)
    want = decide.desired([live], "gpu-0", NOW, latency=None)
    assert [(r.key, r.ips) for r in want.rules] == [("ml/live/uid-live", ("127.1.129.2",))]
    # The kernel is told the order's own expiry too (set element timeouts).
    assert want.rules[0].expires_at == NOW + timedelta(seconds=10)
    # Expiry is the order's own: at expiresAt exactly it is over, without the operator.
    at_expiry = decide.desired([live], "gpu-0", NOW + timedelta(seconds=10), latency=None)
    assert at_expiry.rules == () and at_expiry.expired == ("ml/live/uid-live",)
    just_before = NOW + timedelta(seconds=9.999)
    assert decide.desired([live], "gpu-0", just_before, latency=None).rules != ()


def test_orders_for_other_nodes_and_orders_being_deleted_are_not_held() -> None:
    other = order("other", targets=[{"ip": "127.1.130.2", "node": "gpu-1"}])
    gone = order("gone", deleting=True)
    want = decide.desired([other, gone], "gpu-0", NOW, latency=None)
    assert want == decide.Desired()


def test_latency_where_netem_is_missing_is_refused_with_the_reason() -> None:
    slow = order("slow", effect="Latency", latencyMilliseconds=100)
    part = order("part")
    want = decide.desired([slow, part], "gpu-0", NOW, latency="no sch_netem")
    assert [r.key for r in want.rules] == ["ml/part/uid-part"]
    assert want.unsupported == {"ml/slow/uid-slow": "no sch_netem"}
    # Where netem exists it is held as tc's delay, not as a rule (test_agent_tc.py).
    held = decide.desired([slow], "gpu-0", NOW, latency=None)
    assert held.rules == () and held.delay is not None and held.delay.key == "ml/slow/uid-slow"


def test_the_agent_looks_again_at_the_earliest_expiry_of_what_it_holds() -> None:
    soon, later = order("soon", expires=NOW + timedelta(seconds=0.2)), order("later")
    other = order(
        "other",
        expires=NOW + timedelta(seconds=0.1),
        targets=[{"ip": "127.1.130.2", "node": "gpu-1"}],
    )
    held = decide.desired([soon, later, other], "gpu-0", NOW, latency=None)
    expiry = decide.next_expiry([soon, later, other], held)
    assert expiry == NOW + timedelta(seconds=0.2)  # not gpu-1's order
    assert decide.wait_seconds(expiry, NOW, 0.5) == pytest.approx(0.2)
    assert decide.wait_seconds(expiry, NOW + timedelta(seconds=1), 0.5) == 0.0
    assert decide.wait_seconds(None, NOW, 0.5) == 0.5
    assert decide.wait_seconds(NOW + timedelta(hours=1), NOW, 0.5) == 0.5


def test_startup_cleanup_removes_what_no_live_order_backs() -> None:
    # The agent was SIGKILLed while two orders held; one was deleted meanwhile.
    assert decide.stale({"ml/a/u1", "ml/b/u2"}, ["ml/a/u1"]) == {"ml/b/u2"}
    # At start, before any order is seen, everything in its chains is unbacked.
    assert decide.stale({"ml/a/u1"}, []) == {"ml/a/u1"}


def test_a_report_is_written_only_when_it_changes() -> None:
    applied = NodeReport(state="Applied", targets=["127.1.129.2"])
    assert not decide.report_needed(applied, "Applied", "", ["127.1.129.2"])
    assert decide.report_needed(applied, "Applied", "", ["127.1.129.3"])
    assert decide.report_needed(applied, "Removed", "expired", [])
    assert decide.report_needed(None, "Applied", "", [])


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"effect": "PacketLoss"}, "lossPercent is required"),
        ({"lossPercent": 5}, "lossPercent is required for PacketLoss and only"),
        ({"effect": "Latency"}, "latencyMilliseconds is required"),
        ({"jitterMilliseconds": 5}, "jitterMilliseconds is only for Latency"),
        ({"nodes": ["gpu-1"]}, "targets on nodes not listed"),
        ({"expiresAt": "2030-01-02T03:04:05"}, "time zone"),
        ({"ports": [0]}, "between 1 and 65535"),
        ({"targets": [{"ip": "not-an-ip", "node": "gpu-0"}]}, "IP"),
        # A zone reached nft as a parse error that failed every order's transaction.
        ({"targets": [{"ip": "fe80::1%x", "node": "gpu-0"}]}, "without a zone"),
        ({"targets": [{"ip": "FD00::5", "node": "gpu-0"}]}, "canonical form"),
        ({"targets": [{"ip": "fd00:0::5", "node": "gpu-0"}]}, "canonical form"),
        ({"targets": [{"ip": "::ffff:127.1.129.2", "node": "gpu-0"}]}, "not IPv4-mapped"),
    ],
)
def test_invalid_orders_are_refused(changes: dict[str, Any], words: str) -> None:
    spec = {
        "effect": "NetworkPartition",
        "targets": [{"ip": "127.1.129.2", "node": "gpu-0"}],
        "nodes": ["gpu-0"],
        "expiresAt": NOW.isoformat(),
        **changes,
    }
    with pytest.raises(ValidationError) as caught:
        NetworkFaultSpec.model_validate(spec)
    assert words.lower() in str(caught.value).lower()


def test_canonical_addresses_of_both_families_are_orders() -> None:
    both = [{"ip": "127.1.129.2", "node": "gpu-0"}, {"ip": "fd00::5", "node": "gpu-0"}]
    assert [t.ip for t in order(targets=both).spec.targets] == ["127.1.129.2", "fd00::5"]


def test_an_order_expiring_beyond_the_cap_is_refused_and_never_held() -> None:
    cap = timedelta(seconds=MAX_EXPIRY_AHEAD_S)
    at_cap = order("at-cap", expires=NOW + cap)
    beyond = order("beyond", expires=NOW + cap + timedelta(seconds=1))
    forever = order("forever", expires=datetime(3000, 1, 1, tzinfo=UTC))
    want = decide.desired([at_cap, beyond, forever], "gpu-0", NOW, latency=None)
    assert [r.key for r in want.rules] == ["ml/at-cap/uid-at-cap"]
    assert set(want.refused) == {"ml/beyond/uid-beyond", "ml/forever/uid-forever"}
    assert f"at most {MAX_EXPIRY_AHEAD_S} s ahead" in want.refused["ml/beyond/uid-beyond"]
    assert "301 s ahead" in want.refused["ml/beyond/uid-beyond"]
    # Renewed by the operator (expiresAt pushed on as time passes) it is held again.
    later = NOW + timedelta(seconds=200)
    assert [r.key for r in decide.desired([beyond], "gpu-0", later, latency=None).rules] == [
        "ml/beyond/uid-beyond"
    ]


def test_isolate_keeps_the_rules_the_kernel_takes_and_names_the_others() -> None:
    a, b, c = (
        Rule(f"ml/{n}/u", "NetworkPartition", (f"127.1.129.{i}",), expires_at=NOW)
        for i, n in enumerate("abc")
    )
    checked: list[tuple[Rule, ...]] = []

    def refusal(some: tuple[Rule, ...]) -> str | None:
        checked.append(some)
        return "syntax error" if b in some else None

    good, bad = decide.isolate([a, b, c], refusal)
    assert good == (a, c) and bad == {"ml/b/u": "syntax error"}
    assert checked == [(a,), (b,), (c,)]  # each order on its own


@pytest.mark.skipif(not Path("/usr/sbin/nft").exists(), reason="no nft binary here")
def test_the_kernel_refusing_one_order_leaves_the_others_in_the_transaction() -> None:
    """With the real `nft -c`: a rule the kernel refuses (a zoned address, which the model
    and the CRD now refuse too) is isolated; the rest is one transaction the kernel takes."""
    from modeldr.agent import nft

    later = NOW + timedelta(seconds=30)
    partition = Rule("ml/part/u1", "NetworkPartition", ("127.1.129.2",), expires_at=later)
    zoned = Rule("ml/zoned/u2", "NetworkPartition", ("fe80::1%x",), expires_at=later)
    loss = Rule("ml/loss/u3", "PacketLoss", ("127.1.129.3",), (8080,), 30, expires_at=later)

    def refusal(some: tuple[Rule, ...]) -> str | None:
        return nft.refusal(rules.script(BASE, "127.1.0.1", some, NOW))

    assert refusal((partition, zoned, loss)) is not None  # the whole transaction fails
    good, bad = decide.isolate([partition, zoned, loss], refusal)
    assert good == (partition, loss) and list(bad) == ["ml/zoned/u2"]
    assert bad["ml/zoned/u2"]  # nft's own words
    assert refusal(good) is None


def pod(
    name: str, ip: str, *, namespace: str = "ml", host: bool = False, model: bool = True
) -> decide.PodFacts:
    labels = {"modeldr.io/name": "tiny-bert"} if model else {"k8s-app": "kube-dns"}
    return decide.PodFacts(namespace, name, (ip,), host, labels)


NODE_PODS = [
    pod("tiny-bert-1", "127.1.129.2"),
    pod("modeldr-agent-x", "127.1.0.1", namespace="modeldr-agent", host=True, model=False),
    pod("coredns-1", "127.1.129.3", namespace="kube-system", model=False),
    pod("other-team", "127.1.129.4", namespace="team-b"),
    pod("sidecar", "127.1.129.5", model=False),
]


def test_a_model_pod_of_the_orders_namespace_on_this_node_is_a_target() -> None:
    good = order(targets=[{"ip": "127.1.129.2", "node": "gpu-0", "pod": "tiny-bert-1"}])
    assert decide.refused_targets(good, "gpu-0", "127.1.0.1", NODE_PODS) == {}


def test_the_node_host_network_dns_other_teams_and_unknown_addresses_are_refused() -> None:
    ips = ["127.1.0.1", "127.1.129.3", "127.1.129.4", "127.1.129.5", "127.1.129.9"]
    bad = order(targets=[{"ip": ip, "node": "gpu-0"} for ip in ips])
    refused = decide.refused_targets(bad, "gpu-0", "127.1.0.1", NODE_PODS)
    assert refused == {
        "127.1.0.1": "the address of node gpu-0 itself (host network), not a pod's",
        "127.1.129.3": "pod kube-system/coredns-1 is not in the order's namespace ml",
        "127.1.129.4": "pod team-b/other-team is not in the order's namespace ml",
        "127.1.129.5": "pod ml/sidecar is not a ModelDeployment's (no modeldr.io/name)",
        "127.1.129.9": "no pod running on node gpu-0 has this address",
    }
    named = order(targets=[{"ip": "127.1.129.2", "node": "gpu-0", "pod": "someone-else"}])
    assert decide.refused_targets(named, "gpu-0", "127.1.0.1", NODE_PODS) == {
        "127.1.129.2": "the address is pod ml/tiny-bert-1's, not pod someone-else's"
    }
    # Targets on other nodes are their agents' to judge.
    elsewhere = order(targets=[{"ip": "127.1.130.7", "node": "gpu-1"}])
    assert decide.refused_targets(elsewhere, "gpu-0", "127.1.0.1", NODE_PODS) == {}


def test_an_order_with_a_refused_target_is_refused_whole_and_never_held() -> None:
    mixed = order(
        targets=[{"ip": "127.1.129.2", "node": "gpu-0"}, {"ip": "127.1.0.1", "node": "gpu-0"}]
    )
    refused = decide.refused_targets(mixed, "gpu-0", "127.1.0.1", NODE_PODS)
    message = decide.refusal_message(refused)
    want = decide.desired([mixed], "gpu-0", NOW, None, refused_by_check={mixed.key: message})
    assert want.rules == () and want.refused == {mixed.key: message}
    assert message.startswith("targets refused, nothing applied for this order: 127.1.0.1: ")


def test_order_names_follow_the_journal_id() -> None:
    assert order_name("f-0123456789ab") == "modeldr-f-0123456789ab"


# ------------------------------------------------------------------ CRD and agent chart


def test_the_committed_networkfault_crd_is_what_the_generator_writes() -> None:
    for name, text in render(AGENT_CRDS).items():
        assert (ROOT / name).read_text() == text, "run .venv/bin/python scripts/gen_agent_crd.py"
    assert write_or_check(ROOT, AGENT_CRDS, "gen_agent_crd.py", ["--check"]) == 0
    script = [sys.executable, str(ROOT / "scripts" / "gen_agent_crd.py"), "--check"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(script, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) for every rule of a ClusterRole."""
    return {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def _render_chart(*sets: str) -> list[dict[str, Any]]:
    args = [
        "template",
        "modeldr-agent",
        str(ROOT / "charts/modeldr-agent"),
        "--namespace",
        "modeldr-agent",
    ]
    for value in sets:
        args += ["--set", value]
    done = subprocess.run(
        [require_tool("helm"), *args], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_the_agent_chart_runs_one_host_network_pod_per_node_with_net_admin_only() -> None:
    docs = _render_chart("clusterName=primary")
    [ds] = [d for d in docs if d["kind"] == "DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert {"operator": "Exists"} in pod["tolerations"]  # tainted GPU nodes too
    [container] = pod["containers"]
    assert container["command"] == ["modeldr", "agent"]
    assert "--cluster=primary" in container["args"]
    security = container["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN"]}
    assert security["privileged"] is False and security["allowPrivilegeEscalation"] is False
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {
        "NODE_NAME": "spec.nodeName",
        "NODE_IP": "status.hostIP",
        "POD_NAME": "metadata.name",
    }


def test_the_agent_chart_grants_networkfaults_their_status_pods_and_nodes_only() -> None:
    docs = _render_chart()
    [role] = [
        d
        for d in docs
        if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "modeldr-agent-modeldr-agent"
    ]
    granted = grants(role)
    assert granted == {
        ("modeldr.io", "networkfaults", "get"),
        ("modeldr.io", "networkfaults", "list"),
        ("modeldr.io", "networkfaults", "watch"),
        ("modeldr.io", "networkfaults/status", "patch"),
        ("", "pods", "list"),  # its node's, to check the targets
        ("", "nodes", "list"),  # its own (a field selector), to undo expired node faults
        ("", "nodes", "watch"),
        ("", "nodes", "patch"),
    }
    [binding] = [
        d
        for d in docs
        if d["kind"] == "ClusterRoleBinding"
        and d["metadata"]["name"] == "modeldr-agent-modeldr-agent"
    ]
    assert binding["subjects"][0]["name"] == "modeldr-agent"
    crd = yaml.safe_load(
        (ROOT / "charts/modeldr-agent/crds/modeldr.io_networkfaults.yaml").read_text()
    )
    assert crd["spec"]["names"]["kind"] == "NetworkFault"
    assert crd["spec"]["scope"] == "Namespaced"


def test_the_agent_chart_refuses_unknown_values() -> None:
    done = subprocess.run(
        [
            require_tool("helm"),
            "template",
            "x",
            str(ROOT / "charts/modeldr-agent"),
            "--set",
            "clusterNam=primary",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode != 0 and "clusterNam" in done.stderr


def test_pod_facts_are_read_from_the_clients_pod_objects() -> None:
    from kubernetes import client

    from modeldr.agent.main import pod_facts

    running = client.V1Pod(
        metadata=client.V1ObjectMeta(
            namespace="ml", name="tiny-bert-1", labels={"modeldr.io/name": "tiny-bert"}
        ),
        spec=client.V1PodSpec(containers=[], host_network=None, node_name="gpu-0"),
        status=client.V1PodStatus(
            phase="Running",
            pod_ip="127.1.129.2",
            pod_ips=[client.V1PodIP(ip="127.1.129.2"), client.V1PodIP(ip="fd00::2")],
        ),
    )
    assert pod_facts(running) == decide.PodFacts(
        "ml", "tiny-bert-1", ("127.1.129.2", "fd00::2"), False, {"modeldr.io/name": "tiny-bert"}
    )
    running.spec.host_network = True
    facts = pod_facts(running)
    assert facts is not None and facts.host_network
    running.status.phase = "Succeeded"  # its address may be someone else's now
    assert pod_facts(running) is None


def test_the_agent_chart_ships_the_operators_least_privilege_member_identity() -> None:
    docs = _render_chart()
    member = [d for d in docs if "member" in d["metadata"]["name"]]
    assert {(d["kind"], d["metadata"]["name"]) for d in member} == {
        ("ServiceAccount", "modeldr-agent-member"),
        ("ClusterRole", "modeldr-agent-modeldr-agent-member"),
        ("ClusterRoleBinding", "modeldr-agent-modeldr-agent-member"),
    }
    [role] = [d for d in member if d["kind"] == "ClusterRole"]
    granted = grants(role)
    # What docs/operator.md#member-clusters lists, nothing more: no secrets, no RBAC, no
    # escalate/bind/impersonate, no wildcard.
    assert {r for _, r, _ in granted} == {
        "deployments",
        "services",
        "poddisruptionbudgets",
        "horizontalpodautoscalers",
        "deployments/scale",
        "endpointslices",
        "namespaces",
        "nodes",
        "pods",
        "pods/eviction",
        "networkfaults",
    }
    # The scale subresource only read and raised (a survivor taking its peer's load).
    assert {v for _, r, v in granted if r == "deployments/scale"} == {"get", "patch"}
    assert not any("*" in (g, r, v) for g, r, v in granted)
    assert ("", "namespaces", "delete") not in granted and ("", "nodes", "delete") not in granted
    [binding] = [d for d in member if d["kind"] == "ClusterRoleBinding"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "modeldr-agent-member", "namespace": "modeldr-agent"}
    ]
    assert not [
        d for d in _render_chart("memberIdentity.create=false") if "member" in d["metadata"]["name"]
    ]
