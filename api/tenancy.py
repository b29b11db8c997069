"""What the TenantPolicies covering a hub namespace allow it (TENANCY.md): pure evaluation,
no I/O. The operator asks it before it touches a member for a ModelDeployment, the drills
before a run and before each step.

Several policies covering one namespace add up. For a ModelDeployment, field by field (a
placement, a source prefix or an image prefix any of them lists is allowed). For a drill,
policy by policy: a fault of a type is allowed by the policies that list that type, under
their own `nodeSelector` and `maxPodsPercent` (a policy allowing only PodKill with no node
selector never widens the nodes another policy allows NodeDrain on). A freeze in any freezes.

Every denial names what was refused and the rule that refused it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from modeldr.api.tenantpolicy import TenantPolicySpec

# The reasons TENANCY.md fixes.
POLICY_DENIED: Final = "PolicyDenied"
COLLATERAL_DAMAGE: Final = "CollateralDamage"
CONSENT_REVOKED: Final = "ConsentRevoked"
FROZEN: Final = "Frozen"


@dataclass(frozen=True)
class NamedPolicy:
    name: str
    spec: TenantPolicySpec


@dataclass(frozen=True)
class Grants:
    """The policies covering one hub namespace, and what they allow together."""

    namespace: str
    policies: tuple[NamedPolicy, ...]

    @classmethod
    def of(cls, namespace: str, policies: Iterable[NamedPolicy]) -> Grants:
        covering = tuple(p for p in policies if namespace in p.spec.namespaces)
        return cls(namespace, tuple(sorted(covering, key=lambda p: p.name)))

    @property
    def names(self) -> str:
        return ", ".join(p.name for p in self.policies) or "none"

    def nothing(self) -> str | None:
        """Why this namespace may do nothing at all (no policy covers it), or None."""
        if self.policies:
            return None
        return (
            f"no TenantPolicy covers hub namespace {self.namespace}: it may place nothing and "
            "drill nothing (ask the platform admin for one)"
        )

    def placement_denial(self, cluster: str, member_namespace: str) -> str | None:
        if (missing := self.nothing()) is not None:
            return missing
        for policy in self.policies:
            for placement in policy.spec.placements:
                if placement.cluster == cluster and member_namespace in placement.namespaces:
                    return None
        return (
            f"placements: cluster {cluster} namespace {member_namespace} is not among the "
            f"placements of the TenantPolicies covering {self.namespace} ({self.names})"
        )

    def source_denial(self, source: str) -> str | None:
        if _has_dot_segment(source) and self.policies:
            return f"modelSources: {source!r} has a '.' or '..' path segment: never allowed"
        prefixes = [prefix for p in self.policies for prefix in p.spec.model_sources]
        return self._prefix_denial("modelSources", source, prefixes)

    def image_denial(self, image: str) -> str | None:
        prefixes = [prefix for p in self.policies for prefix in p.spec.images]
        return self._prefix_denial("images", image, prefixes)

    def _prefix_denial(self, field: str, value: str, prefixes: list[str]) -> str | None:
        if (missing := self.nothing()) is not None:
            return missing
        if any(value.startswith(prefix) for prefix in prefixes):
            return None
        return (
            f"{field}: {value!r} starts with none of the allowed prefixes "
            f"({', '.join(prefixes) or 'none'}) of {self.names}"
        )

    def backup_denial(self, stores: Iterable[str], backup_prefix: str) -> str | None:
        """Why a ModelBackup with these stores and backup prefix is not allowed, or None."""
        if (missing := self.nothing()) is not None:
            return missing
        allowed = {store for p in self.policies for store in p.spec.backups.stores}
        for store in stores:
            if store not in allowed:
                return (
                    f"backups.stores: store {store!r} is not among the stores "
                    f"({', '.join(sorted(allowed)) or 'none'}) of {self.names}"
                )
        if _has_dot_segment(backup_prefix):
            return f"backups.prefixes: {backup_prefix!r} has a '.' or '..' path segment"
        prefixes = [prefix for p in self.policies for prefix in p.spec.backups.prefixes]
        return self._prefix_denial("backups.prefixes", backup_prefix, prefixes)

    def frozen_by(self) -> list[str]:
        return [p.name for p in self.policies if p.spec.drills.frozen]

    def allowing(self, fault_type: str) -> tuple[NamedPolicy, ...]:
        return tuple(p for p in self.policies if fault_type in p.spec.drills.faults)

    def fault_denial(self, fault_type: str) -> str | None:
        if (missing := self.nothing()) is not None:
            return missing
        if self.allowing(fault_type):
            return None
        return (
            f"drills.faults: {fault_type} is not among the fault types the TenantPolicies "
            f"covering {self.namespace} ({self.names}) allow"
        )

    def max_pods_percent(self, fault_type: str, plan_percent: int) -> int:
        """The blast radius a fault of this type may have: the plan's, capped by the most
        generous cap among the policies allowing the type (none without a cap: the plan's)."""
        caps = [p.spec.drills.max_pods_percent for p in self.allowing(fault_type)]
        if not caps or any(cap is None for cap in caps):
            return plan_percent
        return min(plan_percent, max(cap for cap in caps if cap is not None))

    def node_denial(self, fault_type: str, node: str, labels: Mapping[str, str]) -> str | None:
        """Why a node-level fault of this type may not be made on this node, or None."""
        if (denied := self.fault_denial(fault_type)) is not None:
            return denied
        selectors = [p.spec.drills.node_selector for p in self.allowing(fault_type)]
        if any(selector is None or _matches(selector, labels) for selector in selectors):
            return None
        wanted = " or ".join(
            ",".join(f"{k}={v}" for k, v in sorted(s.items())) for s in selectors if s
        )
        return (
            f"drills.nodeSelector: node {node} does not carry the labels the TenantPolicies "
            f"allowing {fault_type} to {self.namespace} ask for ({wanted})"
        )


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _has_dot_segment(source: str) -> bool:
    """A `.` or `..` segment in the source's path: `file:///models/team-a/../team-b` starts
    with team-a's prefix and names team-b's directory."""
    _, _, rest = source.partition("://")
    return any(segment in (".", "..") for segment in rest.split("/"))


def modeldeployment_denials(
    grants: Grants,
    placements: Iterable[tuple[str, str]],
    source: str,
    image: str,
) -> list[str]:
    """Every reason the ModelDeployment may not be served as specified ([] when allowed):
    its (cluster, member namespace) placements, its model source, its image."""
    if (missing := grants.nothing()) is not None:
        return [missing]
    found = [grants.placement_denial(cluster, ns) for cluster, ns in placements]
    found += [grants.source_denial(source), grants.image_denial(image)]
    return list(dict.fromkeys(d for d in found if d is not None))


# What the admission policy (the chart's ValidatingAdmissionPolicy) reads: one ConfigMap in the
# operator's namespace, one key per covered hub namespace, its value one grant per line:
# `p:<cluster>/<member namespace>`, `s:<model source prefix>`, `i:<image prefix>`. Tenants
# have no rights in that namespace; the operator rewrites it whenever the policies change.
ADMISSION_CONFIGMAP: Final = "modeldr-tenancy"
PLACEMENT_GRANT: Final = "p:"
SOURCE_GRANT: Final = "s:"
IMAGE_GRANT: Final = "i:"


def admission_grants(policies: Iterable[NamedPolicy]) -> dict[str, str]:
    """Each covered hub namespace's grants, as the admission policy reads them."""
    grants: dict[str, set[str]] = {}
    for policy in policies:
        spec = policy.spec
        lines = {
            f"{PLACEMENT_GRANT}{p.cluster}/{ns}" for p in spec.placements for ns in p.namespaces
        }
        lines |= {f"{SOURCE_GRANT}{prefix}" for prefix in spec.model_sources}
        lines |= {f"{IMAGE_GRANT}{prefix}" for prefix in spec.images}
        for namespace in spec.namespaces:
            grants.setdefault(namespace, set()).update(lines)
    # A namespace covered by a policy that grants nothing still has a key (with nothing in it):
    # the admission policy then names the grant that is missing, not "no policy".
    return {ns: "\n".join(sorted(lines)) for ns, lines in sorted(grants.items())}
