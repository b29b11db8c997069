"""The journal key (drills/seal.py): 32 random bytes in a Secret of the operator's namespace,
made by the first operator that needs it, read by every later one (a new leader verifies
what the old one sealed). Blocking; called once at startup."""

from __future__ import annotations

import base64
import secrets
from typing import Any, Final

from kubernetes import client

from modeldr.kube import k8s
from modeldr.kube.constants import MANAGED_BY, MANAGER

SECRET_NAME: Final = "modeldr-journal-key"
KEY: Final = "key"
TIMEOUT: Final = (2.0, 10.0)


def load_or_create(hub: client.ApiClient, namespace: str) -> bytes:
    core = client.CoreV1Api(hub)
    for _ in range(2):  # created by another replica between the read and the create
        found: Any = k8s.call(
            core.read_namespaced_secret,
            SECRET_NAME,
            namespace,
            _request_timeout=TIMEOUT,
            absent=None,
        )
        if found is not None:
            return base64.b64decode((found.data or {})[KEY])
        key = secrets.token_bytes(32)
        body = {
            "metadata": {"name": SECRET_NAME, "labels": {MANAGED_BY: MANAGER}},
            "data": {KEY: base64.b64encode(key).decode()},
        }
        created = k8s.call(
            core.create_namespaced_secret, namespace, body, _request_timeout=TIMEOUT, conflict=None
        )
        if created is not None:
            return key
    raise RuntimeError(f"Secret {namespace}/{SECRET_NAME} was created and deleted meanwhile")
