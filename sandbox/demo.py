"""`make demo`: a tiny BERT served from primary and standby as real processes on the sandbox,
inference traffic through the clusters' EndpointSlices, a whole-primary outage mid-traffic,
the client failing over to standby, Prometheus's view, and primary restored.

This is the demo until the drill engine arrives (then `modeldr drill run` replaces it).
Every loop is bounded; all traffic goes to loopback pod IPs found through EndpointSlices.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from sandbox import kube, prometheus
from sandbox.api import Sandbox
from sandbox.config import GPU_PRODUCT, GPU_RESOURCE, MEMBER_CLUSTERS, RUN_ANNOTATION, RUN_PROCESS

log = logging.getLogger("demo")

NAMESPACE = "modeldr-demo"
APP = "bert"
MODEL_NAME = "tiny-bert"
PORT = 8080
RATE = 20  # requests per second
MAX_SECONDS = 60  # traffic stops by itself after this, whatever happens


def model_deployment(model_dir: Path, digest: str) -> dict[str, Any]:
    """What the operator will render for a ModelDeployment, written out by hand for now."""
    serve = str(Path(sys.executable).parent / "modeldr-serve")
    env = {
        "MODELDR_SERVE_MODEL_DIR": str(model_dir),
        "MODELDR_SERVE_MODEL_NAME": MODEL_NAME,
        "MODELDR_SERVE_PORT": str(PORT),
        "MODELDR_SERVE_EXPECTED_DIGEST": digest,
        "MODELDR_SERVE_DRAIN_DELAY_S": "1",
        "MODELDR_SERVE_GRACE_PERIOD_S": "12",
        "MODELDR_SERVE_CPU_THREADS": "1",  # four servers share two cores
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "labels": {"app": APP}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {
                    "labels": {"app": APP},
                    "annotations": {
                        RUN_ANNOTATION: RUN_PROCESS,
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "terminationGracePeriodSeconds": 15,
                    "nodeSelector": {"nvidia.com/gpu.product": GPU_PRODUCT},
                    "tolerations": [
                        {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "containers": [
                        {
                            "name": "server",
                            "image": "modeldr/serving:dev",
                            "command": [serve, "run"],
                            "args": ["--host=$(POD_IP)"],
                            "env": [
                                {
                                    "name": "POD_IP",
                                    "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                                },
                                *({"name": k, "value": v} for k, v in env.items()),
                            ],
                            "ports": [{"name": "http", "containerPort": PORT}],
                            "resources": {"limits": {GPU_RESOURCE: "1"}},
                            "readinessProbe": {
                                "httpGet": {"path": "/v2/health/ready", "port": "http"},
                                "periodSeconds": 1,
                                "failureThreshold": 1,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/v2/health/live", "port": "http"},
                                "periodSeconds": 5,
                                "failureThreshold": 3,
                            },
                        }
                    ],
                },
            },
        },
    }


def endpoints(cluster: str) -> list[str]:
    """Ready pod addresses of the demo Service, from the cluster's EndpointSlices."""
    addresses = kube.ready_endpoint_addresses(cluster, NAMESPACE, APP)
    return [a for a in addresses if a.startswith("127.")]  # the network rule: loopback only


def serving(cluster: str) -> list[str]:
    """Endpoints that are listed Ready and whose server says ready: not a stale status."""
    ready = []
    for address in endpoints(cluster):
        try:
            with urllib.request.urlopen(f"http://{address}:{PORT}/v2/health/ready", timeout=1) as r:
                if r.status == 200:
                    ready.append(address)
        except Exception:
            continue
    return ready


def infer(address: str, text: str) -> dict[str, Any]:
    body = json.dumps({"texts": [text]}).encode()
    request = urllib.request.Request(
        f"http://{address}:{PORT}/predict", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=2) as response:
        return dict(json.load(response))


@dataclass
class Client:
    """A client that sends to the active cluster and fails over to the other after 3 errors."""

    active: str = "primary"
    ok: int = 0
    failed: int = 0
    consecutive_failures: int = 0
    last_success: dict[str, float] = field(default_factory=dict)
    first_success_after_switch: float | None = None
    switched_at: float | None = None
    timeline: list[str] = field(default_factory=list)
    _addresses: dict[str, list[str]] = field(default_factory=dict)

    def addresses(self) -> list[str]:
        # Apiserver down: keep the last known endpoints (they will fail fast).
        with contextlib.suppress(Exception):
            self._addresses[self.active] = endpoints(self.active)
        return self._addresses.get(self.active, [])

    def send(self, n: int) -> None:
        addresses = self.addresses()
        try:
            if not addresses:
                raise ConnectionError("no ready endpoints")
            infer(addresses[n % len(addresses)], f"request {n}")
        except Exception as exc:
            self.failed += 1
            self.consecutive_failures += 1
            if self.consecutive_failures == 1:
                self.note(f"request to {self.active} failed: {type(exc).__name__}")
            if self.consecutive_failures >= 3 and self.switched_at is None:
                self.active = "standby" if self.active == "primary" else "primary"
                self.switched_at = time.monotonic()
                self.consecutive_failures = 0
                self.note(f"client switched to {self.active}")
            return
        self.ok += 1
        self.consecutive_failures = 0
        now = time.monotonic()
        if self.switched_at is not None and self.first_success_after_switch is None:
            self.first_success_after_switch = now
            self.note(f"first success on {self.active}")
        self.last_success[self.active] = now

    def note(self, message: str) -> None:
        self.timeline.append(f"{time.strftime('%H:%M:%S')} {message}")
        log.info("%s", message)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("kubernetes").setLevel(logging.ERROR)
    sandbox = Sandbox()
    log.info("== 1/6 sandbox up")
    sandbox.up()

    log.info("== 2/6 tiny BERT model (random weights from a config, safetensors, sha256 manifest)")
    model_dir = sandbox.paths.root / "models" / MODEL_NAME
    if not (model_dir / "modeldr-manifest.json").exists():
        serve = str(Path(sys.executable).parent / "modeldr-serve")
        subprocess.run(
            [serve, "tiny-model", str(model_dir), "--task", "sequence-classification"], check=True
        )
    from modeldr.serving.manifest import read_manifest

    _, digest = read_manifest(model_dir)
    log.info("model %s digest sha256:%s", model_dir, digest)

    log.info("== 3/6 serve it from primary and standby (2 replicas each, on GPU nodes)")
    for cluster in MEMBER_CLUSTERS:
        core = kube.core(cluster)
        apps = client.AppsV1Api(kube.api_client(cluster))
        if NAMESPACE not in {n.metadata.name for n in core.list_namespace().items}:
            core.create_namespace({"metadata": {"name": NAMESPACE}})
        manifest = model_deployment(model_dir, digest)
        try:
            apps.create_namespaced_deployment(NAMESPACE, manifest)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            apps.replace_namespaced_deployment(APP, NAMESPACE, manifest)
        service = {
            "metadata": {"name": APP},
            "spec": {
                "selector": {"app": APP},
                "ports": [{"name": "http", "port": PORT, "targetPort": PORT}],
            },
        }
        try:
            core.create_namespaced_service(NAMESPACE, service)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    for cluster in MEMBER_CLUSTERS:
        ready = kube.wait_for(
            lambda c=cluster: len(serving(c)) == 2 and serving(c),
            timeout=180,
            interval=1,
            what=f"2 ready model servers in {cluster}",
        )
        log.info("%s: model servers ready at %s", cluster, ", ".join(ready))
        for pod in kube.core(cluster).list_namespaced_pod(NAMESPACE).items:
            log.info(
                "  %-24s node=%-6s ip=%-13s gpu=%s",
                pod.metadata.name,
                pod.spec.node_name,
                pod.status.pod_ip,
                pod.spec.containers[0].resources.limits.get(GPU_RESOURCE),
            )
    answer = infer(endpoints("primary")[0], "the standby must take over")
    log.info("sample answer from primary: %s", json.dumps(answer)[:200])

    log.info("== 4/6 traffic at %d req/s; primary goes down mid-traffic", RATE)
    demo_client = Client()
    started = time.monotonic()
    outage_at: float | None = None
    n = 0
    while time.monotonic() - started < MAX_SECONDS:
        demo_client.send(n)
        n += 1
        elapsed = time.monotonic() - started
        if outage_at is None and elapsed >= 5:
            demo_client.note("primary outage: pods killed, control plane stopped")
            sandbox.outage("primary")
            outage_at = time.monotonic()
        if (
            demo_client.first_success_after_switch
            and time.monotonic() - demo_client.first_success_after_switch > 5
        ):
            break
        time.sleep(max(0.0, started + n / RATE - time.monotonic()))

    log.info("== 5/6 what Prometheus saw (requests answered per cluster)")
    time.sleep(3)  # one more scrape
    for sample in prometheus.query(
        # max_over_time: primary's series went stale when its pods died.
        f"sum by (cluster) (max_over_time(modeldr_serve_requests_total"
        f'{{namespace="{NAMESPACE}", route="/predict", code="200"}}[5m]))'
    ):
        log.info("  cluster=%-8s requests=%s", sample["metric"].get("cluster"), sample["value"][1])
    for sample in prometheus.query(f'up{{namespace="{NAMESPACE}"}}'):
        log.info(
            "  up{cluster=%s, pod=%s} = %s",
            sample["metric"].get("cluster"),
            sample["metric"].get("pod"),
            sample["value"][1],
        )

    log.info("== 6/6 restore primary")
    sandbox.restore("primary")
    kube.wait_for(
        lambda: len(serving("primary")) == 2,
        timeout=180,
        interval=1,
        what="primary's model servers Ready again",
    )
    log.info("primary restored: %s", ", ".join(endpoints("primary")))

    print("\nTimeline:")
    for line in demo_client.timeline:
        print("  " + line)
    rto = None
    if demo_client.first_success_after_switch and "primary" in demo_client.last_success:
        rto = demo_client.first_success_after_switch - demo_client.last_success["primary"]
    print(f"\nrequests: {demo_client.ok} ok, {demo_client.failed} failed")
    print(
        f"client-observed RTO (last success on primary -> first on standby): {rto:.2f} s"
        if rto is not None
        else "client never recovered"
    )
    print(
        "\nThe sandbox is still up: export KUBECONFIG=$PWD/.sandbox/kubeconfig; "
        "`make sandbox-down` removes it."
    )
    return 0 if rto is not None else 1


if __name__ == "__main__":
    sys.exit(main())
