"""A verified rollout of a new model version (`spec.rollout`): the state machine. Pure.

When `spec.model` changes on a ModelDeployment with `spec.rollout`, the new version goes to
the standby first; the primary keeps serving the version it serves (`status.rollout.from`).
Once every ready standby replica serves the new digest, the standby is evaluated (golden set
against the version serving now, thresholds, and `spec.rollout.drillPlan` when set:
operator/rollouts.py); satisfied, the primary gets the new version too (`Promoting`, then
`Promoted` once it serves it); not satisfied, the standby goes back to the previous version
and the rollout ends `RolledBack` with its evidence, the primary never touched. A version
rolled back is not tried again until `spec.model` changes again.

Phases (status.rollout.phase): `Verifying`, `Promoting`, `Promoted`, `RolledBack`. The
first model a ModelDeployment serves is recorded `Promoted` at once (nothing to verify it
against). By hand (annotation `modeldr.io/rollout`, what `modeldr rollout promote|abort`
sets): `promote` skips the rest of the verification, `abort` rolls back (while Verifying or
Promoting).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from modeldr.api.modeldeployment import ModelDeploymentSpec, ModelSpec
from modeldr.kube.constants import Role
from modeldr.kube.times import iso

ROLLOUT_ANNOTATION: Final = "modeldr.io/rollout"
VERIFYING: Final = "Verifying"
PROMOTING: Final = "Promoting"
PROMOTED: Final = "Promoted"
ROLLED_BACK: Final = "RolledBack"
IN_PROGRESS: Final = (VERIFYING, PROMOTING)
Request = Literal["promote", "abort"]


def model_dict(model: ModelSpec) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def same_model(a: dict[str, Any] | None, b: ModelSpec) -> bool:
    return a is not None and a == model_dict(b)


@dataclass
class RolloutStep:
    """This tick's rollout: the status to write, the model each role runs, and what to
    post (Events) and do (start verifying, clear the request)."""

    status: dict[str, Any] | None
    models: dict[Role, ModelSpec]
    events: list[tuple[str, str, str]] = field(default_factory=list)
    verify: bool = False  # the standby serves the new version: evaluate it now
    clear_request: bool = False


def models_for(spec: ModelDeploymentSpec, status: dict[str, Any] | None) -> dict[Role, ModelSpec]:
    """The model each role runs for a rollout status (spec.model where none is pinned)."""
    if status is None:
        return {"primary": spec.model, "standby": spec.model}
    old = ModelSpec.model_validate(status["from"]) if status.get("from") else spec.model
    new = ModelSpec.model_validate(status["to"]) if status.get("to") else spec.model
    phase = status.get("phase")
    if phase == VERIFYING:
        return {"primary": old, "standby": new}
    if phase in (PROMOTING, PROMOTED):
        return {"primary": new, "standby": new}
    return {"primary": old, "standby": old}  # RolledBack: the previous version everywhere


def step(
    spec: ModelDeploymentSpec,
    current: dict[str, Any] | None,
    served: dict[Role, str | None],
    request: Request | None,
    now: datetime,
) -> RolloutStep:
    """Advance by one tick. `served`: the digest every ready replica of each role serves
    (None: not all of them yet, or none ready); `request`: the annotation's."""
    if spec.rollout is None:
        return RolloutStep(None, models_for(spec, None))
    if current is None:
        recorded = {"phase": PROMOTED, "to": model_dict(spec.model), "finishedTime": iso(now)}
        return RolloutStep(recorded, models_for(spec, recorded))
    phase = current.get("phase")
    if phase in (PROMOTED, ROLLED_BACK):
        return _idle(spec, current, now)
    if not same_model(current.get("to"), spec.model):  # changed again mid-way: restart
        restarted = _begin(spec, current["from"], now)
        event = ("Normal", "RolloutRestarted", f"spec.model changed again: {describe(spec.model)}")
        return RolloutStep(restarted, models_for(spec, restarted), [event], clear_request=True)
    if request == "abort":
        return rolled_back(spec, current, "aborted by hand (modeldr.io/rollout: abort)", now)
    if phase == VERIFYING:
        if request == "promote":
            return promote(spec, current, "promoted by hand (modeldr.io/rollout: promote)")
        new_digest = current["to"].get("expectedDigest")
        ready = served.get("standby") == new_digest
        waiting = dict(current, message=_waiting_message(ready, new_digest))
        return RolloutStep(waiting, models_for(spec, waiting), verify=ready)
    # Promoting: done once the primary serves the new version everywhere.
    if served.get("primary") == current["to"].get("expectedDigest"):
        why = str(current.get("message") or "")
        done = dict(current, phase=PROMOTED, finishedTime=iso(now), message=f"promoted; {why}")
        event = ("Normal", "RolloutPromoted", f"{describe(spec.model)} serves in both clusters")
        return RolloutStep(done, models_for(spec, done), [event], clear_request=True)
    return RolloutStep(current, models_for(spec, current), clear_request=request is not None)


def _idle(spec: ModelDeploymentSpec, current: dict[str, Any], now: datetime) -> RolloutStep:
    """Promoted or RolledBack: a new spec.model begins a rollout; the version rolled back is
    not tried again until spec.model changes; going back to the serving one ends it."""
    phase = current.get("phase")
    serving = current["to"] if phase == PROMOTED else current.get("from") or current["to"]
    if same_model(serving, spec.model):
        if phase == ROLLED_BACK:  # spec.model reverted to the version serving: nothing to do
            back = {"phase": PROMOTED, "to": serving, "finishedTime": iso(now)}
            return RolloutStep(back, models_for(spec, back), clear_request=True)
        return RolloutStep(current, models_for(spec, current), clear_request=True)
    if phase == ROLLED_BACK and same_model(current.get("to"), spec.model):
        return RolloutStep(current, models_for(spec, current), clear_request=True)
    begun = _begin(spec, serving, now)
    event = (
        "Normal",
        "RolloutStarted",
        f"{describe(spec.model)} goes to the standby first, evaluated there before the primary",
    )
    return RolloutStep(begun, models_for(spec, begun), [event], clear_request=True)


def _begin(spec: ModelDeploymentSpec, serving: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "phase": VERIFYING,
        "from": serving,
        "to": model_dict(spec.model),
        "startedTime": iso(now),
        "finishedTime": None,
        "evaluation": None,
        "drillRun": None,
        "message": "the standby starts the new version",
    }


def promote(spec: ModelDeploymentSpec, current: dict[str, Any], why: str) -> RolloutStep:
    promoting = dict(current, phase=PROMOTING, message=why)
    event = ("Normal", "RolloutPromoting", f"{describe(spec.model)}: {why}")
    return RolloutStep(promoting, models_for(spec, promoting), [event], clear_request=True)


def rolled_back(
    spec: ModelDeploymentSpec, current: dict[str, Any], why: str, now: datetime
) -> RolloutStep:
    back = dict(current, phase=ROLLED_BACK, finishedTime=iso(now), message=why[:1024])
    event = ("Warning", "RolloutRolledBack", f"{describe(spec.model)} rolled back: {why}")
    return RolloutStep(back, models_for(spec, back), [event], clear_request=True)


def _waiting_message(ready: bool, digest: str | None) -> str:
    if ready:
        return "the standby serves the new version: evaluating it"
    return f"waiting for every ready standby replica to serve {digest}"


def describe(model: ModelSpec) -> str:
    revision = f" revision {model.revision}" if model.revision else ""
    return f"model {model.name}{revision} ({model.expected_digest[:19]}…)"


@dataclass
class RolloutState:
    """One ModelDeployment's rollout, kept by its daemon between ticks: the status it writes
    (read from the object's status at the first tick) and the verification in flight."""

    loaded: bool = False
    status: dict[str, Any] | None = None
    task: Any = None  # asyncio.Task[Verdict] of operator/rollouts.py
    task_for: str | None = None  # the new version's digest the task verifies

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.task, self.task_for = None, None
