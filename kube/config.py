"""The operator's settings, from the environment the Helm chart sets (charts/modeldr/README.md).

Every variable has a default that works for a developer running `modeldr operator` by hand
against a kubeconfig; the chart sets all of them explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from modeldr.kube.constants import MEMBER_CLUSTER_LABEL
from modeldr.kube.errors import ConfigError

KNOWN_PROVIDERS = ("endpointslice", "gatewayapi", "webhook", "haproxy")


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be >= {minimum}")
    return value


def _list(env: dict[str, str], name: str, default: str = "") -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, default).split(",") if item.strip())


@dataclass(frozen=True)
class OperatorConfig:
    namespace: str = "modeldr-system"
    pod_name: str = "modeldr-operator"
    member_secrets_namespace: str = "modeldr-system"
    member_secret_label: str = MEMBER_CLUSTER_LABEL
    # When set, member Secrets are read by name only (no list/watch RBAC needed).
    member_secret_names: tuple[str, ...] = ()
    # Member kubeconfigs with exec plugins, auth providers, file references or skipped TLS
    # verification are refused unless the admin allows them (they run code or read files
    # inside the operator, and anyone who may write a member Secret writes them).
    member_allow_unsafe_credentials: bool = False
    traffic_providers: tuple[str, ...] = KNOWN_PROVIDERS
    leader_election: bool = True
    leader_lease: str = "modeldr-leader"
    lease_duration_s: int = 15
    renew_deadline_s: int = 10
    retry_period_s: int = 2
    health_port: int = 8080
    metrics_port: int = 9090
    # 0.0.0.0 in a pod; the sandbox binds the operator to loopback.
    bind_address: str = "0.0.0.0"
    log_level: str = "info"
    log_format: str = "json"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        env = dict(os.environ if env is None else env)
        namespace = env.get("MODELDR_OPERATOR_NAMESPACE", "").strip() or cls.namespace
        providers = _list(env, "MODELDR_TRAFFIC_PROVIDERS", ",".join(KNOWN_PROVIDERS))
        unknown = sorted(set(providers) - set(KNOWN_PROVIDERS))
        if unknown:
            raise ConfigError(
                f"MODELDR_TRAFFIC_PROVIDERS names unknown providers {unknown}; "
                f"known: {', '.join(KNOWN_PROVIDERS)}"
            )
        log_format = env.get("MODELDR_LOG_FORMAT", "json").strip() or "json"
        if log_format not in ("json", "text"):
            raise ConfigError(f"MODELDR_LOG_FORMAT={log_format!r} must be json or text")
        return cls(
            namespace=namespace,
            pod_name=env.get("MODELDR_OPERATOR_POD_NAME", "").strip() or cls.pod_name,
            member_secrets_namespace=env.get("MODELDR_MEMBER_SECRETS_NAMESPACE", "").strip()
            or namespace,
            member_secret_label=env.get("MODELDR_MEMBER_SECRET_LABEL", "").strip()
            or cls.member_secret_label,
            member_secret_names=_list(env, "MODELDR_MEMBER_SECRET_NAMES"),
            member_allow_unsafe_credentials=env.get(
                "MODELDR_MEMBER_ALLOW_UNSAFE_CREDENTIALS", "false"
            )
            .strip()
            .lower()
            in ("true", "1", "yes"),
            traffic_providers=providers,
            leader_election=env.get("MODELDR_LEADER_ELECTION", "true").strip().lower()
            not in ("false", "0", "no"),
            leader_lease=env.get("MODELDR_LEADER_ELECTION_LEASE", "").strip() or cls.leader_lease,
            lease_duration_s=_int(env, "MODELDR_LEADER_ELECTION_LEASE_DURATION_S", 15, 1),
            renew_deadline_s=_int(env, "MODELDR_LEADER_ELECTION_RENEW_DEADLINE_S", 10, 1),
            retry_period_s=_int(env, "MODELDR_LEADER_ELECTION_RETRY_PERIOD_S", 2, 1),
            health_port=_int(env, "MODELDR_HEALTH_PORT", 8080),
            metrics_port=_int(env, "MODELDR_METRICS_PORT", 9090),
            bind_address=env.get("MODELDR_BIND_ADDRESS", "").strip() or cls.bind_address,
            log_level=env.get("MODELDR_LOG_LEVEL", "info").strip().lower() or "info",
            log_format=log_format,
        )
