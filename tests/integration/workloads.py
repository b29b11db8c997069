"""Manifests and helpers the integration tests share."""

from __future__ import annotations

import sys
import urllib.request
from typing import Any

from kubernetes import client

from sandbox.config import REPO_ROOT, RUN_ANNOTATION, RUN_PROCESS


def echo_deployment(
    name: str,
    *,
    replicas: int = 2,
    ready_after: float = 0.0,
    drain: float = 0.0,
    grace: int = 10,
    extra_args: tuple[str, ...] = (),
    lifecycle: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Deployment whose pods run sandbox.echo_server as real processes on their pod IPs."""
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {
                        RUN_ANNOTATION: RUN_PROCESS,
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": "8080",
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "terminationGracePeriodSeconds": grace,
                    "containers": [
                        {
                            "name": "echo",
                            "image": "sandbox/echo",
                            # The runtime runs the command from here, like an image's WORKDIR.
                            "workingDir": str(REPO_ROOT),
                            "command": [sys.executable, "-m", "sandbox.echo_server"],
                            "args": [
                                "--host=$(POD_IP)",
                                "--port=8080",
                                f"--ready-after={ready_after}",
                                f"--drain={drain}",
                                *extra_args,
                            ],
                            "env": [
                                {
                                    "name": "POD_IP",
                                    "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                                },
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                },
                            ],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 1,
                                "failureThreshold": 1,
                            },
                        }
                    ],
                },
            },
        },
    }
    if lifecycle:
        deployment["spec"]["template"]["spec"]["containers"][0]["lifecycle"] = lifecycle
    return deployment


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 8080, "targetPort": 8080}],
        },
    }


def http_get(ip: str, port: int = 8080, path: str = "/", timeout: float = 2.0) -> tuple[int, str]:
    assert ip.startswith("127."), f"refusing to dial non-loopback address {ip}"
    with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=timeout) as response:
        return int(response.status), response.read().decode()


def answers(ip: str, port: int = 8080, path: str = "/") -> bool:
    try:
        return http_get(ip, port, path)[0] == 200
    except Exception:
        return False


def pods(core: client.CoreV1Api, namespace: str, app: str) -> list[client.V1Pod]:
    return list(core.list_namespaced_pod(namespace, label_selector=f"app={app}").items)


def ready_pods(core: client.CoreV1Api, namespace: str, app: str) -> list[client.V1Pod]:
    result = []
    for pod in pods(core, namespace, app):
        if pod.metadata.deletion_timestamp:
            continue
        conditions = {c.type: c.status for c in (pod.status.conditions or [])}
        if conditions.get("Ready") == "True":
            result.append(pod)
    return result
