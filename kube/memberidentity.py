"""The hub operator's identity in a member cluster, as a kubeconfig for the member's hub
Secret: the modeldr-agent chart's member ServiceAccount (least privilege: its ClusterRole in
charts/modeldr-agent/templates/member-identity.yaml), a token from the TokenRequest API, and
the member's server and CA, all embedded (kube/members.py refuses file references and exec
plugins). Never an admin kubeconfig.

    modeldr member-kubeconfig --context primary > primary.member.kubeconfig
    kubectl -n modeldr-system create secret generic member-primary \\
      --from-file=kubeconfig=primary.member.kubeconfig
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any, Final

import yaml
from kubernetes import client, config

DEFAULT_NAMESPACE: Final = "modeldr-agent"
DEFAULT_SERVICE_ACCOUNT: Final = "modeldr-agent-member"
DEFAULT_DURATION_S: Final = 30 * 24 * 3600
TIMEOUT = (5.0, 30.0)


class IdentityError(RuntimeError):
    pass


def cluster_of(kubeconfig: dict[str, Any], context: str | None) -> tuple[str, dict[str, Any]]:
    """The context's cluster name and entry, its CA embedded (a file path is read here, on
    the admin's machine, never in the operator)."""
    name = context or kubeconfig.get("current-context")
    found = next((c for c in kubeconfig.get("contexts") or [] if c.get("name") == name), None)
    if found is None:
        raise IdentityError(f"no context {name!r} in the kubeconfig")
    cluster_name = found["context"]["cluster"]
    entry = next(
        (c for c in kubeconfig.get("clusters") or [] if c.get("name") == cluster_name), None
    )
    if entry is None:
        raise IdentityError(f"context {name!r} names cluster {cluster_name!r}, which is not there")
    cluster = dict(entry["cluster"])
    path = cluster.pop("certificate-authority", None)
    if path and "certificate-authority-data" not in cluster:
        cluster["certificate-authority-data"] = base64.b64encode(Path(path).read_bytes()).decode()
    if cluster.pop("insecure-skip-tls-verify", None):
        raise IdentityError(
            f"cluster {cluster_name!r} skips TLS verification: give the operator its CA instead"
        )
    return str(name), cluster


def member_kubeconfig(
    core: client.CoreV1Api,
    name: str,
    cluster: dict[str, Any],
    namespace: str = DEFAULT_NAMESPACE,
    account: str = DEFAULT_SERVICE_ACCOUNT,
    seconds: int = DEFAULT_DURATION_S,
    server: str | None = None,
) -> dict[str, Any]:
    """A kubeconfig with one context: `cluster` (its server replaced by `server` when given:
    the address the hub's pods reach) and a token of the member ServiceAccount."""
    try:
        answer = core.create_namespaced_service_account_token(
            account, namespace, {"spec": {"expirationSeconds": seconds}}, _request_timeout=TIMEOUT
        )
    except client.ApiException as exc:
        if exc.status == 404:
            raise IdentityError(
                f"no ServiceAccount {namespace}/{account}: install charts/modeldr-agent on this "
                "member (memberIdentity.create, the default)"
            ) from None
        raise
    user = f"system:serviceaccount:{namespace}:{account}"
    entry = dict(cluster) | ({"server": server} if server else {})
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": entry}],
        "users": [{"name": user, "user": {"token": answer.status.token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
    }


def main(args: argparse.Namespace) -> int:
    path = Path(args.kubeconfig or config.KUBE_CONFIG_DEFAULT_LOCATION).expanduser()
    try:
        name, cluster = cluster_of(yaml.safe_load(path.read_text()) or {}, args.context)
        api = config.new_client_from_config(config_file=str(path), context=args.context)
        printed = member_kubeconfig(
            client.CoreV1Api(api),
            name,
            cluster,
            args.namespace,
            args.service_account,
            int(args.duration_hours * 3600),
            args.server,
        )
    except (IdentityError, OSError) as exc:
        print(f"modeldr member-kubeconfig: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump(printed, sort_keys=False))
    return 0


def add_parser(commands: Any) -> None:
    command = commands.add_parser(
        "member-kubeconfig",
        help="print the least-privilege kubeconfig of the hub operator for a member cluster",
        description=(__doc__ or "").split("\n\n")[0],
    )
    command.add_argument("--kubeconfig", help="your (admin) kubeconfig of the member")
    command.add_argument("--context", help="its context of the member (default: current)")
    command.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="the agent chart's")
    command.add_argument("--service-account", default=DEFAULT_SERVICE_ACCOUNT)
    command.add_argument(
        "--duration-hours",
        type=float,
        default=DEFAULT_DURATION_S / 3600,
        help="the token's life (default 720 h; the apiserver may cap it): renew the Secret "
        "before it ends",
    )
    command.add_argument("--server", help="the member's API address as the hub's pods reach it")
