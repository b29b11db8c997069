"""The agent's Latency: the tc command builder (golden argv lists), the refusal of qdiscs that
are not ours, the cleanup decisions and the route parsing, fed real listings' shapes; then
the commands against this machine's real tc and kernel, in scratch network namespaces.

What this kernel can and cannot prove: it has no netem (and no prio qdisc) — the delay itself
is never made here. The namespace tests prove that the builder's u32 filters are valid and
steer exactly the targets into band 4 (a pfifo standing in for netem), that the agent's real
`tc.make` leaves a device as it found it when the kernel refuses a command, and that the
sweep removes this agent's root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modeldr.agent import decide, rules, tcrules
from modeldr.agent.tcrules import Delay, Plan, Refusal
from modeldr.api.networkfault import Order

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
TAG = tcrules.netem_tag(rules.chain_base("primary", "gpu-0"))
PRIO = [
    "prio",
    "bands",
    "4",
    "priomap",
    "1",
    "2",
    "2",
    "2",
    "1",
    "2",
    "0",
    "0",
    "1",
    "1",
    "1",
    "1",
    "1",
    "1",
    "1",
    "1",
]

# `tc -j qdisc show` as iproute2 6.1 prints it (this machine's, trimmed), and ours added.
DEFAULTS: list[dict[str, Any]] = [
    {"kind": "noqueue", "handle": "0:", "dev": "lo", "root": True, "refcnt": 2, "options": {}},
    {
        "kind": "pfifo_fast",
        "handle": "0:",
        "dev": "eth0",
        "root": True,
        "refcnt": 2,
        "options": {"bands": 3, "priomap": [1, 2, 2, 2, 1, 2, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]},
    },
    {"kind": "noqueue", "handle": "0:", "dev": "cali1a2b", "root": True, "refcnt": 2},
    {"kind": "noqueue", "handle": "0:", "dev": "cali3c4d", "root": True, "refcnt": 2},
    {"kind": "mq", "handle": "0:", "dev": "ens5", "root": True},
    {"kind": "fq_codel", "handle": "0:", "dev": "ens5", "parent": ":1"},
]


def ours(dev: str, leaf: str | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"kind": "prio", "handle": "1a1a:", "dev": dev, "root": True}]
    if leaf is not None:
        out.append({"kind": "netem", "handle": leaf, "dev": dev, "parent": "1a1a:4"})
    return out


def listing_with(*entries: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> list[Any]:
    """DEFAULTS with the roots of `drop` removed and `entries` added."""
    base = [q for q in DEFAULTS if not (q.get("root") and q["dev"] in drop)]
    return base + [q for group in entries for q in group]


# ------------------------------------------------------------------------ the builder

GOLDEN_ONE_V4 = [
    ["tc", "qdisc", "add", "dev", "lo", "root", "handle", "1a1a:", *PRIO],
    [
        "tc",
        "qdisc",
        "add",
        "dev",
        "lo",
        "parent",
        "1a1a:4",
        "handle",
        TAG,
        "netem",
        "limit",
        "10000",
        "delay",
        "200ms",
    ],
    [
        "tc",
        "filter",
        "add",
        "dev",
        "lo",
        "parent",
        "1a1a:",
        "protocol",
        "ip",
        "prio",
        "1",
        "u32",
        "match",
        "ip",
        "dst",
        "127.1.129.3/32",
        "flowid",
        "1a1a:4",
    ],
]


def test_one_v4_pod_without_jitter_is_golden() -> None:
    delay = Delay("ml/slow/u1", ("127.1.129.3",), 200)
    planned = tcrules.plan(delay, {"127.1.129.3": "lo"}, DEFAULTS, TAG)
    assert planned == Plan({"lo": GOLDEN_ONE_V4})


def test_several_pods_v4_and_v6_on_two_veths_with_jitter_are_golden() -> None:
    ips = ("fd00::a", "10.244.1.10", "10.244.1.9", "10.244.1.20")
    routes = {
        "10.244.1.9": "cali1a2b",
        "10.244.1.10": "cali1a2b",
        "fd00::a": "cali1a2b",
        "10.244.1.20": "cali3c4d",
    }
    planned = tcrules.plan(Delay("ml/slow/u1", ips, 150, 30), routes, DEFAULTS, TAG)
    netem = ["netem", "limit", "10000", "delay", "150ms", "30ms"]

    def filt(dev: str, ip: str) -> list[str]:
        if ":" in ip:
            match = ["protocol", "ipv6", "prio", "2", "u32", "match", "ip6", "dst", f"{ip}/128"]
        else:
            match = ["protocol", "ip", "prio", "1", "u32", "match", "ip", "dst", f"{ip}/32"]
        return ["tc", "filter", "add", "dev", dev, "parent", "1a1a:", *match, "flowid", "1a1a:4"]

    def head(dev: str) -> list[list[str]]:
        return [
            ["tc", "qdisc", "add", "dev", dev, "root", "handle", "1a1a:", *PRIO],
            ["tc", "qdisc", "add", "dev", dev, "parent", "1a1a:4", "handle", TAG, *netem],
        ]

    # Devices sorted; per device v4 before v6, addresses by value (.9 before .10).
    assert planned == Plan(
        {
            "cali1a2b": [
                *head("cali1a2b"),
                filt("cali1a2b", "10.244.1.9"),
                filt("cali1a2b", "10.244.1.10"),
                filt("cali1a2b", "fd00::a"),
            ],
            "cali3c4d": [*head("cali3c4d"), filt("cali3c4d", "10.244.1.20")],
        }
    )


def test_jitter_zero_is_no_jitter() -> None:
    planned = tcrules.plan(
        Delay("k", ("127.1.129.3",), 200, 0), {"127.1.129.3": "lo"}, DEFAULTS, TAG
    )
    assert planned == Plan({"lo": GOLDEN_ONE_V4})


@pytest.mark.parametrize(
    ("root", "words"),
    [
        ({"kind": "htb", "handle": "1:", "dev": "lo", "root": True}, "someone else (htb 1:)"),
        # An admin's fq_codel (handle 8001:) is not the kernel's default one (0:).
        ({"kind": "fq_codel", "handle": "8001:", "dev": "lo", "root": True}, "fq_codel 8001:"),
        ({"kind": "noqueue", "handle": "1:", "dev": "lo", "root": True}, "noqueue 1:"),
    ],
)
def test_a_foreign_root_qdisc_is_refused_with_nothing_to_run(
    root: dict[str, Any], words: str
) -> None:
    listing = listing_with([root], drop=("lo",))
    planned = tcrules.plan(Delay("k", ("127.1.129.3",), 200), {"127.1.129.3": "lo"}, listing, TAG)
    assert isinstance(planned, Refusal)
    assert words in planned.why and "never replaces" in planned.why
    assert planned.why.endswith("nothing was changed")


def test_one_foreign_device_refuses_the_whole_order() -> None:
    listing = listing_with(
        [{"kind": "tbf", "handle": "1:", "dev": "cali3c4d", "root": True}], drop=("cali3c4d",)
    )
    routes = {"10.244.1.9": "cali1a2b", "10.244.1.20": "cali3c4d"}
    planned = tcrules.plan(Delay("k", ("10.244.1.9", "10.244.1.20"), 50), routes, listing, TAG)
    assert isinstance(planned, Refusal) and "cali3c4d" in planned.why
    assert "cali1a2b" not in planned.why  # the free device is not the reason


def test_another_agents_or_a_half_made_root_is_refused_and_an_own_leftover_replaced() -> None:
    other = tcrules.netem_tag(rules.chain_base("primary", "gpu-1"))
    delay, routes = Delay("k", ("127.1.129.3",), 200), {"127.1.129.3": "lo"}
    refused = tcrules.plan(delay, routes, listing_with(ours("lo", other), drop=("lo",)), TAG)
    assert isinstance(refused, Refusal) and "another modeldr agent" in refused.why
    half = tcrules.plan(delay, routes, listing_with(ours("lo", None), drop=("lo",)), TAG)
    assert isinstance(half, Refusal) and "without netem" in half.why
    absent = tcrules.plan(delay, {"127.1.129.3": "veth9"}, DEFAULTS, TAG)
    assert isinstance(absent, Refusal) and "veth9 is not in tc's listing" in absent.why
    mine = tcrules.plan(delay, routes, listing_with(ours("lo", TAG), drop=("lo",)), TAG)
    assert mine == Plan(
        {"lo": [["tc", "qdisc", "del", "dev", "lo", "root", "handle", "1a1a:"], *GOLDEN_ONE_V4]}
    )


def test_the_netem_tag_is_stable_distinct_and_never_reserved() -> None:
    assert tcrules.netem_tag("primary_gpu_0") == TAG == "9d7f:"  # stable across restarts
    tags = {tcrules.netem_tag(f"primary_gpu_{i}") for i in range(50)}
    assert len(tags) == 50
    assert not tags & {"0:", "1a1a:", "ffff:"}
    assert all(t.endswith(":") and 1 <= int(t[:-1], 16) < 0xFFFF for t in tags)


# ------------------------------------------------------------------------ cleanup


def test_cleanup_deletes_only_this_agents_unbacked_roots() -> None:
    other = tcrules.netem_tag(rules.chain_base("primary", "gpu-1"))
    listing = listing_with(
        ours("cali1a2b", TAG),  # ours, backed by the held order
        ours("cali3c4d", TAG),  # ours, not backed
        ours("lo", other),  # another agent's on the same kernel (the sandbox)
        ours("veth7", None),  # half-made by an agent that died mid-way
        [{"kind": "htb", "handle": "1:", "dev": "ens5", "root": True}],  # foreign
        drop=("cali1a2b", "cali3c4d", "lo", "ens5"),
    )
    assert tcrules.stale(listing, TAG, {"cali1a2b"}, half_made=False) == ["cali3c4d"]
    # At start nothing is backed yet, and half-made roots go too; never another's or htb.
    assert tcrules.stale(listing, TAG, set(), half_made=True) == ["cali1a2b", "cali3c4d", "veth7"]
    assert tcrules.stale(DEFAULTS, TAG, set(), half_made=True) == []
    assert tcrules.delete_command("cali3c4d") == [
        "tc",
        "qdisc",
        "del",
        "dev",
        "cali3c4d",
        "root",
        "handle",
        "1a1a:",
    ]


def test_roots_ignore_children_and_junk() -> None:
    found = tcrules.roots([*DEFAULTS, "junk", {"kind": "x"}, *ours("lo2", TAG)])
    assert found["ens5"] == tcrules.Root("ens5", "mq", "0:", None)
    assert found["lo2"] == tcrules.Root("lo2", "prio", "1a1a:", TAG)
    assert tcrules.owner(found["ens5"], TAG) == "default"
    assert tcrules.roots({"not": "a list"}) == {}


# ------------------------------------------------------------------------ routes


def test_route_lookup_answers_are_parsed() -> None:
    # This machine's answers for a sandbox pod IP and a v6 address on lo, and a real node's.
    lo = [
        {
            "type": "local",
            "dst": "127.1.129.3",
            "dev": "lo",
            "prefsrc": "127.0.0.1",
            "flags": [],
            "uid": 0,
            "cache": ["local"],
        }
    ]
    v6 = [
        {
            "type": "local",
            "dst": "fd00::4",
            "from": "::",
            "dev": "lo",
            "table": "local",
            "protocol": "kernel",
            "prefsrc": "fd00::4",
            "metric": 0,
            "flags": [],
            "pref": "medium",
        }
    ]
    veth = [
        {
            "dst": "10.244.1.9",
            "dev": "cali1a2b",
            "prefsrc": "10.0.0.4",
            "flags": [],
            "uid": 0,
            "cache": [],
        }
    ]
    assert tcrules.route_device(lo, "127.1.129.3") == "lo"
    assert tcrules.route_device(v6, "fd00::4") == "lo"
    assert tcrules.route_device(veth, "10.244.1.9") == "cali1a2b"
    for bad, words in (
        ([], "no route"),
        ([{"type": "unreachable", "dst": "x"}], "unreachable"),
        ([{"dst": "x"}], "names no device"),
        ({"x": 1}, "no route"),
    ):
        with pytest.raises(ValueError, match=words):
            tcrules.route_device(bad, "10.9.9.9")


# ------------------------------------------------------------------------ decisions


def latency_order(name: str, ms: int = 100, jitter: int | None = None) -> Order:
    spec: dict[str, Any] = {
        "effect": "Latency",
        "latencyMilliseconds": ms,
        "targets": [{"ip": "127.1.129.2", "node": "gpu-0"}, {"ip": "127.1.130.2", "node": "gpu-1"}],
        "nodes": ["gpu-0", "gpu-1"],
        "expiresAt": (NOW + timedelta(seconds=5)).isoformat(),
    }
    if jitter is not None:
        spec["jitterMilliseconds"] = jitter
    return Order.model_validate({"namespace": "ml", "name": name, "uid": f"u-{name}", "spec": spec})


def test_where_netem_exists_one_latency_order_is_held_per_node() -> None:
    a, b = latency_order("a", 100, 20), latency_order("b", 300)
    want = decide.desired([b, a], "gpu-0", NOW, latency=None)
    assert want.delay == Delay("ml/a/u-a", ("127.1.129.2",), 100, 20)
    assert want.rules == ()  # Latency is tc's, not nftables'
    assert "one Latency order at a time" in want.unsupported["ml/b/u-b"]
    assert "ml/a/u-a holds it" in want.unsupported["ml/b/u-b"]
    # The order held keeps its place: a later one never displaces it.
    kept = decide.desired([a, b], "gpu-0", NOW, latency=None, holding="ml/b/u-b")
    assert kept.delay is not None and kept.delay.key == "ml/b/u-b"
    assert list(kept.unsupported) == ["ml/a/u-a"]
    # Its expiry is watched like a rule's, and at expiry it is dropped.
    assert decide.next_expiry([a, b], want) == NOW + timedelta(seconds=5)
    over = decide.desired([a], "gpu-0", NOW + timedelta(seconds=5), latency=None)
    assert over.delay is None and over.expired == ("ml/a/u-a",)


def test_latency_for_some_ports_only_is_refused_not_widened() -> None:
    ported = latency_order("p")
    ported.spec.ports = [8080]
    want = decide.desired([ported], "gpu-0", NOW, latency=None)
    assert want.delay is None and "ports is not supported" in want.unsupported["ml/p/u-p"]


def test_without_netem_latency_stays_refused_with_the_detectors_reason() -> None:
    want = decide.desired([latency_order("a")], "gpu-0", NOW, latency="kernel has no netem")
    assert want == decide.Desired(unsupported={"ml/a/u-a": "kernel has no netem"})


# ------------------------------------------------- the real tc, in scratch namespaces

# Runs inside `unshare -n` (a fresh network namespace: its own lo, nothing else): the
# agent's own I/O (tc.route_device, tc.qdiscs, tc.make, tc.sweep) against the real kernel.
NAMESPACE_SCRIPT = textwrap.dedent(
    """
    import json, socket, subprocess, sys
    from modeldr.agent import tc, tcrules

    def sh(*argv):
        done = subprocess.run(argv, capture_output=True, text=True)
        return done.returncode, (done.stderr or done.stdout).strip()

    out = {}
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "-6", "addr", "add", "fd00::4/128", "dev", "lo")
    out["kinds"] = {k: sh("tc", "qdisc", "add", "dev", "lo", "root", "handle", "9:", k)[0] == 0
                    and sh("tc", "qdisc", "del", "dev", "lo", "root")[0] == 0
                    for k in ("prio", "netem", "htb")}
    tag = sys.argv[1]
    targets = ("127.1.129.3", "127.1.129.5", "fd00::4")
    delay = tcrules.Delay("ml/slow/u1", targets, 200, 20)
    out["routes"] = {ip: tc.route_device(ip) for ip in (*targets, "127.1.129.4", "::1")}
    # 1. The agent's real make(): on this kernel a command may be refused (no prio, no
    # netem); whatever the outcome, a refusal must leave lo's root as it was.
    made = tc.make(delay, tag)
    out["make"] = [made.state, made.message, list(made.devices)]
    out["after_make"] = tc.qdiscs()
    out["swept_make"] = tc.sweep(tag, set(), half_made=False)
    # 2. The builder's commands with netem replaced by a pfifo (and, where the kernel has
    # no prio, the root by an htb with the same handle and class ids): filters verbatim.
    planned = tcrules.plan(delay, out["routes"], tc.qdiscs(), tag)
    commands = planned.commands["lo"]
    root, leaf, filters = commands[0], commands[1], commands[2:]
    leaf = leaf[: leaf.index("netem")] + ["pfifo"]
    if out["kinds"]["prio"]:
        setup = [root]
    else:
        setup = [root[: root.index("prio")] + ["htb", "default", "1"]] + [
            ["tc", "class", "add", "dev", "lo", "parent", "1a1a:", "classid", f"1a1a:{i}",
             "htb", "rate", "1gbit"] for i in (1, 2, 3, 4)]
    out["commands"] = [[*a, sh(*a)] for a in (*setup, leaf, *filters)]
    out["filters"] = json.loads(subprocess.run(
        ["tc", "-j", "filter", "show", "dev", "lo", "parent", "1a1a:"],
        capture_output=True, text=True).stdout or "[]")
    out["owner"] = tcrules.owner(tcrules.roots(tc.qdiscs()).get("lo"), tag)
    # 3. Steering: datagrams to two targets and two others; count what band 4 saw.
    sent = 0
    for ip in (*targets, "127.1.129.4", "::1"):
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as rx, \\
                socket.socket(family, socket.SOCK_DGRAM) as tx:
            rx.bind((ip, 0)); rx.settimeout(2)
            for _ in range(5):
                tx.sendto(b"x", rx.getsockname()[:2])
            got = sum(1 for _ in range(5) if rx.recv(16))
            out.setdefault("received", {})[ip] = got
    stats = json.loads(subprocess.run(["tc", "-s", "-j", "qdisc", "show", "dev", "lo"],
                                      capture_output=True, text=True).stdout)
    out["band4_packets"] = [q.get("packets") for q in stats if q.get("parent") == "1a1a:4"]
    out["swept"] = tc.sweep(tag, set(), half_made=False)
    out["after_sweep"] = tc.qdiscs()
    print(json.dumps(out))
    """
)


def run_in_namespace() -> dict[str, Any]:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare (util-linux) is needed to make a scratch network namespace")
    # As root a plain network namespace; else one inside a user namespace (root there).
    argv = [unshare, "-n"] if os.geteuid() == 0 else [unshare, "-r", "-n"]
    done = subprocess.run(
        [*argv, sys.executable, "-c", NAMESPACE_SCRIPT, TAG],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"the scratch network namespace could not be made or used: {done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def namespace() -> dict[str, Any]:
    return run_in_namespace()


def test_the_agent_finds_lo_as_the_device_of_loopback_targets(namespace: dict[str, Any]) -> None:
    assert namespace["routes"] == {
        "127.1.129.3": "lo",
        "127.1.129.5": "lo",
        "fd00::4": "lo",
        "127.1.129.4": "lo",
        "::1": "lo",
    }


def test_make_on_this_kernel_applies_or_leaves_the_device_as_it_was(
    namespace: dict[str, Any],
) -> None:
    state, message, devices = namespace["make"]
    kinds = namespace["kinds"]
    lo_root = tcrules.roots(namespace["after_make"])["lo"]
    if kinds["prio"] and kinds["netem"]:
        # A kernel with netem: made, and ours; then the sweep removes it.
        assert (state, devices) == ("Applied", ["lo"]), message
        assert tcrules.owner(lo_root, TAG) == "mine"
        assert namespace["swept_make"] == ["lo"]
    else:
        # This machine's kernel: the first command it lacks is refused, and nothing stays.
        missing = "prio" if not kinds["prio"] else "netem"
        assert state == "Error" and missing in message and "unknown" in message, message
        assert message.endswith("nothing was left changed"), message
        assert (lo_root.kind, lo_root.handle) == ("noqueue", "0:")
        assert namespace["swept_make"] == []


def test_the_builders_filters_are_valid_and_steer_only_the_targets(
    namespace: dict[str, Any],
) -> None:
    failed = [(argv, why) for *argv, (rc, why) in namespace["commands"] if rc != 0]
    assert failed == [], failed
    # What the kernel holds: one u32 rule per target into band 4 (the match is the address).
    rules_seen = {
        (f["protocol"], f["options"]["match"]["value"], f["options"]["flowid"])
        for f in namespace["filters"]
        if "flowid" in f.get("options", {})
    }
    assert rules_seen == {
        ("ip", "7f018103", "1a1a:4"),
        ("ip", "7f018105", "1a1a:4"),
        ("ipv6", "4", "1a1a:4"),
    }
    assert namespace["owner"] == "mine"  # the leaf's handle names this agent
    assert namespace["received"] == {
        "127.1.129.3": 5,
        "127.1.129.5": 5,
        "fd00::4": 5,
        "127.1.129.4": 5,
        "::1": 5,
    }
    # Band 4 (netem's place) saw the targets' 15 datagrams and nothing else.
    assert namespace["band4_packets"] == [15]
    assert namespace["swept"] == ["lo"]
    lo_root = tcrules.roots(namespace["after_sweep"])["lo"]
    assert (lo_root.kind, lo_root.handle) == ("noqueue", "0:")


# ------------------------------------- the agent's loop, with tc's and nft's I/O recorded
# (what the kernel does with the commands is above; this is what the agent asks and says)


class FakeApi:
    """Takes the agent's status merge-patches into the cached objects, as the watch would."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.patches: list[dict[str, Any]] = []

    def patch_namespaced_custom_object_status(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: dict[str, Any],
        **_: Any,
    ) -> None:
        report = body["status"]["nodes"]
        self.patches.append(report)
        obj = self.objects[name]
        obj.setdefault("status", {}).setdefault("nodes", {}).update(report)


def raw(name: str, expires: datetime, effect: str = "Latency") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "effect": effect,
        "targets": [{"ip": "127.1.129.2", "node": "gpu-0"}],
        "nodes": ["gpu-0"],
        "expiresAt": expires.isoformat(),
    }
    if effect == "Latency":
        spec["latencyMilliseconds"] = 200
    return {"metadata": {"namespace": "ml", "name": name, "uid": f"u-{name}"}, "spec": spec}


class FakeCore:
    """The pods on the agent's node: the one model pod the orders target."""

    def list_pod_for_all_namespaces(self, **_: Any) -> Any:
        from kubernetes import client

        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(
                namespace="ml", name="tiny-bert-1", labels={"modeldr.io/name": "tiny-bert"}
            ),
            spec=client.V1PodSpec(containers=[], node_name="gpu-0"),
            status=client.V1PodStatus(phase="Running", pod_ip="127.1.129.2"),
        )
        return client.V1PodList(items=[pod])


@pytest.fixture()
def agent_with(monkeypatch: pytest.MonkeyPatch) -> Any:
    from modeldr.agent import main, netem, nft, tc

    calls: list[tuple[str, Any]] = []

    def build(available: bool, outcome: tc.Outcome | None = None) -> tuple[Any, FakeApi]:
        why = "a netem qdisc was added" if available else "kernel x has no tc netem"
        monkeypatch.setattr(netem, "detect", lambda: netem.Netem(available, why))
        monkeypatch.setattr(nft, "apply", lambda text: calls.append(("nft", text)))
        monkeypatch.setattr(nft, "list_table", lambda: {"nftables": []})

        def make(delay: Delay, tag: str) -> tc.Outcome:
            calls.append(("make", delay))
            return outcome or tc.Outcome("Applied", "", ("lo",))

        def sweep(tag: str, backed: set[str], half_made: bool) -> list[str]:
            calls.append(("sweep", (tag, backed, half_made)))
            return ["lo"]

        monkeypatch.setattr(tc, "make", make)
        monkeypatch.setattr(tc, "sweep", sweep)
        api = FakeApi()
        agent = main.Agent(api, "gpu-0", "127.1.0.1", "primary", "agent-x", core=FakeCore())
        agent.cache._objects = api.objects  # the watch's cache, filled by hand
        return agent, api

    return build, calls


def test_with_netem_a_latency_order_is_applied_then_removed_at_expiry(agent_with: Any) -> None:
    build, calls = agent_with
    agent, api = build(True)
    agent.cleanup_at_start()
    assert ("sweep", (TAG, set(), True)) in calls  # half-made roots go at start only
    calls.clear()
    api.objects["slow"] = raw("slow", NOW + timedelta(seconds=5))
    agent.tick(NOW)
    agent.tick(NOW + timedelta(seconds=1))  # nothing new: no second make, no second report
    assert [c for c in calls if c[0] == "make"] == [
        ("make", Delay("ml/slow/u-slow", ("127.1.129.2",), 200))
    ]
    assert [p["gpu-0"]["state"] for p in api.patches] == ["Applied"]
    assert api.patches[0]["gpu-0"]["targets"] == ["127.1.129.2"]
    agent.tick(NOW + timedelta(seconds=5))  # its expiresAt: the agent undoes it by itself
    assert calls[-1] == ("sweep", (TAG, set(), False))
    assert [p["gpu-0"]["state"] for p in api.patches] == ["Applied", "Removed"]


def test_with_netem_a_refused_latency_is_reported_and_not_retried(agent_with: Any) -> None:
    from modeldr.agent import tc

    build, calls = agent_with
    agent, api = build(
        True,
        tc.Outcome(
            "Unsupported",
            "device lo has a root qdisc of someone else (htb 1:); nothing was changed",
        ),
    )
    api.objects["slow"] = raw("slow", NOW + timedelta(seconds=5))
    agent.tick(NOW)
    agent.tick(NOW + timedelta(seconds=1))
    assert len([c for c in calls if c[0] == "make"]) == 1
    assert [(p["gpu-0"]["state"], p["gpu-0"]["message"]) for p in api.patches] == [
        ("Unsupported", "device lo has a root qdisc of someone else (htb 1:); nothing was changed")
    ]


def test_without_netem_latency_is_unsupported_and_tc_is_never_run(agent_with: Any) -> None:
    build, calls = agent_with
    agent, api = build(False)
    agent.cleanup_at_start()
    api.objects["slow"] = raw("slow", NOW + timedelta(seconds=5))
    agent.tick(NOW)
    agent.remove_all()
    assert {c[0] for c in calls} == {"nft"}  # no make, no sweep: today's path unchanged
    assert [(p["gpu-0"]["state"], p["gpu-0"]["message"]) for p in api.patches] == [
        ("Unsupported", "kernel x has no tc netem")
    ]
