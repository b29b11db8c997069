"""The CLI's calls to the hub cluster (the kubernetes client, with the user's kubeconfig).

Every call has a timeout; an apiserver that cannot be reached, a kubeconfig that cannot be
loaded, or credentials that are refused raise `HubUnavailable` (the CLI's exit 3), never a
traceback. Plans are written with server-side apply (field manager `modeldr-cli`), as
`kubectl apply --server-side` does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from modeldr.kube.constants import (
    DRILL_PLAN_LABEL,
    DRILLPLANS,
    DRILLRUNS,
    GROUP,
    MODELDEPLOYMENTS,
    VERSION,
)

FIELD_MANAGER = "modeldr-cli"
TIMEOUT = (3.0, 15.0)
T = TypeVar("T")


class HubUnavailable(RuntimeError):
    """The hub cannot be reached or refuses us: exit 3."""


class Rejected(RuntimeError):
    """The apiserver refused a request as invalid (a bad plan): exit 3, with its message."""


def _message(exc: client.ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        return f"{exc.status} {exc.reason}"
    return str(body.get("message") or f"{exc.status} {exc.reason}")


class Hub:
    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        try:
            self.api = config.new_client_from_config(config_file=kubeconfig, context=context)
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
            if context:
                contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
                active = next(c for c in contexts if c["name"] == context)
        except (ConfigException, OSError, StopIteration, TypeError, ValueError) as exc:
            raise HubUnavailable(f"kubeconfig: {exc or 'context not found'}") from None
        # Fail fast on a dead hub: no client retries (the loop that follows retries).
        self.api.configuration.retries = 0
        self.context_namespace = str((active.get("context") or {}).get("namespace") or "default")
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)

    def _call(self, fn: Callable[..., T], *args: Any, absent: bool = False, **kw: Any) -> T | None:
        try:
            return fn(*args, _request_timeout=TIMEOUT, **kw)
        except client.ApiException as exc:
            if exc.status == 404 and absent:
                return None
            if exc.status in (401, 403):
                raise HubUnavailable(f"the hub refused us: {_message(exc)}") from None
            if exc.status in (400, 404, 409, 422):
                raise Rejected(_message(exc)) from None
            if exc.status == 0 or exc.status >= 500:
                raise HubUnavailable(f"the hub answered {exc.status}: {_message(exc)}") from None
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise HubUnavailable(f"the hub cannot be reached: {exc}") from None

    # --- plans and runs ----------------------------------------------------------------

    def apply_plan(self, namespace: str, body: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
        name = body["metadata"]["name"]
        kwargs: dict[str, Any] = {"field_manager": FIELD_MANAGER, "force": True}
        if dry_run:
            kwargs["dry_run"] = "All"
        # Raw: the generated client decodes only a 200 answer, and an apply that creates the
        # plan is answered 201.
        raw = self._call(
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            DRILLPLANS,
            name,
            body,
            _content_type="application/apply-patch+yaml",
            _preload_content=False,
            **kwargs,
        )
        assert raw is not None
        return dict(json.loads(raw.data))

    def get_plan(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._call(
            self.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            DRILLPLANS,
            name,
            absent=True,
        )

    def get_run(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._call(
            self.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            DRILLRUNS,
            name,
            absent=True,
        )

    def create_run(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The new run; None when one of that name exists already (409)."""
        try:
            return self._call(
                self.custom.create_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                DRILLRUNS,
                body,
            )
        except Rejected as exc:
            if "already exists" in str(exc):
                return None
            raise

    def list_runs(self, namespace: str, plan: str | None) -> list[dict[str, Any]]:
        selector = f"{DRILL_PLAN_LABEL}={plan}" if plan else ""
        out = self._call(
            self.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            DRILLRUNS,
            label_selector=selector,
        )
        runs = list((out or {}).get("items") or [])
        runs.sort(key=lambda r: str(r["metadata"].get("creationTimestamp") or ""))
        return runs

    def abort_run(self, namespace: str, name: str) -> None:
        self._call(
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            DRILLRUNS,
            name,
            {"spec": {"abort": True}},
        )

    def get_modeldeployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._call(
            self.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            MODELDEPLOYMENTS,
            name,
            absent=True,
        )

    def annotate_modeldeployment(self, namespace: str, name: str, key: str, value: str) -> None:
        self._call(
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            MODELDEPLOYMENTS,
            name,
            {"metadata": {"annotations": {key: value}}},
        )

    def get_config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        cm = self._call(self.core.read_namespaced_config_map, name, namespace, absent=True)
        return None if cm is None else dict(cm.data or {})

    def run_events(self, namespace: str, name: str) -> list[Any]:
        out = self._call(
            self.core.list_namespaced_event,
            namespace,
            field_selector=f"involvedObject.kind=DrillRun,involvedObject.name={name}",
        )
        items = list(out.items if out is not None else [])
        items.sort(key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
        return items
