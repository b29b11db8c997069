"""TenantPolicy evaluation (modeldr.api.tenancy) and a run's tenancy checks
(modeldr.drills.tenancy) on fakes of the hub: several policies, prefixes, selectors, caps,
the freeze at its three levels, consent to cluster faults, collateral damage."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from kubernetes import client

from modeldr.api.drillplan import DrillPlanSpec
from modeldr.api.tenancy import Grants, NamedPolicy, admission_grants, modeldeployment_denials
from modeldr.api.tenantpolicy import TenantPolicySpec
from modeldr.drills import tenancy as run_tenancy
from modeldr.drills.tenancy import RunTenancy, model_owner, node_bound
from modeldr.kube.errors import TrafficConflict
from modeldr.kube.members import MemberRegistry
from modeldr.kube.tenancy import PoliciesUnreadable, Tenancy
from modeldr.operator.traffic.base import Owner
from modeldr.operator.traffic.endpointslice import claim
from tests.unit.drill_fakes import nowhere, target


def policy(name: str, **spec: Any) -> NamedPolicy:
    spec.setdefault("namespaces", ["team-a"])
    return NamedPolicy(name, TenantPolicySpec.parse(spec))


TEAM_A = policy(
    "team-a",
    placements=[
        {"cluster": "primary", "namespaces": ["team-a-serving"]},
        {"cluster": "standby", "namespaces": ["team-a-serving"]},
    ],
    modelSources=["pvc://", "file:///models/team-a/"],
    images=["ghcr.io/modeldr/"],
    drills={
        "faults": ["PodKill", "NodeDrain"],
        "maxPodsPercent": 50,
        "nodeSelector": {"modeldr.io/drill-eligible": "true"},
    },
)
OTHER_TEAM = policy("team-b", namespaces=["team-b"], drills={"faults": ["ClusterOutage"]})


def test_a_namespace_no_policy_covers_may_do_nothing() -> None:
    grants = Grants.of("team-c", [TEAM_A, OTHER_TEAM])
    assert grants.policies == ()
    denials = modeldeployment_denials(grants, [("primary", "x")], "pvc://a", "ghcr.io/modeldr/x")
    assert denials == [
        "no TenantPolicy covers hub namespace team-c: it may place nothing and drill nothing "
        "(ask the platform admin for one)"
    ]
    assert grants.fault_denial("PodKill") is not None


def test_a_modeldeployment_inside_its_policy_is_allowed() -> None:
    grants = Grants.of("team-a", [TEAM_A, OTHER_TEAM])
    placements = [("primary", "team-a-serving"), ("standby", "team-a-serving")]
    assert modeldeployment_denials(grants, placements, "pvc://claim/m", "ghcr.io/modeldr/s:1") == []
    assert (
        modeldeployment_denials(grants, placements, "file:///models/team-a/m", "ghcr.io/modeldr/s")
        == []
    )


IMAGE = "ghcr.io/modeldr/s"
HOME = ("primary", "team-a-serving")


@pytest.mark.parametrize(
    ("placement", "source", "image", "rule"),
    [
        (
            ("primary", "team-b-serving"),
            "pvc://c",
            IMAGE,
            "cluster primary namespace team-b-serving",
        ),
        (("gpu-west", "team-a-serving"), "pvc://c", IMAGE, "placements: cluster gpu-west"),
        (HOME, "file:///etc", IMAGE, "modelSources: 'file:///etc'"),
        (HOME, "file:///models/team-a/../team-b/m", IMAGE, "'..' path segment"),
        (HOME, "file:///models/team-ab/m", IMAGE, "modelSources"),
        (HOME, "pvc://c", "docker.io/evil/miner", "images: 'docker.io/evil/miner'"),
    ],
)
def test_each_field_refuses_what_it_does_not_list(
    placement: tuple[str, str], source: str, image: str, rule: str
) -> None:
    denials = modeldeployment_denials(Grants.of("team-a", [TEAM_A]), [placement], source, image)
    assert len(denials) == 1 and rule in denials[0], denials
    assert "team-a" in denials[0]  # the policy that did not allow it is named


def test_several_policies_add_up_field_by_field() -> None:
    extra = policy(
        "team-a-extra",
        placements=[{"cluster": "gpu-west", "namespaces": ["team-a-serving"]}],
        images=["registry.internal/"],
    )
    grants = Grants.of("team-a", [TEAM_A, extra])
    assert grants.names == "team-a, team-a-extra"
    assert grants.placement_denial("gpu-west", "team-a-serving") is None
    assert grants.image_denial("registry.internal/s:1") is None
    assert grants.source_denial("pvc://claim") is None  # from team-a alone


def test_a_drill_fault_is_allowed_by_the_policies_listing_it_under_their_own_limits() -> None:
    only_podkill = policy("wide", drills={"faults": ["PodKill"]})  # no cap, no selector
    grants = Grants.of("team-a", [TEAM_A, only_podkill])
    assert grants.fault_denial("NodeDrain") is None
    assert "drills.faults: GPULoss" in (grants.fault_denial("GPULoss") or "")
    # NodeDrain only under team-a's selector: the PodKill-only policy does not widen it.
    eligible = {"modeldr.io/drill-eligible": "true"}
    assert grants.node_denial("NodeDrain", "n1", eligible) is None
    denied = grants.node_denial("NodeDrain", "n2", {"kubernetes.io/os": "linux"}) or ""
    assert "drills.nodeSelector: node n2" in denied and "modeldr.io/drill-eligible=true" in denied
    # The cap: NodeDrain's (50) only; PodKill is also allowed by a policy without one.
    assert grants.max_pods_percent("NodeDrain", 100) == 50
    assert grants.max_pods_percent("NodeDrain", 30) == 30
    assert grants.max_pods_percent("PodKill", 100) == 100


def test_the_most_generous_cap_among_the_allowing_policies_wins() -> None:
    tighter = policy("tighter", drills={"faults": ["NodeDrain"], "maxPodsPercent": 25})
    grants = Grants.of("team-a", [TEAM_A, tighter])
    assert grants.max_pods_percent("NodeDrain", 100) == 50


def test_a_freeze_in_any_covering_policy_freezes() -> None:
    frozen = policy("freeze", drills={"frozen": True})
    assert Grants.of("team-a", [TEAM_A, frozen]).frozen_by() == ["freeze"]
    assert Grants.of("team-b", [OTHER_TEAM, frozen]).frozen_by() == []


def test_the_crd_refuses_what_the_model_refuses() -> None:
    with pytest.raises(ValueError):
        TenantPolicySpec.parse({"namespaces": []})
    with pytest.raises(ValueError):
        TenantPolicySpec.parse({"namespaces": ["a"], "drills": {"faults": ["Meteor"]}})
    with pytest.raises(ValueError):
        TenantPolicySpec.parse({"namespaces": ["a"], "drills": {"maxPodsPercent": 0}})


# --------------------------------------------------------------------- a run's checks


class FakeTenancy:
    def __init__(self, policies: list[NamedPolicy], operator_frozen: bool = False) -> None:
        self.policies, self.frozen = policies, operator_frozen
        self.operator_namespace = "modeldr-system"

    def grants(self, namespace: str, *, fresh: bool = False) -> Grants:
        return Grants.of(namespace, self.policies)

    def operator_frozen(self) -> bool:
        return self.frozen


def member_labels(**labels: dict[str, str]) -> MemberRegistry:
    return cast(MemberRegistry, SimpleNamespace(secret_labels=lambda: labels))


def plan(*steps: dict[str, Any], percent: int = 50) -> DrillPlanSpec:
    return DrillPlanSpec.parse(
        {
            "target": {"modelDeployment": "bert"},
            "steps": list(steps),
            "blastRadius": {"maxPodsPercent": percent},
        }
    )


def step(fault: str, cluster: str = "primary") -> dict[str, Any]:
    return {
        "name": f"s-{fault.lower()}",
        "fault": {"type": fault, "cluster": cluster},
        "durationSeconds": 1,
    }


NS_POLICY = policy(
    "ns",
    namespaces=["ns"],
    placements=[{"cluster": c, "namespaces": ["ml"]} for c in ("primary", "standby")],
    modelSources=["file:///tmp/"],
    images=["modeldr/serving:"],
    drills={"faults": ["PodKill", "ClusterOutage"], "maxPodsPercent": 50},
)


def checks(
    the_plan: DrillPlanSpec,
    policies: list[NamedPolicy] | None = None,
    members: MemberRegistry | None = None,
    operator_frozen: bool = False,
) -> RunTenancy:
    return RunTenancy(
        nowhere(),
        members or member_labels(),
        cast(Tenancy, FakeTenancy([NS_POLICY] if policies is None else policies, operator_frozen)),
        target(),
        the_plan,
    )


def test_a_run_inside_its_policy_passes_preflight() -> None:
    assert checks(plan(step("PodKill"))).preflight_refusal() is None


def test_a_run_is_refused_for_each_thing_its_policy_does_not_allow() -> None:
    refused = checks(plan(step("NodeDrain"), percent=80)).preflight_refusal()
    assert refused is not None and refused.reason == "PolicyDenied"
    assert "step s-nodedrain: drills.faults: NodeDrain" in refused.message
    over = checks(plan(step("PodKill"), percent=80)).preflight_refusal()
    assert over is not None and "maxPodsPercent 80 is over the 50" in over.message
    nobody = checks(plan(step("PodKill")), policies=[]).preflight_refusal()
    assert nobody is not None and "no TenantPolicy covers hub namespace ns" in nobody.message


def test_a_cluster_outage_needs_the_members_consent_too() -> None:
    outage = plan(step("ClusterOutage", cluster="active"))
    refused = checks(
        outage, members=member_labels(primary={"modeldr.io/allow-cluster-faults": "true"})
    ).preflight_refusal()
    assert refused is not None and refused.reason == "PolicyDenied"
    assert "ClusterOutage in standby needs the member's consent" in refused.message
    assert "in primary" not in refused.message
    both = {"modeldr.io/allow-cluster-faults": "true"}
    assert (
        checks(outage, members=member_labels(primary=both, standby=both)).preflight_refusal()
        is None
    )


FROZEN = {"modeldr.io/drills-frozen": "true"}
STOP = policy("stop", namespaces=["ns"], drills={"frozen": True})


@pytest.mark.parametrize(
    ("operator_frozen", "labels", "policies", "where"),
    [
        (True, {}, None, "namespace modeldr-system is labelled modeldr.io/drills-frozen=true"),
        (False, {"standby": FROZEN}, None, "member standby's hub Secret"),
        (False, {}, [NS_POLICY, STOP], "TenantPolicy stop"),
    ],
)
def test_a_freeze_at_each_level_refuses_the_run(
    operator_frozen: bool, labels: dict[str, dict[str, str]], policies: Any, where: str
) -> None:
    guard = checks(plan(step("PodKill")), policies, member_labels(**labels), operator_frozen)
    refused = guard.preflight_refusal()
    assert refused is not None and refused.reason == "Frozen" and where in refused.message


def pod(
    name: str, namespace: str = "other", labels: dict[str, str] | None = None, **meta: Any
) -> Any:
    return SimpleNamespace(
        metadata=SimpleNamespace(
            name=name,
            namespace=namespace,
            labels=labels or {},
            owner_references=meta.get("owners"),
            annotations=meta.get("annotations"),
        ),
        status=SimpleNamespace(phase=meta.get("phase", "Running")),
    )


OURS = {"app.kubernetes.io/managed-by": "modeldr"}


def test_only_pods_of_workloads_that_opted_in_and_node_parts_may_share_the_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    md = {
        "app.kubernetes.io/managed-by": "modeldr",
        "modeldr.io/name": "bert",
        "modeldr.io/namespace": "ns",
    }
    other_md = {**md, "modeldr.io/name": "shy", "modeldr.io/namespace": "team-b"}
    opted = {("ns", "bert"): True, ("team-b", "shy"): False}
    monkeypatch.setattr(RunTenancy, "opted_in", lambda self, ns, name: opted[(ns, name)])
    daemon = [SimpleNamespace(kind="DaemonSet")]
    pods = [
        pod("bert-1", "ml", md),
        pod("agent", "modeldr-system", owners=daemon),
        pod("etcd-node", "kube-system", annotations={"kubernetes.io/config.mirror": "x"}),
        pod("done", phase="Succeeded"),
        pod("shy-1", "team-b-serving", other_md),
        pod("web-7"),
    ]
    assert checks(plan(step("PodKill"))).bystanders(pods) == ["other/web-7", "team-b-serving/shy-1"]


def test_a_pods_owner_and_its_place_on_the_node_are_read_from_its_labels() -> None:
    assert model_owner(
        {
            "app.kubernetes.io/managed-by": "modeldr",
            "modeldr.io/name": "a",
            "modeldr.io/namespace": "b",
        }
    ) == ("b", "a")
    assert model_owner({"modeldr.io/name": "a", "modeldr.io/namespace": "b"}) is None  # not ours
    assert node_bound(pod("x", owners=[SimpleNamespace(kind="ReplicaSet")])) is False


def test_the_lapse_says_why_a_run_must_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    objects: dict[str, Any] = {"labels": {"modeldr.io/drills": "enabled"}}
    monkeypatch.setattr(
        run_tenancy,
        "read_object",
        lambda hub, ns, name: (
            None if objects["labels"] is None else {"metadata": {"labels": objects["labels"]}}
        ),
    )
    guard = checks(plan(step("PodKill")))
    assert guard.lapse() is None
    objects["labels"] = {}
    assert guard.lapse() == (
        "ConsentRevoked",
        "the target bert no longer carries modeldr.io/drills=enabled: its owner withdrew consent",
    )
    objects["labels"] = None
    assert guard.lapse() == ("ConsentRevoked", "the target bert was deleted mid-run")
    objects["labels"] = {"modeldr.io/drills": "enabled"}
    frozen = checks(plan(step("PodKill")), operator_frozen=True).lapse()
    assert frozen is not None and frozen[0] == "Frozen"
    withdrawn = checks(plan(step("PodKill")), policies=[]).lapse()
    assert withdrawn is not None and withdrawn[0] == "PolicyDenied"


def test_the_admission_grants_are_the_union_per_namespace_one_per_line() -> None:
    both = policy("both", namespaces=["team-a", "team-c"], images=["registry.internal/"])
    grants = admission_grants([TEAM_A, both, OTHER_TEAM])
    assert sorted(grants) == ["team-a", "team-b", "team-c"]
    assert grants["team-a"].split("\n") == [
        "i:ghcr.io/modeldr/",
        "i:registry.internal/",
        "p:primary/team-a-serving",
        "p:standby/team-a-serving",
        "s:file:///models/team-a/",
        "s:pvc://",
    ]
    assert grants["team-b"] == ""  # covered, granted nothing: refused for what it asks
    with pytest.raises(ValueError):  # a prefix is one token: it cannot smuggle a grant line
        policy("sneaky", images=["ok/\ni:evil/"])


class FakeServices:
    """read/create of one object kind in a hub namespace, as the provider calls them."""

    def __init__(self, existing: Any = None) -> None:
        self.existing = existing
        self.created: list[dict[str, Any]] = []

    def read(self, name: str, namespace: str, **_: Any) -> Any:
        if self.existing is None:
            raise client.ApiException(status=404)
        return self.existing

    def create(self, namespace: str, body: dict[str, Any], **_: Any) -> Any:
        self.created.append(body)
        return body


def owned(uid: str) -> Any:
    return SimpleNamespace(metadata=SimpleNamespace(owner_references=[SimpleNamespace(uid=uid)]))


def test_the_endpointslice_provider_never_adopts_an_object() -> None:
    owner = Owner("team-a", "bert", "uid-a")
    svc = {"kind": "Service", "metadata": {"name": "bert"}}
    absent = FakeServices()
    claim(absent.read, absent.create, svc, owner)
    assert absent.created == [svc]
    mine = FakeServices(owned("uid-a"))
    claim(mine.read, mine.create, svc, owner)
    assert mine.created == []
    for stranger in (
        owned("uid-b"),
        SimpleNamespace(metadata=SimpleNamespace(owner_references=None)),
    ):
        theirs = FakeServices(stranger)
        with pytest.raises(TrafficConflict, match="Service team-a/bert exists and is not this"):
            claim(theirs.read, theirs.create, svc, owner)
        assert theirs.created == []


@pytest.mark.parametrize(("status", "says"), [(404, "CRD is not installed"), (403, "may not list")])
def test_policies_that_cannot_be_read_allow_nothing_and_say_why(
    monkeypatch: pytest.MonkeyPatch, status: int, says: str
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise client.ApiException(status=status)

    monkeypatch.setattr(client.CustomObjectsApi, "list_cluster_custom_object", refuse)
    with pytest.raises(PoliciesUnreadable, match=says):
        Tenancy(nowhere(), "modeldr-system").policies()
