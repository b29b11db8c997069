"""ModelCorruption: one extra replica of the model, made from its Deployment's pod template in
the member, that serves a corrupted copy of the artifact. The server must refuse it: never
turn Ready, and say which file is bad. Traffic must not notice (the step's own expectations
measure that).

The replica is a bare Pod with its own labels: not the Service's selector (no traffic ever
reaches it), not the Deployment's (its ReplicaSet does not adopt it, the replica counts stay
the ModelDeployment's) and not the PodDisruptionBudget's. Its container runs the image's own
`modeldr.drills.faults.tamper` wrapper, which copies the model directory into the pod's
scratch `/tmp`, flips one byte of the weights and starts the unchanged server command on the
copy; `restartPolicy: Never` and `terminationMessagePolicy: FallbackToLogsOnError` leave the
server's refusal in the pod's status, where the drill reads it. Undo deletes the pod (the
copy goes with its emptyDir; the wrapper also removes it when the server exits).
"""

from __future__ import annotations

import copy
import re
import secrets
import time
from typing import Any

from kubernetes import client

from modeldr.api.drillstatus import FaultRecord
from modeldr.api.phase import Phase
from modeldr.drills.faults.base import TIMEOUT, Aim, Choice, Observation, member_api
from modeldr.drills.faults.params import FaultParameters
from modeldr.drills.refusal import Refusal
from modeldr.kube import k8s
from modeldr.kube.constants import GROUP, MANAGED_BY, NAME_LABEL, NAMESPACE_LABEL
from modeldr.kube.members import MemberRegistry

# Labels of the corrupted replica: which fault made it, and whose model it copies.
FAULT_LABEL = f"{GROUP}/drill-fault"
CORRUPTED_OF_LABEL = f"{GROUP}/corrupted-replica-of"
TAMPER_MODULE = "modeldr.drills.faults.tamper"
MODEL_DIR_ENV = "MODELDR_SERVE_MODEL_DIR"
SCRATCH = "/tmp"  # the pod template's emptyDir
# Undo waits this long for the replica to be gone (its server, if it ever started, drains).
DELETE_GRACE_S = 5
GONE_TIMEOUT_S = 30.0
# The server's words for an artifact file it refuses (serving.manifest's ArtifactError).
REFUSAL = re.compile(
    r"(?:mismatch for|missing artifact file|not covered by \S+:?)\s*(\S+?)[:,]?(?:\s|$)"
)


def scratch_dir(pod: str) -> str:
    return f"{SCRATCH}/modeldr-corrupted-{pod}"


def _serve_a_corrupted_copy(container: dict[str, Any], pod: str, model: str) -> None:
    """The server's container, changed to start its server through the tamper wrapper on a
    corrupted copy of the model directory (pure, in place)."""
    env = list(container.get("env") or [])
    model_dir = next((e.get("value") for e in env if e.get("name") == MODEL_DIR_ENV), None)
    if not model_dir:
        raise Refusal(
            "FaultUnsupported",
            f"the pod template of {model} sets no {MODEL_DIR_ENV}: no artifact to corrupt",
        )
    server = list(container.get("command") or []) + list(container.get("args") or [])
    container["command"] = [
        "python3",
        "-m",
        TAMPER_MODULE,
        "--source",
        model_dir,
        "--copy",
        scratch_dir(pod),
        "--",
        *server,
    ]
    container.pop("args", None)
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    # It must never be mistaken for a live replica: no liveness restarts hide its refusal.
    container.pop("livenessProbe", None)


#: Beyond its step's duration, how long the corrupted replica may live before the kubelet
#: ends it (activeDeadlineSeconds): the inject, the model checks after the step and the undo.
LIFETIME_MARGIN_S = 120


def corrupted_pod(
    deployment: dict[str, Any],
    pod: str,
    fault_id: str,
    model: str,
    hold_seconds: int | None = None,
) -> dict[str, Any]:
    """The Deployment's pod template as one bare Pod serving a corrupted copy (pure). With
    `hold_seconds` (the step's duration), the pod ends by itself that long plus
    LIFETIME_MARGIN_S after it starts (activeDeadlineSeconds, the kubelet's), whether or not
    an operator is left to delete it."""
    template = copy.deepcopy(deployment["spec"]["template"])
    metadata = template.get("metadata") or {}
    labels = {
        k: v
        for k, v in (metadata.get("labels") or {}).items()
        if k not in (NAME_LABEL, NAMESPACE_LABEL, MANAGED_BY)
    }
    labels |= {FAULT_LABEL: fault_id, CORRUPTED_OF_LABEL: model}
    # No scraping: it never serves, so its metrics would be a target that is always down.
    annotations = {
        k: v
        for k, v in (metadata.get("annotations") or {}).items()
        if not k.startswith("prometheus.io/")
    }
    spec = template["spec"]
    _serve_a_corrupted_copy(spec["containers"][0], pod, model)
    # The copy is the model's size: the scratch emptyDir's limit (sized for torch's files)
    # must not evict the replica before its server gets to refuse it.
    for volume in spec.get("volumes") or []:
        if "emptyDir" in volume:
            volume["emptyDir"] = {}
    spec["restartPolicy"] = "Never"
    spec["terminationGracePeriodSeconds"] = DELETE_GRACE_S
    if hold_seconds is not None:
        spec["activeDeadlineSeconds"] = hold_seconds + LIFETIME_MARGIN_S
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod,
            "namespace": deployment["metadata"]["namespace"],
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    }


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        for key in ("state", "lastState"):
            terminated = (status.get(key) or {}).get("terminated")
            if terminated:
                return dict(terminated)
    return None


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if any(c.get("ready") for c in status.get("containerStatuses") or []):
        return True
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def assess_replica(pod: dict[str, Any] | None, name: str) -> Observation:
    """What the corrupted replica showed by the step's end (pure): Ready is a failure (the
    server accepted a tampered artifact); a refusal naming a file in the corrupted copy is
    what must happen; anything else is no evidence either way."""
    if pod is None:
        return Observation(
            Phase.INCONCLUSIVE,
            "CorruptedReplicaGone",
            f"corrupted replica {name} was gone before the step ended (deleted by someone "
            "else): no evidence of what the server does with a tampered artifact",
        )
    if _ready(pod):
        return Observation(
            Phase.FAILED,
            "CorruptedReplicaReady",
            f"corrupted replica {name} turned Ready: the server accepted a tampered artifact "
            f"(copy in {scratch_dir(name)})",
        )
    terminated = _terminated(pod)
    if terminated is None or int(terminated.get("exitCode") or 0) == 0:
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        waiting = [
            (s.get("state") or {}).get("waiting", {}).get("reason")
            for s in (pod.get("status") or {}).get("containerStatuses") or []
        ]
        why = ", ".join(w for w in waiting if w) or phase
        return Observation(
            Phase.INCONCLUSIVE,
            "CorruptionNotObserved",
            f"corrupted replica {name} neither refused nor turned Ready within the step "
            f"({why}): make the step longer, or check that it can be scheduled",
        )
    message = str(terminated.get("message") or "")
    code = terminated.get("exitCode")
    match = REFUSAL.search(message)
    if match and match.group(1).startswith(scratch_dir(name) + "/"):
        bad = match.group(1).removeprefix(scratch_dir(name) + "/")
        return Observation(
            Phase.PASSED,
            "",
            f"corrupted replica {name} refused to serve (exit {code}, never Ready), naming "
            f"the bad file {bad}",
        )
    if not message:
        return Observation(
            Phase.INCONCLUSIVE,
            "CorruptionNotObserved",
            f"corrupted replica {name} exited {code} without a termination message: "
            "cannot tell whether it refused the artifact",
        )
    last = message.strip().splitlines()[-1][:300]
    return Observation(
        Phase.FAILED,
        "CorruptionNotNamed",
        f"corrupted replica {name} exited {code} without naming a corrupted file: {last}",
    )


class ModelCorruption:
    provider = "member-api"
    needs_infrastructure = False
    # The step records its duration: the replica's life is bounded by it (corrupted_pod).
    bounded_by_step = True

    def describe(self, fault_type: str) -> str:
        return (
            "one extra replica serves a copy of the artifact with one byte of its weights "
            "flipped: its server must refuse it; undo deletes the replica"
        )

    def choose(self, members: MemberRegistry, aim: Aim) -> Choice:
        where = aim.where
        apps = client.AppsV1Api(member_api(members, where.cluster))
        found = k8s.call(
            apps.read_namespaced_deployment,
            where.name,
            where.namespace,
            _request_timeout=TIMEOUT,
            absent=None,
        )
        if found is None:
            raise Refusal(
                "NoTargets",
                f"no Deployment {where.namespace}/{where.name} in {where.cluster} to copy",
            )
        # A name of its own (not drawn from the seed: a rerun must not meet a leftover).
        pod = f"{where.name}-corrupted-{secrets.token_hex(3)}"[:253]
        parameters = FaultParameters(namespace=where.namespace, model=where.name)
        return Choice((pod,), parameters.record(), aim.seed)

    def inject(self, members: MemberRegistry, record: FaultRecord) -> None:
        api = member_api(members, record.cluster)
        parameters = FaultParameters.of(record)
        namespace, model = parameters.member_namespace, parameters.model
        if model is None:
            raise KeyError("model")
        deployment = client.AppsV1Api(api).read_namespaced_deployment(
            model, namespace, _request_timeout=TIMEOUT
        )
        body = corrupted_pod(
            api.sanitize_for_serialization(deployment),
            record.targets[0],
            record.id,
            model,
            parameters.hold_seconds,
        )
        # Made already by an earlier attempt of this record: fine.
        k8s.call(
            client.CoreV1Api(api).create_namespaced_pod,
            namespace,
            body,
            _request_timeout=TIMEOUT,
            conflict=k8s.DONE,
        )

    def observe(self, members: MemberRegistry, record: FaultRecord) -> Observation:
        core = client.CoreV1Api(member_api(members, record.cluster))
        pod = k8s.call(
            core.read_namespaced_pod,
            record.targets[0],
            FaultParameters.of(record).member_namespace,
            _request_timeout=TIMEOUT,
            absent=None,
        )
        raw = None if pod is None else core.api_client.sanitize_for_serialization(pod)
        return assess_replica(raw, record.targets[0])

    def undo(self, members: MemberRegistry, record: FaultRecord) -> None:
        core = client.CoreV1Api(member_api(members, record.cluster))
        name, namespace = record.targets[0], FaultParameters.of(record).member_namespace
        pod = k8s.call(
            core.read_namespaced_pod, name, namespace, _request_timeout=TIMEOUT, absent=None
        )
        if pod is None or (pod.metadata.labels or {}).get(FAULT_LABEL) != record.id:
            return  # gone, or not this fault's replica: never delete a pod it did not make
        k8s.call(
            core.delete_namespaced_pod,
            name,
            namespace,
            grace_period_seconds=DELETE_GRACE_S,
            _request_timeout=TIMEOUT,
            absent=k8s.DONE,
        )
        # Undone means gone: the journal retries an undo that raises.
        deadline = time.monotonic() + GONE_TIMEOUT_S
        while time.monotonic() < deadline:
            found = k8s.call(
                core.read_namespaced_pod,
                name,
                namespace,
                _request_timeout=TIMEOUT,
                absent=None,
            )
            if found is None:
                return
            time.sleep(0.5)
        raise Refusal("UndoFailed", f"corrupted replica {name} still exists after deletion")
