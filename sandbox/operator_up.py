"""`make operator-up` / `make operator-down`: the Helm chart in the sandbox hub and the
operator running against it as a local process, with the chart's ServiceAccount credentials
(a TokenRequest token), so RBAC is the chart's, not admin's.

The chart is installed with replicaCount=0 (CRDs, ServiceAccount and RBAC; the hub's kwok
node could not run the operator image anyway). The member clusters are registered the way a
user would: one hub Secret per member, labelled modeldr.io/member-cluster=<name>, holding
its kubeconfig, the sandbox Prometheus URL and the URL and bearer token of the sandbox's
infrastructure webhook (sandbox/infra_webhook.py, started here before the operator and kept
running when the operator stops, so that a restarted operator can still undo a drill's faults).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from modeldr.api.tenantpolicy import CLUSTER_FAULTS_LABEL, TRUE
from modeldr.kube import memberidentity
from modeldr.kube.constants import MEMBER_CLUSTER_LABEL
from modeldr.kube.members import (
    INFRASTRUCTURE_KEY,
    INFRASTRUCTURE_TOKEN_KEY,
    KUBECONFIG_KEY,
    PROMETHEUS_KEY,
)
from modeldr.serving.manifest import MANIFEST_NAME, ArtifactError, verify_model_dir
from sandbox import agent, daemons, haproxy, infra_daemon, kube, objectstores, tenants
from sandbox.config import (
    MEMBER_CLUSTERS,
    OPERATOR_HEALTH_PORT,
    OPERATOR_METRICS_PORT,
    REPO_ROOT,
    sandbox_paths,
    tool,
)

RELEASE = "modeldr"
NAMESPACE = "modeldr-system"
SERVICE_ACCOUNT = "modeldr"  # the chart's fullname for release "modeldr"
LEASE = "modeldr-leader"
NAME = "operator"
MARKER = "modeldr operator"
HEALTH_PORT = OPERATOR_HEALTH_PORT
METRICS_PORT = OPERATOR_METRICS_PORT
TOKEN_SECONDS = 24 * 3600
TINY_MODEL = Path("/tmp/modeldr/models/tiny-bert")  # spec.model.source of the example
# The trained tiny classifier (`modeldr-serve train-tiny`), committed with its manifest.
EXAMPLE_POLICY = REPO_ROOT / "examples/sandbox/tenantpolicy.yaml"
TINY_MODEL_FIXTURE = REPO_ROOT / "tests/fixtures/models/tiny-review-bert"


def operator_dir() -> Path:
    return sandbox_paths().root / "operator"


def operator_kubeconfig() -> Path:
    return operator_dir() / "kubeconfig"


def operator_log() -> Path:
    return sandbox_paths().logs / f"{NAME}.log"


def operator_pid() -> int | None:
    return daemons.running_pid(NAME, MARKER)


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=180, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed:\n{result.stderr.strip()}")
    return result


def _kubectl(*args: str) -> str:
    kubeconfig = str(sandbox_paths().kubeconfig)
    return _run([tool("kubectl"), "--kubeconfig", kubeconfig, *args]).stdout


def install_chart() -> None:
    # CRDs first, server-side: helm installs CRDs only when absent, never upgrades them.
    _kubectl(
        "--context",
        "hub",
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        str(REPO_ROOT / "crds"),
    )
    _run(
        [
            tool("helm"),
            "upgrade",
            "--install",
            RELEASE,
            str(REPO_ROOT / "charts/modeldr"),
            "--kubeconfig",
            str(sandbox_paths().kubeconfig),
            "--kube-context",
            "hub",
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "--set",
            "replicaCount=0",
            "--set",
            "rbac.trafficProviders.gatewayAPI=true",
        ]
    )


def apply_example_policy() -> None:
    """The example namespace's TenantPolicy (examples/sandbox/tenantpolicy.yaml): without it
    the demo's namespace may place nothing and drill nothing."""
    _kubectl("--context", "hub", "apply", "--server-side", "-f", str(EXAMPLE_POLICY))


def wait_example_admitted() -> None:
    """Until the admission policy reads the example's grants (the leader compiles them)."""
    tenants.wait_admitted(yaml.safe_load(EXAMPLE_POLICY.read_text()))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


#: A member identity's kubeconfig is made again when older than this (its token lives a day).
MEMBER_KUBECONFIG_REUSE_S = 12 * 3600
MEMBER_TOKEN_SECONDS = 24 * 3600


def member_kubeconfig(cluster: str) -> str:
    """The operator's kubeconfig for a member: the agent chart's least-privilege member
    ServiceAccount (charts/modeldr-agent, memberIdentity), never the admin's; the same
    `modeldr member-kubeconfig` makes, kept under .sandbox/member/ for reuse."""
    path = sandbox_paths().root / "member" / f"{cluster}.kubeconfig"
    if path.exists() and time.time() - path.stat().st_mtime < MEMBER_KUBECONFIG_REUSE_S:
        return path.read_text()
    admin = yaml.safe_load(
        _kubectl("config", "view", "--minify", "--flatten", "--context", cluster)
    )
    _, entry = memberidentity.cluster_of(admin, cluster)
    printed = memberidentity.member_kubeconfig(
        kube.core(cluster),
        cluster,
        entry,
        agent.NAMESPACE,
        agent.MEMBER_SERVICE_ACCOUNT,
        MEMBER_TOKEN_SECONDS,
    )
    text = yaml.safe_dump(printed, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(text)
    return text


def register_members(
    infrastructure_url: str | None = None, infrastructure_token: str | None = None
) -> None:
    """One Secret per member, with the member identity's kubeconfig; one already holding the
    same data is left as it is (a rewrite would make the operator rebuild its member clients
    for nothing)."""
    core = kube.core("hub")
    prometheus_url = sandbox_paths().prometheus_url_file.read_text().strip()
    for cluster in MEMBER_CLUSTERS:
        kubeconfig = member_kubeconfig(cluster)
        data = {KUBECONFIG_KEY: _b64(kubeconfig), PROMETHEUS_KEY: _b64(prometheus_url)}
        if infrastructure_url:
            data[INFRASTRUCTURE_KEY] = _b64(infrastructure_url)
        if infrastructure_token:
            data[INFRASTRUCTURE_TOKEN_KEY] = _b64(infrastructure_token)
        # The member consents to whole-cluster faults (ClusterOutage) of the drills its
        # TenantPolicies allow (TENANCY.md): the example plan makes one.
        labels = {MEMBER_CLUSTER_LABEL: cluster, CLUSTER_FAULTS_LABEL: TRUE}
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"member-{cluster}", "namespace": NAMESPACE, "labels": labels},
            "data": data,
        }
        try:
            current = core.read_namespaced_secret(f"member-{cluster}", NAMESPACE)
            if current.data == data and current.metadata.labels == labels:
                continue
            core.replace_namespaced_secret(f"member-{cluster}", NAMESPACE, secret)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            core.create_namespaced_secret(NAMESPACE, secret)


def write_operator_kubeconfig() -> Path:
    """A kubeconfig for the hub that authenticates as the chart's ServiceAccount."""
    token = (
        kube.core("hub")
        .create_namespaced_service_account_token(
            SERVICE_ACCOUNT, NAMESPACE, {"spec": {"expirationSeconds": TOKEN_SECONDS}}
        )
        .status.token
    )
    admin = yaml.safe_load(
        _kubectl("config", "view", "--minify", "--flatten", "--context", "hub", "-o", "yaml")
    )
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "hub", "cluster": cluster}],
        "users": [
            {
                "name": f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}",
                "user": {"token": token},
            }
        ],
        "contexts": [
            {
                "name": "hub",
                "context": {
                    "cluster": "hub",
                    "user": f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}",
                },
            }
        ],
        "current-context": "hub",
    }
    path = operator_kubeconfig()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config))
    return path


def world_readable(model_dir: Path) -> None:
    """kind's pods run the server as an unprivileged user and read the copy through a
    hostPath: every file readable (a checkout may carry the weights as 0600)."""
    model_dir.chmod(0o755)
    for path in model_dir.iterdir():
        path.chmod(0o755 if path.is_dir() else 0o644)


def ensure_tiny_model(target: Path = TINY_MODEL) -> str:
    """Make target a copy of the committed trained classifier; return its manifest digest.

    The model examples/sandbox/modeldeployment.yaml serves and pins (expectedDigest): the
    fixture `modeldr-serve train-tiny` wrote (tests/fixtures/models/tiny-review-bert). A copy
    that is already there and verifies against the fixture's digest is kept; anything else
    (an older random-weight model, a damaged or partial copy) is replaced: the copy is made
    and verified beside it, then renamed into place, so a server never reads a half-copied
    directory. Servers already running keep the weights they loaded: restart them (delete
    their pods) to serve the new ones.
    """
    digest = hashlib.sha256((TINY_MODEL_FIXTURE / MANIFEST_NAME).read_bytes()).hexdigest()
    try:
        verify_model_dir(target, digest)
        world_readable(target)
        return digest
    except ArtifactError:
        pass

    def copy(fresh: Path) -> str:
        shutil.copytree(TINY_MODEL_FIXTURE, fresh)
        verify_model_dir(fresh, digest)
        return digest

    install_model(target, copy)
    print(f"model: {target} <- {TINY_MODEL_FIXTURE.relative_to(REPO_ROOT)} (sha256:{digest})")
    return digest


def install_model(target: Path, write: Callable[[Path], str]) -> str:
    """`write` makes a model directory beside `target` (returning its digest), then it is
    renamed into place: a server never reads a half-written directory. Returns the digest."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        fresh = staging / "model"
        digest = write(fresh)
        world_readable(fresh)
        if target.exists():
            target.rename(staging / "old")
        fresh.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return digest


def operator_env(pod_name: str, health_port: int, metrics_port: int) -> dict[str, str]:
    """What the chart's Deployment sets, with loopback ports for the sandbox."""
    return {
        "MODELDR_OPERATOR_NAMESPACE": NAMESPACE,
        "MODELDR_OPERATOR_POD_NAME": pod_name,
        "MODELDR_MEMBER_SECRETS_NAMESPACE": NAMESPACE,
        "MODELDR_MEMBER_SECRET_LABEL": MEMBER_CLUSTER_LABEL,
        "MODELDR_TRAFFIC_PROVIDERS": "endpointslice,gatewayapi,webhook,haproxy",
        # The sandbox's HAProxy (sandbox/haproxy.py), for the haproxy provider.
        **haproxy.settings_env(),
        "MODELDR_LEADER_ELECTION": "true",
        "MODELDR_LEADER_ELECTION_LEASE": LEASE,
        "MODELDR_BIND_ADDRESS": "127.0.0.1",
        "MODELDR_HEALTH_PORT": str(health_port),
        "MODELDR_METRICS_PORT": str(metrics_port),
        "MODELDR_LOG_LEVEL": "info",
        "MODELDR_LOG_FORMAT": "json",
        # Fewer malloc arenas: many short-lived worker threads otherwise inflate RSS.
        "MALLOC_ARENA_MAX": "2",
    }


def operator_argv() -> list[str]:
    return [
        str(Path(sys.executable).parent / "modeldr"),
        "operator",
        "--kubeconfig",
        str(operator_kubeconfig()),
    ]


def healthz(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return dict(json.load(response))
    except Exception:
        return None


def _alive(pid: int) -> bool:
    """Running (not exited, not a zombie); a process still exec'ing counts as running."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def operator_up(timeout: float = 60.0) -> None:
    # The infrastructure webhook first (idempotent): the operator's drills need it from the
    # start, and an operator already running still gets it registered.
    webhook_url = infra_daemon.ensure_running()
    print(f"infrastructure webhook on {webhook_url}; log {infra_daemon.log_file()}")
    ensure_tiny_model()  # also when the operator runs already: the pods read it at start
    from sandbox.model_versions import ensure_model_versions  # it imports this module

    ensure_model_versions()  # the rollout examples' versions of it
    # The examples' s3:// sources: the same versions in the sandbox's object stores, and the
    # store Secrets of the demo's namespaces.
    for line in objectstores.publish_examples(TINY_MODEL.parent):
        print(f"model {line}")
    pid = operator_pid()
    if pid and (healthz(HEALTH_PORT) or {}).get("leader"):
        register_members(webhook_url, infra_daemon.token())
        apply_example_policy()
        print(f"operator already running (pid {pid}); log {operator_log()}")
        return
    install_chart()
    register_members(webhook_url, infra_daemon.token())
    apply_example_policy()
    write_operator_kubeconfig()
    pid = daemons.start(
        NAME,
        operator_argv(),
        MARKER,
        env=operator_env("sandbox-operator-0", HEALTH_PORT, METRICS_PORT),
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise RuntimeError(
                f"the operator exited; log {operator_log()}:\n{_log_tail(operator_log())}"
            )
        if (healthz(HEALTH_PORT) or {}).get("leader"):
            wait_example_admitted()
            print(
                f"operator running (pid {pid}) as ServiceAccount {NAMESPACE}/{SERVICE_ACCOUNT}; "
                f"log {operator_log()}"
            )
            return
        time.sleep(0.5)
    raise TimeoutError(
        f"the operator did not become leader within {timeout:.0f}s; log {operator_log()}:\n"
        f"{_log_tail(operator_log())}"
    )


def operator_down() -> None:
    """Stop the operator; the infrastructure webhook keeps running (sandbox-down stops it)."""
    if daemons.stop(NAME, MARKER, grace=20.0):
        print("operator stopped")
    else:
        print("operator not running")
