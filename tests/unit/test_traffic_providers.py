"""Pure parts of the traffic providers: route weights, webhook payloads and decisions, registry."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.operator.traffic import PROVIDERS, TrafficError, provider_for
from modeldr.operator.traffic.base import ClusterTarget, Owner, TrafficTarget
from modeldr.operator.traffic.gatewayapi import (
    GROUP,
    PLURAL,
    VERBS,
    GatewayAPIProvider,
    RouteRef,
    api_error,
    desired_weights,
    merge_patch,
    reweighted_rules,
    route_ref,
)
from modeldr.operator.traffic.webhook import (
    USER_AGENT,
    Delivered,
    WebhookProvider,
    build_payload,
    excerpt,
    should_post,
)
from tests.specs import minimal_spec
from tests.unit.test_chart import find, render

OWNER = Owner(namespace="ml", name="bert", uid="uid-1")


def make_spec(traffic: dict[str, Any] | None = None) -> ModelDeploymentSpec:
    return minimal_spec() if traffic is None else minimal_spec(traffic=traffic)


def target(
    active: str, addresses: tuple[str, ...] = ("127.2.0.5",), port: int = 8080
) -> TrafficTarget:
    return TrafficTarget(
        active_cluster=active,
        primary_cluster="primary",
        standby_cluster="standby",
        addresses=addresses,
        port=port,
        reason="primary unhealthy",
    )


REF = RouteRef(
    namespace="ml", name="bert", primary_backend="bert-primary", standby_backend="bert-standby"
)


def route(*rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": "bert", "namespace": "ml", "resourceVersion": "42"},
        "spec": {"rules": [{"backendRefs": refs} for refs in rules]},
    }


# ------------------------------------------------------------------------------ gatewayapi


def test_route_ref_defaults_to_owner_namespace_and_backend_names() -> None:
    spec = make_spec({"provider": "gatewayapi", "gatewayAPI": {"httpRoute": {"name": "r"}}})
    assert route_ref(OWNER, spec) == RouteRef("ml", "r", "bert-primary", "bert-standby")


def test_route_ref_takes_explicit_settings() -> None:
    spec = make_spec(
        {
            "provider": "gatewayapi",
            "gatewayAPI": {
                "httpRoute": {"name": "r", "namespace": "edge"},
                "primaryBackend": "a",
                "standbyBackend": "b",
            },
        }
    )
    assert route_ref(OWNER, spec) == RouteRef("edge", "r", "a", "b")


def test_route_ref_without_settings_is_a_traffic_error() -> None:
    with pytest.raises(TrafficError, match=r"gatewayAPI\.httpRoute"):
        route_ref(OWNER, make_spec({"provider": "gatewayapi"}))


def test_desired_weights_follow_the_active_cluster() -> None:
    assert desired_weights(REF, target("primary")) == {"bert-primary": 100, "bert-standby": 0}
    assert desired_weights(REF, target("standby")) == {"bert-primary": 0, "bert-standby": 100}
    with pytest.raises(TrafficError, match="neither the primary"):
        desired_weights(REF, target("elsewhere"))
    same = RouteRef("ml", "bert", "x", "x")
    with pytest.raises(TrafficError, match="same backendRef 'x'"):
        desired_weights(same, target("primary"))


def test_desired_weights_in_active_active_are_each_clusters_weight() -> None:
    both = replace(
        target("primary"),
        mode="activeActive",
        clusters=(
            ClusterTarget("primary", "primary", ("127.1.0.5",), 70),
            ClusterTarget("standby", "standby", ("127.2.0.5",), 30),
        ),
    )
    assert desired_weights(REF, both) == {"bert-primary": 70, "bert-standby": 30}
    withdrawn = replace(
        both,
        clusters=(
            ClusterTarget("primary", "primary", ("127.1.0.5",), 0, "Unhealthy"),
            ClusterTarget("standby", "standby", ("127.2.0.5",), 30),
        ),
    )
    assert desired_weights(REF, withdrawn) == {"bert-primary": 0, "bert-standby": 30}


def test_reweighted_rules_switch_only_the_named_backends() -> None:
    original = route(
        [
            {"name": "bert-primary", "port": 80, "weight": 100},
            {"name": "bert-standby", "port": 80, "weight": 0},
            {"name": "canary", "port": 80, "weight": 5},
        ],
        [{"name": "bert-primary", "port": 80}],  # no weight: Gateway API's default 1
    )
    before = copy.deepcopy(original)
    rules = reweighted_rules(original, REF, {"bert-primary": 0, "bert-standby": 100})
    assert original == before, "the route read must not be modified in place"
    assert rules == [
        {
            "backendRefs": [
                {"name": "bert-primary", "port": 80, "weight": 0},
                {"name": "bert-standby", "port": 80, "weight": 100},
                {"name": "canary", "port": 80, "weight": 5},
            ]
        },
        {"backendRefs": [{"name": "bert-primary", "port": 80, "weight": 0}]},
    ]


def test_reweighted_rules_none_when_in_place() -> None:
    current = route(
        [{"name": "bert-primary", "weight": 100}, {"name": "bert-standby", "weight": 0}]
    )
    assert reweighted_rules(current, REF, {"bert-primary": 100, "bert-standby": 0}) is None


def test_missing_weight_counts_as_one() -> None:
    current = route([{"name": "bert-primary"}, {"name": "bert-standby", "weight": 0}])
    rules = reweighted_rules(current, REF, {"bert-primary": 100, "bert-standby": 0})
    assert rules is not None and rules[0]["backendRefs"][0]["weight"] == 100
    assert reweighted_rules(current, REF, {"bert-primary": 1, "bert-standby": 0}) is None


def test_missing_backend_is_named() -> None:
    current = route([{"name": "bert-primary", "weight": 100}, {"name": "other", "weight": 0}])
    with pytest.raises(TrafficError) as info:
        reweighted_rules(current, REF, {"bert-primary": 0, "bert-standby": 100})
    message = str(info.value)
    assert "HTTPRoute ml/bert has no backendRef named 'bert-standby'" in message
    assert "standbyBackend" in message
    with pytest.raises(TrafficError, match="'bert-primary' and 'bert-standby'"):
        reweighted_rules(route(), REF, {"bert-primary": 0, "bert-standby": 100})


def test_merge_patch_carries_the_resource_version_read() -> None:
    rules = [{"backendRefs": [{"name": "bert-primary", "weight": 0}]}]
    assert merge_patch(route(), rules) == {
        "metadata": {"resourceVersion": "42"},
        "spec": {"rules": rules},
    }


def _api_exception(status: int, body: dict[str, Any] | str) -> ApiException:
    exc = ApiException(status=status, reason="Reason")
    exc.body = body if isinstance(body, str) else json.dumps(body)
    return exc


def test_api_errors_say_what_to_fix() -> None:
    route_gone = _api_exception(
        404,
        {
            "kind": "Status",
            "message": 'httproutes.gateway.networking.k8s.io "bert" not found',
            "reason": "NotFound",
            "details": {"name": "bert", "group": GROUP, "kind": PLURAL},
        },
    )
    message = str(api_error(route_gone, REF, "get"))
    assert "HTTPRoute ml/bert not found in the hub" in message
    assert "'bert-primary' and 'bert-standby'" in message
    no_crd = _api_exception(404, "404 page not found")
    assert "install the Gateway API" in str(api_error(no_crd, REF, "get"))
    forbidden = _api_exception(403, {"kind": "Status", "message": "forbidden: nope"})
    assert "rbac.trafficProviders.gatewayAPI=true" in str(api_error(forbidden, REF, "patch"))
    other = str(api_error(_api_exception(500, {"message": "etcd down"}), REF, "patch"))
    assert "HTTP 500" in other and "etcd down" in other


def test_chart_grants_what_the_gatewayapi_provider_uses() -> None:
    rules = find(render("rbac.trafficProviders.gatewayAPI=true"), "ClusterRole")["rules"]
    granted = [
        set(rule["verbs"])
        for rule in rules
        if GROUP in rule["apiGroups"] and PLURAL in rule["resources"]
    ]
    assert len(granted) == 1, "one rule for httproutes"
    assert set(VERBS) == granted[0]
    # Never create, replace or delete a route: it belongs to whoever owns the Gateway.
    assert not granted[0] & {"create", "update", "delete", "deletecollection", "*"}
    default_rules = find(render(), "ClusterRole")["rules"]
    assert not [r for r in default_rules if PLURAL in r["resources"]]


# -------------------------------------------------------------------------------- webhook


def test_payload_has_the_documented_shape() -> None:
    now = datetime(2025, 5, 1, 14, 0, 3, tzinfo=timezone(timedelta(hours=2)))
    payload = build_payload(OWNER, target("standby", ("127.2.0.5", "127.2.0.6")), "primary", now)
    assert payload == {
        "modelDeployment": {"namespace": "ml", "name": "bert", "uid": "uid-1"},
        "activeCluster": "standby",
        "previousCluster": "primary",
        "reason": "primary unhealthy",
        "addresses": ["127.2.0.5", "127.2.0.6"],
        "port": 8080,
        "time": "2025-05-01T12:00:03Z",
    }
    json.dumps(payload)  # serialisable as is
    first = build_payload(OWNER, target("primary"), None, datetime.now(UTC))
    assert first["previousCluster"] is None


def test_should_post_on_first_apply_and_on_changes_only() -> None:
    state = Delivered("http://127.0.0.1:1/", "standby", ("127.2.0.5",), 8080)
    assert should_post(None, state)
    assert not should_post(state, Delivered("http://127.0.0.1:1/", "standby", ("127.2.0.5",), 8080))
    assert should_post(state, Delivered("http://127.0.0.1:1/", "primary", ("127.2.0.5",), 8080))
    assert should_post(
        state, Delivered("http://127.0.0.1:1/", "standby", ("127.2.0.5", "127.2.0.6"), 8080)
    )
    assert should_post(state, Delivered("http://127.0.0.1:1/", "standby", ("127.2.0.5",), 9090))
    assert should_post(state, Delivered("http://127.0.0.1:2/", "standby", ("127.2.0.5",), 8080))


def test_excerpt_is_bounded() -> None:
    assert excerpt(b"  boom \n") == "boom"
    long = excerpt(b"x" * 1000)
    assert long.endswith("...") and len(long) < 400
    assert excerpt(b"\xff") == "\ufffd"


def test_user_agent_names_the_version() -> None:
    import modeldr

    assert f"modeldr/{modeldr.__version__}" == USER_AGENT


# ------------------------------------------------------------------------------- registry


def test_provider_for_returns_fresh_providers_by_name() -> None:
    gateway = provider_for("gatewayapi")
    assert isinstance(gateway, GatewayAPIProvider) and gateway.name == "gatewayapi"
    webhook = provider_for("webhook")
    assert isinstance(webhook, WebhookProvider) and webhook.name == "webhook"
    assert provider_for("webhook") is not webhook
    assert set(PROVIDERS) == {"endpointslice", "gatewayapi", "webhook", "haproxy"}
    assert provider_for("haproxy").name == "haproxy"
    with pytest.raises(ValueError, match="unknown traffic provider 'istio'"):
        provider_for("istio")


def test_registry_matches_the_crd_enum() -> None:
    from modeldr.kube.config import KNOWN_PROVIDERS

    assert set(PROVIDERS) == set(KNOWN_PROVIDERS)
