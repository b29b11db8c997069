"""ModelCorruption: the extra replica made from the model's pod template (labels that no
selector of the model matches, the tamper wrapper around the unchanged server command), the
wrapper itself against the real server's verification, and what the drill concludes from the
replica's status."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.api.phase import Phase
from modeldr.drills.faults.base import Observation
from modeldr.drills.faults.corruption import (
    CORRUPTED_OF_LABEL,
    FAULT_LABEL,
    assess_replica,
    corrupted_pod,
    scratch_dir,
)
from modeldr.drills.faults.tamper import corrupt_copy
from modeldr.drills.probe_stats import StepAssessment
from modeldr.drills.steps import joined
from modeldr.operator import render
from tests.specs import minimal_spec_dict

FIXTURE = Path(__file__).parents[1] / "fixtures" / "models" / "tiny-review-bert"
DIGEST = "sha256:7dddd2ad3ab141aaa06601673671f5a88ddc1851dbc07f453e84cf0df8e69a8b"
POD = "bert-corrupted-a1b2c3"


def rendered() -> tuple[ModelDeploymentSpec, dict[str, Any]]:
    spec = ModelDeploymentSpec.parse(minimal_spec_dict(name="bert"))
    annotations = {"modeldr.io/pod-template-annotations": '{"sandbox.modeldr.io/run": "process"}'}
    return spec, render.deployment("bert", "ml", spec, "primary", 2, annotations)


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_the_replica_is_the_pod_template_that_no_selector_of_the_model_matches() -> None:
    spec, deployment = rendered()
    pod = corrupted_pod(deployment, POD, "f-123", "bert")
    labels = pod["metadata"]["labels"]
    service = render.service("bert", "ml", spec, "primary")
    pdb = render.pod_disruption_budget("bert", "ml", spec, "primary")
    # No traffic (Service), no adoption by the ReplicaSet, not counted by the PDB.
    assert not matches(service["spec"]["selector"], labels)
    assert not matches(deployment["spec"]["selector"]["matchLabels"], labels)
    assert not matches(pdb["spec"]["selector"]["matchLabels"], labels)
    assert labels[FAULT_LABEL] == "f-123" and labels[CORRUPTED_OF_LABEL] == "bert"
    annotations = pod["metadata"]["annotations"]
    assert annotations["sandbox.modeldr.io/run"] == "process"
    assert not any(k.startswith("prometheus.io/") for k in annotations)
    template = deployment["spec"]["template"]["spec"]["containers"][0]
    container = pod["spec"]["containers"][0]
    # The same image, env, resources and readiness probe; the server command wrapped.
    for key in ("image", "env", "resources", "readinessProbe", "volumeMounts", "ports"):
        assert container[key] == template[key], key
    model_dir = render.model_volume(spec)[2]
    assert container["command"] == [
        "python3",
        "-m",
        "modeldr.drills.faults.tamper",
        "--source",
        model_dir,
        "--copy",
        scratch_dir(POD),
        "--",
        "modeldr-serve",
        "run",
    ]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert "livenessProbe" not in container
    assert pod["spec"]["restartPolicy"] == "Never"
    scratch = [v for v in pod["spec"]["volumes"] if "emptyDir" in v]
    assert scratch == [{"name": "tmp", "emptyDir": {}}]  # room for the model's copy
    assert pod["spec"]["tolerations"] == deployment["spec"]["template"]["spec"]["tolerations"]
    # The Deployment it was made from is untouched.
    assert template["command"] == ["modeldr-serve", "run"]


def test_the_wrapper_flips_a_weights_byte_and_the_real_server_refuses_naming_it(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "copy"
    env = {
        **os.environ,
        "MODELDR_SERVE_MODEL_NAME": "tiny",
        "MODELDR_SERVE_EXPECTED_DIGEST": DIGEST,
        "MODELDR_SERVE_MODEL_DIR": str(FIXTURE),  # the wrapper points it at the copy
    }
    serve = shutil.which("modeldr-serve") or str(Path(sys.executable).parent / "modeldr-serve")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "modeldr.drills.faults.tamper",
            "--source",
            str(FIXTURE),
            "--copy",
            str(copy),
            "--",
            serve,
            "run",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr  # the server's "artifact refused" exit
    assert f"sha256 mismatch for {copy}/model.safetensors" in done.stderr
    assert not copy.exists()  # removed when the server exited
    # The drill's reading of that refusal, as the pod's status carries it.
    pod: dict[str, Any] = {
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {"ready": False, "state": {"terminated": {"exitCode": 3, "message": done.stderr}}}
            ],
        }
    }
    seen = assess_replica(pod, "p")
    # The copy's path is the pod's scratch dir in a real pod; here the test's own.
    assert seen.phase is Phase.FAILED and seen.reason == "CorruptionNotNamed"
    pod_message = done.stderr.replace(str(copy), scratch_dir("p"))
    pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = pod_message
    seen = assess_replica(pod, "p")
    assert seen.phase is Phase.PASSED
    assert "refused to serve (exit 3, never Ready)" in seen.message
    assert "bad file model.safetensors" in seen.message


def test_corrupt_copy_keeps_the_size_and_changes_one_byte(tmp_path: Path) -> None:
    copy = tmp_path / "c"
    target = corrupt_copy(FIXTURE, copy, "vocab.txt")
    original = (FIXTURE / "vocab.txt").read_bytes()
    changed = target.read_bytes()
    assert len(changed) == len(original)
    assert sum(a != b for a, b in zip(original, changed, strict=True)) == 1
    assert (copy / "model.safetensors").read_bytes() == (FIXTURE / "model.safetensors").read_bytes()


def status(**container: Any) -> dict[str, Any]:
    return {"status": {"phase": "Running", "containerStatuses": [container]}}


def test_a_ready_replica_fails_the_step_the_server_accepted_a_tampered_artifact() -> None:
    seen = assess_replica(status(ready=True, state={"running": {}}), POD)
    assert seen.phase is Phase.FAILED and seen.reason == "CorruptedReplicaReady"
    assert "accepted a tampered artifact" in seen.message
    # Ready on the pod's condition is as good as on the container.
    pod = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert assess_replica(pod, POD).phase is Phase.FAILED


def test_no_refusal_yet_or_no_replica_is_no_evidence() -> None:
    pending = {
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {"ready": False, "state": {"waiting": {"reason": "Unschedulable"}}}
            ],
        }
    }
    seen = assess_replica(pending, POD)
    assert seen.phase is Phase.INCONCLUSIVE and "Unschedulable" in seen.message
    assert assess_replica(status(ready=False, state={"running": {}}), POD).phase is (
        Phase.INCONCLUSIVE
    )
    assert assess_replica(None, POD).reason == "CorruptedReplicaGone"
    silent = status(ready=False, state={"terminated": {"exitCode": 3}})
    assert assess_replica(silent, POD).reason == "CorruptionNotObserved"


def test_a_refusal_found_in_last_state_names_the_file() -> None:
    message = (
        f"modeldr-serve: refusing to start: size mismatch for {scratch_dir(POD)}/config.json: x"
    )
    pod = status(
        ready=False,
        state={"waiting": {"reason": "CrashLoopBackOff"}},
        lastState={"terminated": {"exitCode": 3, "message": message}},
    )
    seen = assess_replica(pod, POD)
    assert seen.phase is Phase.PASSED and "bad file config.json" in seen.message


def test_the_observation_joins_the_steps_assessment_the_worse_wins() -> None:
    passed = StepAssessment(Phase.PASSED, "", "error ratio 0 <= max 0")
    refused = Observation(Phase.PASSED, "", "refused")
    ready = Observation(Phase.FAILED, "CorruptedReplicaReady", "turned Ready")
    assert joined(passed, refused) == StepAssessment(
        Phase.PASSED, "", "error ratio 0 <= max 0; refused"
    )
    assert joined(passed, ready).phase is Phase.FAILED
    assert joined(passed, ready).reason == "CorruptedReplicaReady"
    failed = StepAssessment(Phase.FAILED, "ExpectationFailed", "error ratio 0.5 > max 0")
    assert joined(failed, refused).reason == "ExpectationFailed"


def test_the_replica_ends_by_itself_after_its_step_and_a_margin() -> None:
    """activeDeadlineSeconds: the kubelet (the sandbox's runtime too) ends the replica with
    no operator left to delete it."""
    from modeldr.drills.faults.corruption import LIFETIME_MARGIN_S

    _, deployment = rendered()
    bounded = corrupted_pod(deployment, POD, "f-123", "bert", hold_seconds=30)
    assert bounded["spec"]["activeDeadlineSeconds"] == 30 + LIFETIME_MARGIN_S
    assert "activeDeadlineSeconds" not in corrupted_pod(deployment, POD, "f-123", "bert")["spec"]
