"""Traffic provider "gatewayapi": the backendRef weights of an existing Gateway API HTTPRoute.

The route belongs to whoever runs the Gateway: modeldr never creates or deletes it (the chart
grants get and patch on httproutes, nothing more) and changes nothing in it but the
`weight` of the two backendRefs named `spec.traffic.gatewayAPI.primaryBackend` and
`standbyBackend` (default `<name>-primary`, `<name>-standby`): 100 for the active cluster's
backend, 0 for the other (traffic.mode activeActive: each cluster's weight, 0 while it is
withdrawn), in every rule that references them. Other backendRefs in the same
rules keep their weights.

The write is a JSON merge patch of `spec.rules` that carries the `metadata.resourceVersion`
the weights were computed from, so a concurrent edit of the route is never overwritten: the
apiserver answers 409 and the provider reads the route again (a bounded number of times).
`apply` then reads the route back and returns only once the weights are in place.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.kube import k8s
from modeldr.kube.errors import TrafficConflict
from modeldr.operator.traffic.base import Owner, TrafficError, TrafficTarget

GROUP = "gateway.networking.k8s.io"
VERSION = "v1"
PLURAL = "httproutes"
# The API verbs apply uses on httproutes (the chart grants them: rbac.trafficProviders.gatewayAPI).
VERBS = ("get", "patch")
ACTIVE_WEIGHT = 100
IDLE_WEIGHT = 0
# Gateway API: a backendRef without `weight` gets 1.
DEFAULT_WEIGHT = 1
FIELD_MANAGER = "modeldr"
# Read, compute, write, read back: at most this many rounds (409s, or another writer that
# keeps putting other weights back) before apply gives up with a TrafficError.
MAX_ATTEMPTS = 5
REQUEST_TIMEOUT_SECONDS = 10.0

Route = dict[str, Any]


@dataclass(frozen=True)
class RouteRef:
    """The HTTPRoute and backend names one ModelDeployment's traffic settings point at."""

    namespace: str
    name: str
    primary_backend: str
    standby_backend: str

    def __str__(self) -> str:
        return f"HTTPRoute {self.namespace}/{self.name}"


def route_ref(owner: Owner, spec: ModelDeploymentSpec) -> RouteRef:
    settings = spec.traffic.gateway_api
    if settings is None:
        raise TrafficError(
            "traffic.provider is gatewayapi but spec.traffic.gatewayAPI.httpRoute is not set"
        )
    return RouteRef(
        namespace=settings.http_route.namespace or owner.namespace,
        name=settings.http_route.name,
        primary_backend=settings.primary_backend or f"{owner.name}-primary",
        standby_backend=settings.standby_backend or f"{owner.name}-standby",
    )


def desired_weights(ref: RouteRef, target: TrafficTarget) -> dict[str, int]:
    """backendRef name -> weight: ACTIVE_WEIGHT for the active cluster's, IDLE_WEIGHT otherwise;
    in activeActive each cluster's weight from the target."""
    if target.active_cluster == target.primary_cluster:
        active, idle = ref.primary_backend, ref.standby_backend
    elif target.active_cluster == target.standby_cluster:
        active, idle = ref.standby_backend, ref.primary_backend
    else:
        raise TrafficError(
            f"active cluster {target.active_cluster!r} is neither the primary "
            f"({target.primary_cluster!r}) nor the standby ({target.standby_cluster!r})"
        )
    if active == idle:
        raise TrafficError(
            f"spec.traffic.gatewayAPI names the same backendRef {active!r} for the primary and "
            "the standby: set primaryBackend and standbyBackend to different backends"
        )
    if target.mode == "activeActive":
        # Each cluster's weight as the operator decided it this round (0 when withdrawn).
        by_role = {cluster.role: cluster.weight for cluster in target.clusters}
        return {
            ref.primary_backend: by_role.get("primary", IDLE_WEIGHT),
            ref.standby_backend: by_role.get("standby", IDLE_WEIGHT),
        }
    return {active: ACTIVE_WEIGHT, idle: IDLE_WEIGHT}


def reweighted_rules(route: Route, ref: RouteRef, weights: dict[str, int]) -> list[Any] | None:
    """The route's `spec.rules` with `weights` applied, or None when they are in place already.

    Every backendRef whose name is in `weights` gets that weight, in every rule. Raises
    TrafficError naming the backends that no rule references.
    """
    rules = (route.get("spec") or {}).get("rules") or []
    new_rules = copy.deepcopy(rules)
    found: set[str] = set()
    changed = False
    for rule in new_rules:
        for backend in rule.get("backendRefs") or []:
            name = backend.get("name")
            if name not in weights:
                continue
            found.add(name)
            if backend.get("weight", DEFAULT_WEIGHT) != weights[name]:
                backend["weight"] = weights[name]
                changed = True
    missing = [name for name in weights if name not in found]
    if missing:
        names = " and ".join(repr(name) for name in sorted(missing))
        raise TrafficError(
            f"{ref} has no backendRef named {names} in spec.rules: add it to a rule (modeldr "
            "only changes weights), or set spec.traffic.gatewayAPI.primaryBackend/"
            "standbyBackend to the backendRef names the route uses"
        )
    return new_rules if changed else None


def merge_patch(route: Route, rules: list[Any]) -> Route:
    """The merge patch that writes `rules` only if the route is still at the version read."""
    return {
        "metadata": {"resourceVersion": route["metadata"]["resourceVersion"]},
        "spec": {"rules": rules},
    }


def _status_of(exc: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def api_error(exc: ApiException, ref: RouteRef, verb: str) -> TrafficError:
    """A TrafficError an SRE can act on for an ApiException from `verb` on the route."""
    status = _status_of(exc)
    message = status.get("message") or (exc.body or "")[:300] or exc.reason
    if k8s.is_absent(exc):
        details = status.get("details") or {}
        if details.get("name") == ref.name:
            return TrafficError(
                f"{ref} not found in the hub: create it with backendRefs "
                f"{ref.primary_backend!r} and {ref.standby_backend!r} (modeldr only changes "
                "their weights), or point spec.traffic.gatewayAPI.httpRoute at an existing route"
            )
        return TrafficError(
            f"the hub does not serve {GROUP}/{VERSION} httproutes ({message}): install the "
            "Gateway API standard-channel CRDs in the hub"
        )
    if k8s.status_of(exc) == k8s.FORBIDDEN:
        return TrafficError(
            f"the operator may not {verb} httproutes in namespace {ref.namespace} ({message}): "
            "install the chart with rbac.trafficProviders.gatewayAPI=true"
        )
    return TrafficError(f"{verb} {ref} failed: HTTP {exc.status} {exc.reason}: {message}")


class GatewayAPIProvider:
    """Points traffic at the active cluster by setting HTTPRoute backendRef weights."""

    name = "gatewayapi"

    def __init__(
        self, *, max_attempts: int = MAX_ATTEMPTS, request_timeout: float = REQUEST_TIMEOUT_SECONDS
    ) -> None:
        self.max_attempts = max_attempts
        self.request_timeout = request_timeout

    def apply(
        self, hub: client.ApiClient, owner: Owner, spec: ModelDeploymentSpec, target: TrafficTarget
    ) -> None:
        ref = route_ref(owner, spec)
        if ref.namespace != owner.namespace:
            # TENANCY.md: a route in another namespace is another team's; its weights would
            # move their traffic.
            raise TrafficConflict(
                f"{ref} is in another namespace than the ModelDeployment ({owner.namespace}): "
                "modeldr patches only routes in the ModelDeployment's own namespace"
            )
        weights = desired_weights(ref, target)
        api = client.CustomObjectsApi(hub)
        # max_attempts writes at most, each followed by a read that confirms it.
        for attempt in range(self.max_attempts + 1):
            route = self._get(api, ref)
            rules = reweighted_rules(route, ref, weights)
            if rules is None:
                return  # in place: the write skipped, or read back after it
            if attempt == self.max_attempts:
                break
            try:
                api.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    ref.namespace,
                    PLURAL,
                    ref.name,
                    merge_patch(route, rules),
                    field_manager=FIELD_MANAGER,
                    _content_type="application/merge-patch+json",
                    _request_timeout=self.request_timeout,
                )
            except ApiException as exc:
                if k8s.is_conflict(exc):  # changed since we read it: read again
                    time.sleep(min(0.1 * 2**attempt, 1.0))
                    continue
                raise api_error(exc, ref, "patch") from exc
            except Exception as exc:  # connection refused, timeout: the hub is not answering
                raise TrafficError(f"patch {ref} failed: {exc}") from exc
        raise TrafficError(
            f"{ref}: the backendRef weights {weights} did not stick after {self.max_attempts} "
            "attempts; another writer keeps changing the route (a GitOps tool reconciling it?)"
            ": exclude the weights from that tool or let modeldr own them"
        )

    def cleanup(self, hub: client.ApiClient, owner: Owner, spec: ModelDeploymentSpec) -> None:
        """Nothing to remove: the route is not modeldr's, and its weights stay as they are.

        Resetting them (say, to the primary) when a ModelDeployment is deleted or switches
        provider would move live traffic at a moment nobody chose, possibly onto a cluster
        that is down; the last switch modeldr made is the safest state to leave behind.
        """

    def _get(self, api: client.CustomObjectsApi, ref: RouteRef) -> Route:
        try:
            route: Route = api.get_namespaced_custom_object(
                GROUP,
                VERSION,
                ref.namespace,
                PLURAL,
                ref.name,
                _request_timeout=self.request_timeout,
            )
        except ApiException as exc:
            raise api_error(exc, ref, "get") from exc
        except Exception as exc:
            raise TrafficError(f"get {ref} failed: {exc}") from exc
        return route
