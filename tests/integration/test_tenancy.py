"""Tenancy on the sandbox (TENANCY.md): tenants act through impersonation (the client's
`Impersonate-User` header, as `kubectl --as` does) with the chart's roles, against the chart's
admission policies and the operator's own checks. Every attack is refused with nothing
touched in any member; what a policy allows still works; a freeze and a withdrawn consent
stop a running drill with every fault undone."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from kubernetes import client

from modeldr.api.tenantpolicy import CLUSTER_FAULTS_LABEL, FROZEN_LABEL
from modeldr.kube.constants import (
    DRILLPLANS,
    DRILLRUNS,
    DRILLS_LABEL,
    GROUP,
    MEMBER_CLUSTER_LABEL,
    VERSION,
)
from sandbox import kube
from sandbox.api import Sandbox
from sandbox.config import sandbox_paths
from sandbox.operator_up import _alive, operator_up
from sandbox.tenants import NAMESPACE as OPERATOR_NAMESPACE
from sandbox.tenants import delete_policy, policy_body, put_policy
from tests.integration.modeldeployments import (
    NAME,
    PLURAL,
    custom,
    manifest,
    serving_everywhere,
    status,
    wait_status,
)
from tests.integration.test_drills import (
    _wait_applied,
    apply_plan,
    explain,
    finished,
    node_state,
    own_modeldeployment,
    plan,
    primary_node,
)

pytestmark = pytest.mark.integration

ALICE = "alice@team-a.example"  # modeldr-edit in the team's namespace
CAROL = "carol@team-a.example"  # may create DrillPlans, may not change the model
ONCALL = "oncall@team-a.example"  # may patch DrillRuns only
KILL = {"name": "kill", "fault": {"type": "PodKill", "cluster": "primary"}, "durationSeconds": 2}


def as_user(user: str) -> client.CustomObjectsApi:
    """The hub's API as `user` (impersonated by the sandbox's admin, like kubectl --as)."""
    api = kube.api_client("hub")
    api.set_default_header("Impersonate-User", user)
    return client.CustomObjectsApi(api)


def refused(call: Any) -> client.ApiException:
    with pytest.raises(client.ApiException) as caught:
        call()
    assert caught.value.status in (403, 422), caught.value
    return caught.value


def bind(namespace: str, user: str, role: str, kind: str = "ClusterRole") -> None:
    rbac = client.RbacAuthorizationV1Api(kube.api_client("hub"))
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": f"{role}-{user.split('@')[0]}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )


@pytest.fixture(scope="module")
def team_a(operator: None, sandbox: Sandbox) -> Iterator[str]:
    """Team A's hub namespace, serving the example model (opted in to drills), its policy
    allowing every fault type; alice holds modeldr-edit there, carol only `create` on plans."""
    with own_modeldeployment("ta", lambda spec: None, serving_everywhere) as ns:
        bind(ns, ALICE, "modeldr-edit")
        rbac = client.RbacAuthorizationV1Api(kube.api_client("hub"))
        rbac.create_namespaced_role(
            ns,
            {
                "metadata": {"name": "plans-only"},
                "rules": [
                    {"apiGroups": [GROUP], "resources": [DRILLPLANS], "verbs": ["create", "get"]}
                ],
            },
        )
        bind(ns, CAROL, "plans-only", kind="Role")
        yield ns


@pytest.fixture(autouse=True)
def policy_restored(team_a: str) -> Iterator[None]:
    """Each test starts and ends with team A's own policy, and the model serving."""
    put_policy(policy_body(team_a))
    wait_status(team_a, serving_everywhere, "team A's model serving", 120)
    yield
    put_policy(policy_body(team_a))


def member_namespace_exists(cluster: str, name: str) -> bool:
    try:
        kube.core(cluster).read_namespace(name)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


# ------------------------------------------------------------------ apply: roles, admission


def test_a_tenant_cannot_place_pods_outside_its_policy(team_a: str) -> None:
    alice = as_user(ALICE)
    elsewhere = f"team-b-{uuid.uuid4().hex[:6]}"
    attacks = {
        "placements: cluster primary namespace " + elsewhere: manifest(elsewhere),
        "modelSources: file:///etc": _with(manifest(team_a), ("model", "source"), "file:///etc"),
        "images: docker.io/evil/miner": _with(
            manifest(team_a), ("runtime", "image"), "docker.io/evil/miner"
        ),
    }
    for expected, md in attacks.items():
        md["metadata"]["name"] = "intruder"
        error = refused(
            lambda md=md: alice.create_namespaced_custom_object(GROUP, VERSION, team_a, PLURAL, md)
        )
        assert "PolicyDenied" in error.body and expected in error.body, error.body
    assert not member_namespace_exists("primary", elsewhere)
    assert not member_namespace_exists("standby", elsewhere)


def test_a_namespace_no_policy_covers_may_place_nothing(team_a: str) -> None:
    lone = f"t-{uuid.uuid4().hex[:8]}"
    kube.core("hub").create_namespace({"metadata": {"name": lone}})
    try:
        bind(lone, ALICE, "modeldr-edit")
        md = manifest(lone)
        error = refused(
            lambda: as_user(ALICE).create_namespaced_custom_object(GROUP, VERSION, lone, PLURAL, md)
        )
        assert f"no TenantPolicy covers hub namespace {lone}" in error.body, error.body
        assert not member_namespace_exists("primary", lone)
    finally:
        kube.core("hub").delete_namespace(lone)


def test_tenant_roles_grant_no_status_and_no_policy(team_a: str) -> None:
    alice = as_user(ALICE)
    # Its own model, spec: allowed (an annotation, through the admission policy too).
    alice.patch_namespaced_custom_object(
        GROUP, VERSION, team_a, PLURAL, NAME, {"metadata": {"annotations": {"team": "a"}}}
    )
    forged = {"status": {"activeCluster": "standby"}}
    refused(
        lambda: alice.patch_namespaced_custom_object_status(
            GROUP, VERSION, team_a, PLURAL, NAME, forged
        )
    )
    refused(
        lambda: alice.create_cluster_custom_object(
            GROUP, VERSION, "tenantpolicies", policy_body("alice-own")
        )
    )
    delete_policy("alice-own")  # in case the refusal above failed to happen
    assert status(team_a).get("activeCluster") == "primary"


def test_a_plan_needs_the_requesters_right_to_change_the_model(team_a: str) -> None:
    body = plan("carols", [KILL])
    error = refused(
        lambda: as_user(CAROL).create_namespaced_custom_object(
            GROUP, VERSION, team_a, DRILLPLANS, body
        )
    )
    assert f"may not update ModelDeployment {team_a}/{NAME}" in error.body, error.body
    # Alice may change the model: her plan is admitted (a server-side dry run: no run starts).
    as_user(ALICE).create_namespaced_custom_object(
        GROUP, VERSION, team_a, DRILLPLANS, plan("alices", [KILL]), dry_run="All"
    )


# ------------------------------------------------------------------ the operator's checks


def test_a_withdrawn_placement_stops_reconciling_and_deletes_nothing(team_a: str) -> None:
    apps = client.AppsV1Api(kube.api_client("primary"))
    put_policy(policy_body(team_a, clusters=("standby",)))
    s = wait_status(
        team_a,
        lambda s: any(
            c["type"] == "Ready" and c.get("reason") == "PolicyDenied"
            for c in s.get("conditions") or []
        ),
        "Ready=False, PolicyDenied",
        timeout=30,
    )
    ready = next(c for c in s["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and "placements: cluster primary" in ready["message"]
    # Drift the operator would repair at once: left alone while the policy refuses, and
    # nothing deleted.
    apps.patch_namespaced_deployment(NAME, team_a, {"spec": {"replicas": 2}})
    time.sleep(6)  # longer than the refused spec's retry (5 s)
    drifted = apps.read_namespaced_deployment(NAME, team_a)
    assert drifted.spec.replicas == 2 and drifted.metadata.deletion_timestamp is None
    put_policy(policy_body(team_a))
    kube.wait_for(
        lambda: apps.read_namespaced_deployment(NAME, team_a).spec.replicas == 1,
        timeout=30,
        what="the drift repaired once the policy allows the placement again",
    )
    # The extra pod gone (not only terminating): the drills after this find one node.
    pods = kube.core("primary").list_namespaced_pod
    kube.wait_for(
        lambda: len(pods(team_a, label_selector=f"modeldr.io/name={NAME}").items) == 1,
        timeout=60,
        what="one primary pod again",
    )


# ------------------------------------------------------------------ drills


def test_a_fault_type_or_blast_radius_the_policy_does_not_allow_touches_nothing(
    team_a: str,
) -> None:
    put_policy(policy_body(team_a, drills={"faults": ["PodKill"], "maxPodsPercent": 50}))
    name = apply_plan(
        team_a,
        plan("partition", [{**KILL, "fault": {"type": "NetworkPartition", "cluster": "primary"}}]),
    )
    s = finished(team_a, name, timeout=60)
    assert (s["phase"], s["reason"]) == ("Error", "PolicyDenied"), explain(s)
    assert "drills.faults: NetworkPartition" in s["message"] and not s.get("faults")
    name = apply_plan(team_a, plan("wide", [KILL]))  # blastRadius 100 in these plans
    s = finished(team_a, name, timeout=60)
    assert (s["phase"], s["reason"]) == ("Error", "PolicyDenied"), explain(s)
    assert "maxPodsPercent 100 is over the 50" in s["message"] and not s.get("faults")


@contextlib.contextmanager
def member_labels(cluster: str, labels: dict[str, str | None]) -> Iterator[None]:
    core = kube.core("hub")
    secret = next(
        s
        for s in core.list_namespaced_secret(
            OPERATOR_NAMESPACE, label_selector=f"{MEMBER_CLUSTER_LABEL}={cluster}"
        ).items
    )
    old = {key: (secret.metadata.labels or {}).get(key) for key in labels}
    core.patch_namespaced_secret(
        secret.metadata.name, OPERATOR_NAMESPACE, {"metadata": {"labels": labels}}
    )
    try:
        yield
    finally:
        core.patch_namespaced_secret(
            secret.metadata.name, OPERATOR_NAMESPACE, {"metadata": {"labels": old}}
        )


def test_a_cluster_outage_needs_the_members_consent(team_a: str) -> None:
    outage = [{**KILL, "fault": {"type": "ClusterOutage", "cluster": "standby"}}]
    with member_labels("standby", {CLUSTER_FAULTS_LABEL: None}):
        name = apply_plan(team_a, plan("outage", outage))
        s = finished(team_a, name, timeout=60)
    assert (s["phase"], s["reason"]) == ("Error", "PolicyDenied"), explain(s)
    assert "ClusterOutage in standby needs the member's consent" in s["message"]
    assert not s.get("faults")


@contextlib.contextmanager
def bystander_on(node: str) -> Iterator[str]:
    """Another team's pod on the node (not a ModelDeployment's, not a DaemonSet's)."""
    ns = f"other-{uuid.uuid4().hex[:6]}"
    core = kube.core("primary")
    core.create_namespace({"metadata": {"name": ns}})
    pod = {
        "metadata": {"name": "web"},
        "spec": {"nodeName": node, "containers": [{"name": "web", "image": "nginx:1"}]},
    }
    core.create_namespaced_pod(ns, pod)
    try:
        yield f"{ns}/web"
    finally:
        core.delete_namespace(ns)


def test_a_node_fault_next_to_pods_that_did_not_opt_in_is_collateral_damage(
    team_a: str,
) -> None:
    node = primary_node(team_a)
    before = node_state(node)
    drain = [{**KILL, "fault": {"type": "NodeDrain", "cluster": "primary"}}]
    with bystander_on(node) as pod:
        name = apply_plan(team_a, plan("drain", drain))
        s = finished(team_a, name, timeout=60)
    assert (s["phase"], s["reason"]) == ("Error", "CollateralDamage"), explain(s)
    assert pod in s["message"] and not s.get("faults")
    assert node_state(node) == before
    # A node the policy's nodeSelector does not admit: refused before anything is touched.
    selector = {"faults": ["NodeDrain"], "nodeSelector": {"modeldr.io/drill-eligible": "true"}}
    put_policy(policy_body(team_a, drills=selector))
    name = apply_plan(team_a, plan("drain-2", drain))
    s = finished(team_a, name, timeout=60)
    assert (s["phase"], s["reason"]) == ("Error", "PolicyDenied"), explain(s)
    assert f"drills.nodeSelector: node {node}" in s["message"] and not s.get("faults")
    assert node_state(node) == before


LONG_DRAIN = [
    {"name": "drain", "fault": {"type": "NodeDrain", "cluster": "primary"}, "durationSeconds": 120}
]


@contextlib.contextmanager
def operator_namespace_frozen() -> Iterator[None]:
    core = kube.core("hub")
    core.patch_namespace(OPERATOR_NAMESPACE, {"metadata": {"labels": {FROZEN_LABEL: "true"}}})
    try:
        yield
    finally:
        core.patch_namespace(OPERATOR_NAMESPACE, {"metadata": {"labels": {FROZEN_LABEL: None}}})


def test_a_freeze_stops_a_running_drill_within_seconds_and_refuses_new_ones(team_a: str) -> None:
    node = primary_node(team_a)
    before = node_state(node)
    name = apply_plan(team_a, plan("frozen", LONG_DRAIN))
    _wait_applied(team_a, name)
    assert node_state(node)[0], "the node is cordoned while the fault is on"
    with operator_namespace_frozen():
        frozen_at = time.time()
        s = finished(team_a, name, timeout=30)
        assert (s["phase"], s["reason"]) == ("Aborted", "Frozen"), explain(s)
        assert [f["state"] for f in s["faults"]] == ["Undone"]
        # TENANCY.md: every fault undone within 10 s of the freeze.
        undone = datetime.fromisoformat(s["faults"][0]["undoneAt"].replace("Z", "+00:00"))
        assert undone.timestamp() - frozen_at < 10, (undone, frozen_at)
        assert node_state(node) == before
        late = finished(team_a, apply_plan(team_a, plan("frozen-2", [KILL])), timeout=60)
        assert (late["phase"], late["reason"]) == ("Error", "Frozen"), explain(late)
        assert not late.get("faults")
    # The freeze of one policy.
    put_policy(policy_body(team_a, drills={"faults": ["PodKill"], "frozen": True}))
    s = finished(team_a, apply_plan(team_a, plan("frozen-3", [KILL])), timeout=60)
    assert (s["phase"], s["reason"]) == ("Error", "Frozen"), explain(s)
    assert f"TenantPolicy {team_a}" in s["message"]


def test_a_frozen_member_refuses_the_drills_that_would_touch_it(team_a: str) -> None:
    with member_labels("standby", {FROZEN_LABEL: "true"}):
        s = finished(team_a, apply_plan(team_a, plan("member-frozen", [KILL])), timeout=60)
    assert (s["phase"], s["reason"]) == ("Error", "Frozen"), explain(s)
    assert "member standby's hub Secret is labelled modeldr.io/drills-frozen=true" in s["message"]
    assert not s.get("faults")


def test_consent_withdrawn_mid_run_aborts_it_and_undoes_everything(team_a: str) -> None:
    node = primary_node(team_a)
    before = node_state(node)
    name = apply_plan(team_a, plan("consent", LONG_DRAIN))
    _wait_applied(team_a, name)
    withdraw = {"metadata": {"labels": {DRILLS_LABEL: None}}}
    custom().patch_namespaced_custom_object(GROUP, VERSION, team_a, PLURAL, NAME, withdraw)
    try:
        s = finished(team_a, name, timeout=30)
    finally:
        restore = {"metadata": {"labels": {DRILLS_LABEL: "enabled"}}}
        custom().patch_namespaced_custom_object(GROUP, VERSION, team_a, PLURAL, NAME, restore)
    assert (s["phase"], s["reason"]) == ("Aborted", "ConsentRevoked"), explain(s)
    assert [f["state"] for f in s["faults"]] == ["Undone"]
    assert node_state(node) == before
    runs = custom().list_namespaced_custom_object(GROUP, VERSION, team_a, DRILLRUNS)["items"]
    assert all(r["status"]["phase"] != "Running" for r in runs)


def _with(md: dict[str, Any], path: tuple[str, str], value: str) -> dict[str, Any]:
    md["spec"][path[0]][path[1]] = value
    return md


def test_a_forged_journal_entry_touches_nothing_across_an_operator_restart(team_a: str) -> None:
    """While the operator is dead, someone adds to a running drill's journal an entry that
    would uncordon a node an admin cordoned for maintenance. The next leader rolls the run
    back: the genuine fault is undone, the forged entry is never acted on and is reported."""
    core = kube.core("primary")
    node = primary_node(team_a)
    maintenance = next(
        n.metadata.name
        for n in core.list_node().items
        if n.metadata.name != node and not n.spec.unschedulable
    )
    name = apply_plan(team_a, plan("forged", LONG_DRAIN))
    s = _wait_applied(team_a, name)
    core.patch_node(maintenance, {"spec": {"unschedulable": True}})  # the admin's cordon
    try:
        pid = int((sandbox_paths().state / "operator.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        kube.wait_for(lambda: not _alive(pid), timeout=10, what="the operator gone")
        (genuine,) = s["faults"]
        forged = {**genuine, "id": "f-forged000001", "parameters": {**genuine["parameters"]}}
        forged["parameters"]["node"] = maintenance
        custom().patch_namespaced_custom_object_status(
            GROUP, VERSION, team_a, DRILLRUNS, name, {"status": {"faults": [genuine, forged]}}
        )
        operator_up()
        s = finished(team_a, name, timeout=120)
        assert (s["phase"], s["reason"]) == ("Aborted", "OperatorRestarted"), explain(s)
        assert [f["state"] for f in s["faults"]] == ["Undone", "Forged"], explain(s)
        assert "forged journal entries not acted on: f-forged000001" in s["message"]
        assert core.read_node(maintenance).spec.unschedulable is True  # left as it was
        assert not core.read_node(node).spec.unschedulable  # the genuine drain undone
    finally:
        core.patch_node(maintenance, {"spec": {"unschedulable": None}})


def test_a_traffic_object_of_someone_else_is_never_adopted(team_a: str) -> None:
    """A hub Service of the name a ModelDeployment's traffic would use, made by a person:
    left exactly as it was, and the ModelDeployment says so (Ready=False, naming it)."""
    core = kube.core("hub")
    service = {
        "metadata": {"name": "web", "labels": {"team": "a"}},
        "spec": {"ports": [{"port": 80}]},
    }
    core.create_namespaced_service(team_a, service)
    before = core.read_namespaced_service("web", team_a)
    md = manifest(team_a)
    md["metadata"]["name"] = "clash"
    md["spec"]["traffic"] = {"endpointSlice": {"serviceName": "web"}}
    custom().create_namespaced_custom_object(GROUP, VERSION, team_a, PLURAL, md)
    try:

        def ready_condition() -> dict[str, Any] | None:
            obj = custom().get_namespaced_custom_object(GROUP, VERSION, team_a, PLURAL, "clash")
            conditions = (obj.get("status") or {}).get("conditions") or []
            ready = next((c for c in conditions if c["type"] == "Ready"), None)
            return ready if ready and ready.get("reason") == "TrafficObjectNotOwned" else None

        ready = kube.wait_for(
            ready_condition, timeout=120, what="Ready=False, TrafficObjectNotOwned"
        )
        assert ready["status"] == "False"
        assert f"Service {team_a}/web exists and is not this ModelDeployment's" in ready["message"]
        after = core.read_namespaced_service("web", team_a)
        assert after.metadata.owner_references is None
        assert after.metadata.resource_version == before.metadata.resource_version
    finally:
        custom().delete_namespaced_custom_object(GROUP, VERSION, team_a, PLURAL, "clash")
        kube.wait_for(
            lambda: (
                "clash"
                not in [
                    o["metadata"]["name"]
                    for o in custom().list_namespaced_custom_object(GROUP, VERSION, team_a, PLURAL)[
                        "items"
                    ]
                ]
            ),
            timeout=60,
            what="the clashing ModelDeployment gone",
        )
    assert core.read_namespaced_service("web", team_a).metadata.owner_references is None


def test_stopping_a_drill_needs_no_right_to_the_model(team_a: str) -> None:
    """The requester check guards what a run targets, never its stop: an on-call engineer
    who may only patch runs aborts one at once."""
    rbac = client.RbacAuthorizationV1Api(kube.api_client("hub"))
    rule = {"apiGroups": [GROUP], "resources": [DRILLRUNS], "verbs": ["get", "patch"]}
    rbac.create_namespaced_role(team_a, {"metadata": {"name": "runs-stop"}, "rules": [rule]})
    bind(team_a, ONCALL, "runs-stop", kind="Role")
    name = apply_plan(team_a, plan("stop", LONG_DRAIN))
    _wait_applied(team_a, name)
    as_user(ONCALL).patch_namespaced_custom_object(
        GROUP, VERSION, team_a, DRILLRUNS, name, {"spec": {"abort": True}}
    )
    s = finished(team_a, name, timeout=30)
    assert (s["phase"], s["reason"]) == ("Aborted", "StoppedByHand"), explain(s)
    assert [f["state"] for f in s["faults"]] == ["Undone"]
