"""The node agent in the sandbox's member clusters: the modeldr-agent chart installed into
primary and standby (by `sandbox up`), its DaemonSet's pods run by the process runtime as
`modeldr agent` processes, one per kwok node, with hostNetwork (the node's address), so
their nftables rules are real rules of this machine's kernel for the 127.x pod IPs.

The agents authenticate as the chart's ServiceAccount (a TokenRequest token in a kubeconfig
under .sandbox/agent/, passed with --kubeconfig: the process runtime mounts no token), so
their RBAC is the chart's. The ServiceAccount is created first with Helm's ownership
metadata, so that its token exists before the pods start and the release adopts it.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from modeldr.agent import nft
from modeldr.agent.rules import FAMILY, TABLE, delete_table_script
from sandbox import kube
from sandbox.config import (
    MEMBER_CLUSTERS,
    REPO_ROOT,
    RUN_ANNOTATION,
    RUN_PROCESS,
    sandbox_paths,
    tool,
)

RELEASE = "modeldr-agent"
NAMESPACE = "modeldr-agent"
SERVICE_ACCOUNT = "modeldr-agent"  # the chart's fullname for release "modeldr-agent"
#: The hub operator's identity in the member (the chart's memberIdentity).
MEMBER_SERVICE_ACCOUNT = "modeldr-agent-member"
DAEMONSET = "modeldr-agent"
CHART = REPO_ROOT / "charts" / "modeldr-agent"
TOKEN_SECONDS = 24 * 3600
#: The table every agent writes its chains into; `sandbox down` deletes it.
NFT_TABLE = TABLE
NFT_FAMILY = FAMILY


def kubeconfig_path(cluster: str) -> Path:
    return sandbox_paths().root / "agent" / f"{cluster}.kubeconfig"


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed:\n{done.stderr.strip()}")
    return done.stdout


def _kubectl(cluster: str, *args: str) -> str:
    kubeconfig = str(sandbox_paths().kubeconfig)
    return _run([tool("kubectl"), "--kubeconfig", kubeconfig, "--context", cluster, *args])


def _ensure_service_account(cluster: str) -> None:
    core = kube.core(cluster)
    helm = {"meta.helm.sh/release-name": RELEASE, "meta.helm.sh/release-namespace": NAMESPACE}
    account = {
        "metadata": {
            "name": SERVICE_ACCOUNT,
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": helm,
        }
    }
    with contextlib.suppress(client.ApiException):  # 409: it is there already
        core.create_namespace({"metadata": {"name": NAMESPACE}})
    try:
        core.create_namespaced_service_account(NAMESPACE, account)
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def _write_kubeconfig(cluster: str) -> Path:
    token = (
        kube.core(cluster)
        .create_namespaced_service_account_token(
            SERVICE_ACCOUNT, NAMESPACE, {"spec": {"expirationSeconds": TOKEN_SECONDS}}
        )
        .status.token
    )
    admin = yaml.safe_load(_kubectl(cluster, "config", "view", "--minify", "--flatten"))
    user = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
    }
    path = kubeconfig_path(cluster)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config))
    return path


def install(cluster: str) -> None:
    """CRD, ServiceAccount token, then the chart (idempotent: `helm upgrade --install`)."""
    # CRDs server-side first: helm installs a chart's CRDs only when absent, never upgrades.
    _kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    _ensure_service_account(cluster)
    path = _write_kubeconfig(cluster)
    _run(
        [
            tool("helm"),
            "upgrade",
            "--install",
            RELEASE,
            str(CHART),
            "--kubeconfig",
            str(sandbox_paths().kubeconfig),
            "--kube-context",
            cluster,
            "--namespace",
            NAMESPACE,
            "--set",
            f"clusterName={cluster}",
            "--set-json",
            f'podAnnotations={{"{RUN_ANNOTATION}": "{RUN_PROCESS}"}}',
            "--set-json",
            f'extraArgs=["--kubeconfig={path}"]',
        ]
    )


def ready(cluster: str) -> bool:
    """Every node has its agent pod, and each is running."""
    apps = client.AppsV1Api(kube.api_client(cluster))
    try:
        ds = apps.read_namespaced_daemon_set(DAEMONSET, NAMESPACE).status
    except client.ApiException:
        return False
    wanted = ds.desired_number_scheduled or 0
    return wanted > 0 and (ds.number_ready or 0) == wanted


def install_all(timeout: float = 120.0) -> None:
    for cluster in MEMBER_CLUSTERS:
        install(cluster)
    for cluster in MEMBER_CLUSTERS:
        kube.wait_for(
            lambda c=cluster: ready(c), timeout=timeout, what=f"node agents of {cluster} running"
        )


def agent_pods(cluster: str) -> dict[str, str]:
    """node -> agent pod name."""
    pods = kube.core(cluster).list_namespaced_pod(
        NAMESPACE, label_selector=f"app.kubernetes.io/instance={RELEASE}"
    )
    return {p.spec.node_name: p.metadata.name for p in pods.items if p.spec.node_name}


def remove_table() -> None:
    """Delete the agents' table (every agent's chains): nothing of it outlives the sandbox."""
    with contextlib.suppress(nft.NftError, OSError, subprocess.SubprocessError):
        nft.apply(delete_table_script())
