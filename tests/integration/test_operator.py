"""The operator on the sandbox, running under the Helm chart's ServiceAccount (real RBAC):
ModelDeployments become real model servers in primary and standby, the hub's EndpointSlice
follows the active cluster, a primary outage fails over, failback, drift repair, cleanup.

`make operator-up` (sandbox/operator_up.py) installs the chart into the hub and starts
`modeldr operator`; these tests reuse it when it already runs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from modeldr.kube.constants import GROUP, MEMBER_CLUSTER_LABEL, SWITCH_ANNOTATION, VERSION
from sandbox import kube
from sandbox.api import Sandbox
from sandbox.operator_up import member_kubeconfig, operator_down, operator_up
from sandbox.probe import hub_traffic, infer, server_ready, successes
from tests.integration.modeldeployments import (
    EXAMPLE,
    NAME,
    PLURAL,
    condition,
    create,
    custom,
    get,
    manifest,
    policy_body,
    put_policy,
    serving_everywhere,
    status,
    wait_status,
)

pytestmark = pytest.mark.integration

SECRETS_NAMESPACE = "modeldr-system"
# Health queries on real Prometheus series: the first holds in both clusters once their servers
# are scraped; the second never holds for primary (its pods stay ready: the query decides).
PASSING_QUERY = 'count(up{cluster="$cluster", namespace="$namespace"} == 1)'
FAILING_QUERY = 'count(up{cluster="$cluster", namespace="$namespace", cluster!="primary"} == 1)'


def create_with_standby_in(hub_ns: str, cluster: str) -> None:
    """The ModelDeployment with its standby in member cluster `cluster` (which its
    namespace's TenantPolicy allows)."""
    put_policy(policy_body(hub_ns, clusters=("primary", "standby", cluster)))
    md = manifest(hub_ns)
    md["spec"]["clusters"]["standby"]["cluster"] = cluster
    create(hub_ns, md)


def set_health_query(hub_ns: str, query: str) -> None:
    """A live spec change of failover.healthQuery."""
    custom().patch_namespaced_custom_object(
        GROUP, VERSION, hub_ns, PLURAL, NAME, {"spec": {"failover": {"healthQuery": query}}}
    )


def hub_addresses(hub_ns: str, service: str = NAME) -> list[str]:
    return kube.ready_endpoint_addresses("hub", hub_ns, service)


def test_modeldeployment_serves_from_both_clusters_through_the_hub(hub_ns: str) -> None:
    create(hub_ns, manifest(hub_ns))
    s = wait_status(hub_ns, serving_everywhere, "model servers Ready in both clusters")
    assert s["activeCluster"] == "primary"
    digest = yaml.safe_load(EXAMPLE.read_text())["spec"]["model"]["expectedDigest"]
    assert s["primary"]["observedDigest"] == digest
    assert s["standby"]["observedDigest"] == digest
    assert s["primary"]["freeGPUs"] >= 0 and s["primary"]["reachable"] is True
    for type_, expected in [("Ready", "True"), ("FailoverReady", "True"), ("FailedOver", "False")]:
        assert condition(hub_ns, type_) == expected, type_

    # The member objects are what the spec asks for.
    deployment = client.AppsV1Api(kube.api_client("primary")).read_namespaced_deployment(
        NAME, hub_ns
    )
    container = deployment.spec.template.spec.containers[0]
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert deployment.spec.template.spec.node_selector == {
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"
    }
    policy = client.PolicyV1Api(kube.api_client("standby"))
    assert policy.read_namespaced_pod_disruption_budget(NAME, hub_ns).spec.max_unavailable == 1

    # The hub entry point lists primary's pod IPs, and they answer inference.
    addresses = hub_addresses(hub_ns)
    primary_pods = kube.ready_endpoint_addresses("primary", hub_ns, NAME)
    assert addresses == primary_pods and all(a.startswith("127.1.") for a in addresses)
    answer = infer(addresses[0], "the hub sends me to primary")
    assert answer["model"] == "tiny-bert" and len(answer["predictions"]) == 1, answer
    assert 0.0 <= answer["predictions"][0]["score"] <= 1.0


def test_primary_outage_fails_over_and_back_while_a_client_keeps_going(
    hub_ns: str, sandbox: Sandbox
) -> None:
    create(hub_ns, manifest(hub_ns))
    wait_status(hub_ns, serving_everywhere, "model servers Ready in both clusters")
    probe = hub_traffic(hub_ns, NAME, rate=20, max_seconds=240).start()
    try:
        deadline = time.monotonic() + 30
        while successes(probe.samples(), "primary") < 5 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert successes(probe.samples(), "primary") >= 5, (
            f"no success through the hub before the outage: {probe.samples()[-5:]}"
        )
        sandbox.outage("primary")
        try:
            s = wait_status(
                hub_ns, lambda s: s.get("activeCluster") == "standby", "failover", timeout=60
            )
            failover = s["lastFailover"]
            assert (failover["from"], failover["to"], failover["automatic"]) == (
                "primary",
                "standby",
                True,
            )
            assert failover["detectionSeconds"] >= 0 and failover["totalSeconds"] >= 0
            assert all(a.startswith("127.2.") for a in hub_addresses(hub_ns))
            deadline = time.monotonic() + 30
            while successes(probe.samples(), "standby") < 5 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert successes(probe.samples(), "standby") >= 5, (
                "the client did not recover on standby"
            )

            # An operator restart in the middle of the outage resumes from the status: it
            # stays on standby and does not flap, and clients keep succeeding.
            operator_down()
            operator_up()
            restarted = time.time()
            time.sleep(5)
            assert status(hub_ns)["activeCluster"] == "standby"
            assert all(a.startswith("127.2.") for a in hub_addresses(hub_ns))
            assert successes(probe.samples(), "standby", since=restarted) >= 10
        finally:
            sandbox.restore("primary")
        # Manual failback (the default mode), asked for at once: the restored control plane
        # first shows the pods' stale Ready state while the primary's server loads; the
        # operator's client probe (on by default) holds the switch until it answers.
        asked = time.time()
        custom().patch_namespaced_custom_object(
            GROUP,
            VERSION,
            hub_ns,
            PLURAL,
            NAME,
            {"metadata": {"annotations": {SWITCH_ANNOTATION: "primary"}}},
        )
        s = wait_status(hub_ns, lambda s: s.get("activeCluster") == "primary", "failback", 120)
        assert s["lastFailover"]["to"] == "primary" and s["lastFailover"]["automatic"] is False
        assert SWITCH_ANNOTATION not in (get(hub_ns)["metadata"].get("annotations") or {})
        deadline = time.monotonic() + 20
        before = successes(probe.samples(), "primary")
        while successes(probe.samples(), "primary") <= before + 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert successes(probe.samples(), "primary") > before + 3, (
            f"the client did not follow the failback: {probe.samples()[-5:]}, hub: "
            f"{hub_addresses(hub_ns)}, primary: "
            f"{kube.ready_endpoint_addresses('primary', hub_ns, NAME)}"
        )
        # What the clients paid for the immediate failback: at most 1% of their requests.
        since = probe.samples(since=asked)
        failed = [r for r in since if not r.ok]
        print(
            f"\nimmediate failback after a restore: {len(failed)} of {len(since)} requests "
            f"failed, switched {s['lastFailover']['switchedTime']}"
        )
        assert len(failed) <= 0.01 * len(since), failed[:5]
    finally:
        probe.stop()


def test_drift_is_repaired(hub_ns: str) -> None:
    create(hub_ns, manifest(hub_ns))
    wait_status(hub_ns, serving_everywhere, "model servers Ready in both clusters")
    apps = client.AppsV1Api(kube.api_client("primary"))
    core = client.CoreV1Api(kube.api_client("standby"))

    apps.patch_namespaced_deployment(NAME, hub_ns, {"spec": {"replicas": 0}})
    core.delete_namespaced_service(NAME, hub_ns)

    def repaired() -> bool:
        replicas = apps.read_namespaced_deployment(NAME, hub_ns).spec.replicas
        try:
            core.read_namespaced_service(NAME, hub_ns)
        except client.ApiException:
            return False
        return bool(replicas == 1)

    kube.wait_for(repaired, timeout=30, what="drift repaired")


def test_deletion_removes_member_objects_and_waits_for_an_unreachable_member(
    hub_ns: str,
) -> None:
    # The standby is a member whose Secret does not exist yet: unreachable.
    ghost = f"ghost-{hub_ns[2:]}"
    create_with_standby_in(hub_ns, ghost)
    s = wait_status(
        hub_ns,
        lambda s: (
            (s.get("primary") or {}).get("readyReplicas") == 1
            and "no Secret labelled" in (s.get("standby") or {}).get("message", "")
        ),
        "primary serving, the ghost standby reported",
    )
    assert s["standby"]["reachable"] is False
    assert condition(hub_ns, "FailoverReady") == "False"
    events = kube.core("hub").list_namespaced_event(hub_ns).items
    assert any(e.reason == "MemberUnavailable" and ghost in e.message for e in events), [
        (e.reason, e.message) for e in events
    ]

    custom().delete_namespaced_custom_object(GROUP, VERSION, hub_ns, PLURAL, NAME)
    apps = client.AppsV1Api(kube.api_client("primary"))
    time.sleep(5)
    # Not gone: the cleanup in the unreachable member is retried, not skipped.
    assert get(hub_ns)["metadata"].get("deletionTimestamp")

    # The member becomes reachable (its Secret appears): the deletion completes. Its Secret
    # holds what every member Secret of the sandbox holds: the least-privilege member
    # identity's kubeconfig (charts/modeldr-agent memberIdentity), embedded.
    one = yaml.safe_load(member_kubeconfig("standby"))
    assert "token" in one["users"][0]["user"] and "client-key-data" not in one["users"][0]["user"]
    secret_name = f"member-{ghost}"
    kube.core("hub").create_namespaced_secret(
        SECRETS_NAMESPACE,
        {
            "metadata": {
                "name": secret_name,
                "labels": {MEMBER_CLUSTER_LABEL: ghost},
            },
            "data": {"kubeconfig": base64.b64encode(yaml.safe_dump(one).encode()).decode()},
        },
    )
    try:

        def gone() -> bool:
            try:
                get(hub_ns)
            except client.ApiException as exc:
                return bool(exc.status == 404)
            return False

        kube.wait_for(gone, timeout=60, what="ModelDeployment deleted after cleanup")
        with pytest.raises(client.ApiException) as missing:
            apps.read_namespaced_deployment(NAME, hub_ns)
        assert missing.value.status == 404
    finally:
        kube.core("hub").delete_namespaced_secret(secret_name, SECRETS_NAMESPACE)


def test_a_failing_health_query_fails_over(hub_ns: str) -> None:
    # Real Prometheus, real series. First a query that holds in both clusters once their
    # servers are scraped; then (a live spec change) one whose cluster!="primary" matcher
    # never holds for primary: primary fails its checks while its pods stay ready.
    md = manifest(hub_ns)
    md["spec"]["failover"]["healthQuery"] = PASSING_QUERY
    create(hub_ns, md)
    s = wait_status(hub_ns, serving_everywhere, "Ready with a passing health query", 180)
    assert "health query: 1 samples, none 0" in s["primary"]["message"]
    set_health_query(hub_ns, FAILING_QUERY)
    s = wait_status(
        hub_ns, lambda s: s.get("activeCluster") == "standby", "failover by the health query", 60
    )
    assert "health query returned no samples" in s["lastFailover"]["reason"]
    assert s["primary"]["readyReplicas"] == 1  # the pods are fine; the query decided


def test_a_cold_standby_is_scaled_up_before_traffic_switches(hub_ns: str) -> None:
    # Primary fails its checks through the health query (its pods stay up); the cold standby
    # runs no replica until then, is scaled up, and gets the traffic only once it serves.
    md = manifest(hub_ns)
    md["spec"]["clusters"]["standby"]["mode"] = "cold"
    md["spec"]["failover"]["healthQuery"] = PASSING_QUERY
    create(hub_ns, md)
    s = wait_status(
        hub_ns,
        lambda s: (s.get("primary") or {}).get("readyReplicas") == 1 and s.get("phase") == "Ready",
        "primary serving",
        180,
    )
    assert s["standby"]["replicas"] == 0 and not s["standby"].get("readyReplicas")
    standby_apps = client.AppsV1Api(kube.api_client("standby"))
    assert standby_apps.read_namespaced_deployment(NAME, hub_ns).spec.replicas == 0

    set_health_query(hub_ns, FAILING_QUERY)
    # While the standby scales up and starts, traffic stays on primary: never on a standby
    # that cannot serve (the hub lists primary's addresses until the switch).
    deadline = time.monotonic() + 180
    scaled_up_before_switch = False
    while status(hub_ns).get("activeCluster") == "primary" and time.monotonic() < deadline:
        addresses = hub_addresses(hub_ns)
        assert addresses, "the hub lists no address"
        # The switch (traffic first, then status) can land between the two reads: standby
        # addresses may show up, but only of servers that serve.
        standby = [a for a in addresses if not a.startswith("127.1.")]
        assert all(a.startswith("127.2.") and server_ready(a) for a in standby), addresses
        replicas = standby_apps.read_namespaced_deployment(NAME, hub_ns).spec.replicas
        scaled_up_before_switch |= replicas == 1
        time.sleep(0.2)
    assert scaled_up_before_switch, "the standby was never seen scaled up before the switch"
    s = wait_status(
        hub_ns,
        lambda s: s.get("activeCluster") == "standby",
        "failover to the scaled-up cold standby",
        180,
    )
    assert s["standby"]["readyReplicas"] == 1
    addresses = hub_addresses(hub_ns)
    assert addresses and all(a.startswith("127.2.") for a in addresses)
    assert all(server_ready(a) for a in addresses), "the hub lists a standby that does not serve"


@contextlib.contextmanager
def standby_in_a_member_with(hub_ns: str, kubeconfig: str, what: str) -> Iterator[dict[str, Any]]:
    """The ModelDeployment with its standby in a member whose Secret holds `kubeconfig`;
    yields the status once the primary serves and the member is reported unreachable."""
    member = f"{what}-{hub_ns[2:]}"
    secret_name = f"member-{member}"
    kube.core("hub").create_namespaced_secret(
        SECRETS_NAMESPACE,
        {
            "metadata": {"name": secret_name, "labels": {MEMBER_CLUSTER_LABEL: member}},
            "stringData": {"kubeconfig": kubeconfig},
        },
    )
    try:
        create_with_standby_in(hub_ns, member)
        yield wait_status(
            hub_ns,
            lambda s: (
                (s.get("primary") or {}).get("readyReplicas") == 1
                and (s.get("standby") or {}).get("reachable") is False
                and secret_name in (s.get("standby") or {}).get("message", "")
            ),
            "primary serving, the broken member reported",
        )
        events = kube.core("hub").list_namespaced_event(hub_ns).items
        assert any(e.reason == "MemberUnavailable" and member in e.message for e in events)
    finally:
        with contextlib.suppress(client.ApiException):
            custom().delete_namespaced_custom_object(GROUP, VERSION, hub_ns, PLURAL, NAME)
        # The finalizer cannot clean the broken member: let it go once primary is clean.
        kube.core("hub").delete_namespaced_secret(secret_name, SECRETS_NAMESPACE)


def test_a_garbage_member_kubeconfig_is_reported_and_the_operator_stays_up(hub_ns: str) -> None:
    with standby_in_a_member_with(hub_ns, "this: is: not [a kubeconfig", "broken") as s:
        assert "key 'kubeconfig' is not YAML" in s["standby"]["message"]
        assert "not [a kubeconfig" not in s["standby"]["message"]  # Secret text never shown
        assert condition(hub_ns, "FailoverReady") == "False"
        # Still the same healthy, leading operator process: no crash loop.
        with urllib.request.urlopen("http://127.0.0.1:19180/healthz", timeout=5) as response:
            assert json.loads(response.read())["leader"] is True


def test_a_member_kubeconfig_that_would_run_a_program_is_refused_and_never_run(
    hub_ns: str, tmp_path: Path
) -> None:
    """Whoever may write a member Secret must not run code inside the operator: an exec
    credential plugin (the operator is a process on this machine: it would touch the
    marker) is refused before the kubeconfig is loaded, and said so in the status."""
    marker = tmp_path / "the-plugin-ran"
    plugin = tmp_path / "plugin.sh"
    plugin.write_text(f"#!/bin/sh\ntouch {marker}\n")
    plugin.chmod(0o755)
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        # Never dialled: the refusal comes before the client exists.
        "clusters": [{"name": "m", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [
            {
                "name": "u",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": str(plugin),
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
        "contexts": [{"name": "m", "context": {"cluster": "m", "user": "u"}}],
        "current-context": "m",
    }
    with standby_in_a_member_with(hub_ns, yaml.safe_dump(kubeconfig), "execd") as s:
        assert "kubeconfig refused: users[u].exec" in s["standby"]["message"], s["standby"]
        time.sleep(2)  # a few more of the operator's looks at the member
        assert not marker.exists(), "the operator ran the member kubeconfig's exec plugin"


def test_rejected_member_credentials_are_reported_and_never_fail_over(hub_ns: str) -> None:
    """The primary's apiserver answers 401/403 to the operator (its member Secret now holds
    a token the apiserver does not know): the cluster is up and its servers serve, so this
    is `CredentialsRejected` in the status and an Event, never a failover."""
    create(hub_ns, manifest(hub_ns))
    wait_status(hub_ns, serving_everywhere, "model servers Ready in both clusters")
    core = kube.core("hub")
    secret = core.read_namespaced_secret("member-primary", SECRETS_NAMESPACE)
    original = secret.data["kubeconfig"]
    config = yaml.safe_load(base64.b64decode(original))
    for user in config["users"]:
        user["user"] = {"token": "a-token-this-apiserver-never-issued"}
    wrong = base64.b64encode(yaml.safe_dump(config).encode()).decode()
    core.patch_namespaced_secret(
        "member-primary", SECRETS_NAMESPACE, {"data": {"kubeconfig": wrong}}
    )
    try:
        s = wait_status(
            hub_ns,
            lambda s: "credentials rejected" in ((s.get("primary") or {}).get("message") or ""),
            "the primary's credentials reported rejected",
            60,
        )
        assert s["activeCluster"] == "primary"
        # Well past failureThreshold x healthIntervalSeconds (3 x 1 s): still no failover.
        time.sleep(8)
        s = status(hub_ns)
        assert s["activeCluster"] == "primary" and not s.get("lastFailover"), s
        ready = next(c for c in s["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "CredentialsRejected", ready
        events = kube.core("hub").list_namespaced_event(hub_ns).items
        assert any(e.reason == "CredentialsRejected" for e in events), [
            (e.reason, e.message) for e in events
        ]
    finally:
        core.patch_namespaced_secret(
            "member-primary", SECRETS_NAMESPACE, {"data": {"kubeconfig": original}}
        )
    wait_status(
        hub_ns,
        lambda s: (
            "credentials" not in ((s.get("primary") or {}).get("message") or "")
            and serving_everywhere(s)
        ),
        "the primary's credentials accepted again",
        60,
    )


def test_moving_a_member_namespace_removes_the_old_objects(hub_ns: str) -> None:
    create(hub_ns, manifest(hub_ns))
    wait_status(hub_ns, serving_everywhere, "model servers Ready in both clusters")
    moved = f"{hub_ns}-moved"
    put_policy(policy_body(hub_ns, member_namespaces=(moved,)))  # the move is allowed
    standby_apps = client.AppsV1Api(kube.api_client("standby"))
    try:
        custom().patch_namespaced_custom_object(
            GROUP,
            VERSION,
            hub_ns,
            PLURAL,
            NAME,
            {"spec": {"clusters": {"standby": {"namespace": moved}}}},
        )

        def old_gone_new_ready() -> bool:
            try:
                standby_apps.read_namespaced_deployment(NAME, hub_ns)
                return False
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
            new = standby_apps.read_namespaced_deployment(NAME, moved)
            return bool(new.status.ready_replicas == 1)

        kube.wait_for(old_gone_new_ready, timeout=180, what="old standby objects removed")
        for kind, read in (
            ("Service", kube.core("standby").read_namespaced_service),
            (
                "PodDisruptionBudget",
                client.PolicyV1Api(
                    kube.api_client("standby")
                ).read_namespaced_pod_disruption_budget,
            ),
        ):
            with pytest.raises(client.ApiException) as missing:
                read(NAME, hub_ns)
            assert missing.value.status == 404, kind
        # Primary was never touched by the move.
        assert client.AppsV1Api(kube.api_client("primary")).read_namespaced_deployment(NAME, hub_ns)
        events = kube.core("hub").list_namespaced_event(hub_ns).items
        assert any(e.reason == "StaleObjectsRemoved" for e in events)
    finally:
        with contextlib.suppress(client.ApiException):
            custom().delete_namespaced_custom_object(GROUP, VERSION, hub_ns, PLURAL, NAME)
        kube.wait_for(
            lambda: not standby_apps.list_namespaced_deployment(moved).items,
            timeout=60,
            what="the moved standby objects deleted with the ModelDeployment",
        )
        with contextlib.suppress(Exception):
            kube.core("standby").delete_namespace(moved)


def test_automatic_failback_waits_out_the_hold_down(hub_ns: str) -> None:
    # Primary fails through the health query, recovers, and gets the traffic back only after
    # it has passed every check for holdDownSeconds: no flapping back at its first pass.
    hold_down = 30
    md = manifest(hub_ns)
    md["spec"]["failover"]["failback"] = {"mode": "automatic", "holdDownSeconds": hold_down}
    md["spec"]["failover"]["healthQuery"] = PASSING_QUERY
    create(hub_ns, md)
    wait_status(hub_ns, serving_everywhere, "Ready with a passing health query", 180)
    set_health_query(hub_ns, FAILING_QUERY)
    wait_status(hub_ns, lambda s: s.get("activeCluster") == "standby", "failover", 60)

    set_health_query(hub_ns, PASSING_QUERY)
    recovered = time.monotonic()
    wait_status(
        hub_ns,
        lambda s: "health query: 1 samples, none 0" in (s.get("primary") or {}).get("message", ""),
        "primary passing its checks again",
        60,
    )
    # Well inside the hold-down: still on standby.
    time.sleep(max(0.0, hold_down / 2 - (time.monotonic() - recovered)))
    assert status(hub_ns)["activeCluster"] == "standby"
    s = wait_status(
        hub_ns, lambda s: s.get("activeCluster") == "primary", "automatic failback", hold_down + 60
    )
    assert time.monotonic() - recovered >= hold_down
    assert s["lastFailover"]["to"] == "primary" and s["lastFailover"]["automatic"] is True
    assert "hold-down" in s["lastFailover"]["reason"]
    assert all(a.startswith("127.1.") for a in hub_addresses(hub_ns))
