"""The DrillRun a plan starts, as a document: what the operator creates for a plan's
generation or due time and what `modeldr drill run` creates by hand. Pure (no kopf, no hub
calls): the CLI builds the same manifest the operator does."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modeldr.kube.constants import API_VERSION, DRILL_PLAN_LABEL, DRILLPLAN_KIND, DRILLRUN_KIND
from modeldr.kube.schedule import stamp


def run_name(plan: str, generation: int) -> str:
    """The run a plan starts for a generation: the same name every time, so a retried
    handler or a restarted operator never starts two."""
    return f"{plan}-{generation}"


def run_manifest(
    plan: str,
    plan_uid: str,
    generation: int,
    spec_raw: dict[str, Any],
    name: str | None = None,
    scheduled_time: datetime | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "planRef": {"name": plan},
        "plan": spec_raw,
        "planGeneration": generation,
    }
    if scheduled_time is not None:
        spec["scheduledTime"] = stamp(scheduled_time)
    return {
        "apiVersion": API_VERSION,
        "kind": DRILLRUN_KIND,
        "metadata": {
            "name": name or run_name(plan, generation),
            "labels": {DRILL_PLAN_LABEL: plan} | (labels or {}),
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": DRILLPLAN_KIND,
                    "name": plan,
                    "uid": plan_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }
