"""Member clusters: kubeconfigs kept in hub Secrets, turned into Kubernetes API clients.

A Secret labelled `modeldr.io/member-cluster=<name>` (in the operator's member-secrets
namespace) holds key `kubeconfig` and optionally `prometheus-url`,
`infrastructure-webhook-url` (the infrastructure provider the drill engine asks for the faults
only the infrastructure can make: NodeFailure, ClusterOutage; see
docs/infrastructure-webhook.md) and `infrastructure-webhook-token` (the bearer token every call
to that provider carries). A missing, unreadable or invalid Secret is a `MemberError`
with a message that says what to fix; it never crashes the operator.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import yaml
from kubernetes import client, config

from modeldr.kube.config import OperatorConfig
from modeldr.kube.errors import MemberError

log = logging.getLogger(__name__)

KUBECONFIG_KEY = "kubeconfig"
PROMETHEUS_KEY = "prometheus-url"
INFRASTRUCTURE_KEY = "infrastructure-webhook-url"
INFRASTRUCTURE_TOKEN_KEY = "infrastructure-webhook-token"
# Member apiservers are dialled with short timeouts: a dead cluster must fail a health check
# in about a second, not in urllib3's default retries.
CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 5.0
SECRETS_TTL_S = 10.0
# Kubeconfig fields that run a program or read the operator's own files as soon as the
# kubeconfig is loaded (the kubernetes client honours them all): refused in member Secrets
# unless the admin allows them (chart value memberClusters.allowUnsafeCredentials).
UNSAFE_USER_FIELDS = ("exec", "auth-provider", "tokenFile", "client-certificate", "client-key")
UNSAFE_CLUSTER_FIELDS = ("certificate-authority", "insecure-skip-tls-verify")
UNSAFE_HINT = (
    "exec plugins, auth providers, file references and skipped TLS verification run code or "
    "read files inside the operator; embed the credentials (token, client-certificate-data, "
    "client-key-data, certificate-authority-data), or have the admin set the chart value "
    "memberClusters.allowUnsafeCredentials"
)


@dataclass
class Member:
    name: str
    api: client.ApiClient
    prometheus_url: str | None
    secret_version: str
    #: Base URL of the member's infrastructure webhook (None: no provider registered).
    infrastructure_url: str | None = None
    #: The bearer token for that webhook (None: none given; the provider is not called).
    infrastructure_token: str | None = field(default=None, repr=False)


def _decode(data: dict[str, str] | None, key: str) -> str | None:
    if not data or key not in data:
        return None
    return base64.b64decode(data[key]).decode()


def unsafe_credentials(kubeconfig: dict[str, Any]) -> list[str]:
    """The fields of any user or cluster of the kubeconfig that run code or read files when
    it is loaded (`users[<name>].exec`, ...), in the kubeconfig's order."""
    found: list[str] = []
    for kind, key, fields in (
        ("users", "user", UNSAFE_USER_FIELDS),
        ("clusters", "cluster", UNSAFE_CLUSTER_FIELDS),
    ):
        for entry in kubeconfig.get(kind) or []:
            if not isinstance(entry, dict):
                continue
            body = entry.get(key)
            if not isinstance(body, dict):
                continue
            found += [f"{kind}[{entry.get('name', '?')}].{f}" for f in fields if body.get(f)]
    return found


def api_client_from_kubeconfig(
    cluster: str, text: str, *, allow_unsafe: bool = False
) -> client.ApiClient:
    try:
        kubeconfig = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MemberError(
            cluster, f"key {KUBECONFIG_KEY!r} is not YAML: {yaml_problem(exc)}"
        ) from None
    if not isinstance(kubeconfig, dict) or not kubeconfig.get("contexts"):
        raise MemberError(cluster, f"key {KUBECONFIG_KEY!r} holds no kubeconfig contexts")
    unsafe = [] if allow_unsafe else unsafe_credentials(kubeconfig)
    if unsafe:
        # Refused before the client loads it: an exec plugin would run at load time.
        raise MemberError(cluster, f"kubeconfig refused: {', '.join(unsafe)} ({UNSAFE_HINT})")
    cfg = client.Configuration()
    try:
        config.load_kube_config_from_dict(kubeconfig, client_configuration=cfg)
    except Exception as exc:  # the loader raises several types for bad kubeconfigs
        raise MemberError(cluster, f"invalid kubeconfig: {exc}") from None
    cfg.retries = 0
    return client.ApiClient(cfg)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, without the offending text: PyYAML's own message quotes the
    line, and a kubeconfig's lines hold credentials (this ends up in status and Events)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return type(exc).__name__


class MemberRegistry:
    """Member clients by cluster name, refreshed from the hub Secrets at most every TTL."""

    def __init__(self, hub: client.ApiClient, settings: OperatorConfig) -> None:
        self._hub = hub
        self._settings = settings
        self._lock = threading.Lock()
        self._members: dict[str, Member] = {}
        self._errors: dict[str, str] = {}
        self._loaded_at = 0.0

    @property
    def hub(self) -> client.ApiClient:
        return self._hub

    @property
    def settings(self) -> OperatorConfig:
        return self._settings

    def _secrets(self) -> list[Any]:
        core = client.CoreV1Api(self._hub)
        ns = self._settings.member_secrets_namespace
        if self._settings.member_secret_names:
            found = []
            for name in self._settings.member_secret_names:
                try:
                    found.append(core.read_namespaced_secret(name, ns, _request_timeout=5))
                except client.ApiException as exc:
                    self._errors[name] = f"Secret {ns}/{name}: {exc.status} {exc.reason}"
            return found
        return list(
            core.list_namespaced_secret(
                ns, label_selector=self._settings.member_secret_label, _request_timeout=5
            ).items
        )

    def refresh(self, *, force: bool = False) -> None:
        with self._lock:
            if not force and time.monotonic() - self._loaded_at < SECRETS_TTL_S:
                return
            self._errors = {}
            secrets = self._secrets()
            seen: set[str] = set()
            for secret in secrets:
                labels = secret.metadata.labels or {}
                cluster = labels.get(self._settings.member_secret_label) or secret.metadata.name
                seen.add(cluster)
                version = secret.metadata.resource_version or ""
                current = self._members.get(cluster)
                if current is not None and current.secret_version == version:
                    continue
                text = _decode(secret.data, KUBECONFIG_KEY)
                if text is None:
                    self._errors[cluster] = (
                        f"Secret {secret.metadata.namespace}/{secret.metadata.name} has no key "
                        f"{KUBECONFIG_KEY!r}"
                    )
                    self._members.pop(cluster, None)
                    continue
                try:
                    api = api_client_from_kubeconfig(
                        cluster, text, allow_unsafe=self._settings.member_allow_unsafe_credentials
                    )
                except MemberError as exc:
                    where = f"Secret {secret.metadata.namespace}/{secret.metadata.name}"
                    self._errors[cluster] = f"{where}: {exc.detail}"
                    self._members.pop(cluster, None)
                    continue
                prometheus_url = (_decode(secret.data, PROMETHEUS_KEY) or "").strip() or None
                infrastructure_url = (
                    _decode(secret.data, INFRASTRUCTURE_KEY) or ""
                ).strip() or None
                token = (_decode(secret.data, INFRASTRUCTURE_TOKEN_KEY) or "").strip() or None
                self._members[cluster] = Member(
                    cluster,
                    api,
                    prometheus_url,
                    version,
                    infrastructure_url=infrastructure_url,
                    infrastructure_token=token,
                )
                log.info(
                    "member cluster %s registered from Secret %s", cluster, secret.metadata.name
                )
            for gone in set(self._members) - seen:
                log.info("member cluster %s unregistered (its Secret is gone)", gone)
                del self._members[gone]
            self._loaded_at = time.monotonic()

    def secret_labels(self) -> dict[str, dict[str, str]]:
        """Each member's hub Secret's labels, read now (a freeze or a withdrawn consent acts
        within seconds, not the registry's TTL); clients are not rebuilt."""
        found = {}
        for secret in self._secrets():
            labels = dict(secret.metadata.labels or {})
            found[labels.get(self._settings.member_secret_label) or secret.metadata.name] = labels
        return found

    def get(self, cluster: str) -> Member:
        try:
            self.refresh()
        except client.ApiException as exc:
            raise MemberError(
                cluster, f"cannot read member Secrets in the hub: {exc.status} {exc.reason}"
            ) from None
        except Exception as exc:
            raise MemberError(cluster, f"cannot read member Secrets in the hub: {exc}") from None
        with self._lock:
            member = self._members.get(cluster)
            if member is not None:
                return member
            if cluster in self._errors:
                raise MemberError(cluster, self._errors[cluster])
        raise MemberError(
            cluster,
            f"no Secret labelled {self._settings.member_secret_label}={cluster} in namespace "
            f"{self._settings.member_secrets_namespace} (create one with key {KUBECONFIG_KEY!r})",
        )
