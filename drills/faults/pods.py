"""PodKill: delete the model's pods in a member cluster (gracePeriodSeconds 0 is a crash).
Nothing to put back: the Deployment replaces them, and how fast is what the drill measures."""

from __future__ import annotations

from kubernetes import client

from modeldr.api.drillstatus import FaultRecord
from modeldr.drills.faults.base import (
    TIMEOUT,
    Aim,
    Choice,
    choose_pods,
    member_api,
)
from modeldr.drills.faults.params import FaultParameters
from modeldr.kube import k8s
from modeldr.kube.members import MemberRegistry


class PodKill:
    provider = "member-api"
    needs_infrastructure = False

    def describe(self, fault_type: str) -> str:
        return (
            "deletes the model's pods in `cluster` (gracePeriodSeconds 0 is a crash); "
            "the Deployment replaces them"
        )

    def choose(self, members: MemberRegistry, aim: Aim) -> Choice:
        where, fault = aim.where, aim.fault
        targets = choose_pods(members, aim)
        parameters = FaultParameters(
            namespace=where.namespace, grace_period_seconds=fault.grace_period_seconds
        )
        return Choice(targets, parameters.record(), aim.seed)

    def inject(self, members: MemberRegistry, record: FaultRecord) -> None:
        core = client.CoreV1Api(member_api(members, record.cluster))
        parameters = FaultParameters.of(record)
        for pod in record.targets:
            # Gone already (a retry after a partial inject, or the cluster moved on): fine.
            k8s.call(
                core.delete_namespaced_pod,
                pod,
                parameters.namespace,
                grace_period_seconds=parameters.grace_period_seconds,
                _request_timeout=TIMEOUT,
                absent=k8s.DONE,
            )

    def undo(self, members: MemberRegistry, record: FaultRecord) -> None:
        return None  # the Deployment replaces deleted pods
