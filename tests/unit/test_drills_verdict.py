"""A run's verdict: precedence, reason and message from its parts, and the parts read from the
run's status (pure)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from modeldr.api.drillstatus import (
    AbortConditionStatus,
    DrillRunStatus,
    FaultRecord,
    GateStatus,
    InterruptStatus,
    ModelCheckStatus,
    SteadyStateStatus,
    StepStatus,
    WindowStatus,
)
from modeldr.api.phase import Phase
from modeldr.drills.verdict import (
    Part,
    PartKind,
    cut_short,
    not_undone,
    parts_of,
    run_verdict,
    verdict_message,
    verdict_of,
)


def step(name: str, phase: Phase, reason: str = "ExpectationsMet", message: str = "ok") -> Part:
    return Part(PartKind.STEP, name, phase, reason, message)


PASSED_RUN = [
    Part(PartKind.STEADY_STATE, "before", Phase.PASSED, "SteadyStateMet", "error ratio 0"),
    step("kill-a-pod", Phase.PASSED),
    step("primary-outage", Phase.PASSED),
    Part(PartKind.GATE, "standby-answers", Phase.PASSED, "GatePassed", "4 measurements"),
    Part(PartKind.MODEL_CHECK, "standby", Phase.PASSED, "ModelMatches", "agreement 1"),
]


def test_every_part_passed_is_passed() -> None:
    verdict = run_verdict(PASSED_RUN)
    assert (verdict.phase, verdict.reason, verdict.exit_code) == (Phase.PASSED, "AllPassed", 0)
    assert verdict.message == ("every part passed: 1 steady state, 2 steps, 1 gate, 1 model check")


def test_a_failed_step_fails_the_run_with_its_reason_and_figures() -> None:
    failed = step("primary-outage", Phase.FAILED, "ExpectationFailed", "RTO 14.2 s > max 10 s")
    verdict = run_verdict([*PASSED_RUN, failed])
    assert (verdict.phase, verdict.reason, verdict.exit_code) == (
        Phase.FAILED,
        "ExpectationFailed",
        1,
    )
    assert verdict.message == "step primary-outage: RTO 14.2 s > max 10 s"


def test_the_first_worst_part_names_the_verdict_and_the_others_are_listed() -> None:
    parts = [
        step("a", Phase.FAILED, "ExpectationFailed", "error ratio 0.5 > max 0"),
        Part(PartKind.GATE, "g", Phase.FAILED, "GateFailed", "2 of 4 failed"),
        Part(PartKind.MODEL_CHECK, "standby", Phase.FAILED, "ModelMismatch", "F1 0.3 < min 0.8"),
    ]
    verdict = run_verdict(parts)
    assert verdict.reason == "ExpectationFailed"
    assert verdict.message == (
        "step a: error ratio 0.5 > max 0; also Failed: gate g, model check standby"
    )


def test_abort_wins_over_everything() -> None:
    parts = [
        step("a", Phase.FAILED, "ExpectationFailed", "x"),
        Part(PartKind.GATE, "g", Phase.ERROR, "GateError", "y"),
        Part(PartKind.GATE, "h", Phase.INCONCLUSIVE, "MetricsMissing", "z"),
        Part(
            PartKind.ABORT_CONDITION,
            "everything-failing",
            Phase.ABORTED,
            "AbortConditionMet",
            "error ratio 1 (20 of 20 failed) over the last 10 s > max 0.9",
        ),
    ]
    verdict = run_verdict(parts)
    assert (verdict.phase, verdict.reason, verdict.exit_code) == (
        Phase.ABORTED,
        "AbortConditionMet",
        1,
    )
    assert verdict.message.startswith("abort condition everything-failing: error ratio 1")


@pytest.mark.parametrize(
    ("phases", "expected"),
    [
        ([Phase.PASSED, Phase.INCONCLUSIVE], Phase.INCONCLUSIVE),
        ([Phase.INCONCLUSIVE, Phase.ERROR], Phase.ERROR),
        ([Phase.ERROR, Phase.FAILED], Phase.FAILED),
        ([Phase.FAILED, Phase.ABORTED], Phase.ABORTED),
    ],
)
def test_precedence(phases: list[Phase], expected: Phase) -> None:
    parts = [step(f"s{i}", p, f"Reason{i}", f"m{i}") for i, p in enumerate(phases)]
    assert run_verdict(parts).phase is expected


def test_missing_evidence_keeps_the_run_from_passing() -> None:
    gate = Part(PartKind.GATE, "standby-answers", Phase.INCONCLUSIVE, "MetricsMissing", "empty")
    verdict = run_verdict([*PASSED_RUN, gate])
    assert (verdict.phase, verdict.reason, verdict.exit_code) == (
        Phase.INCONCLUSIVE,
        "MetricsMissing",
        2,
    )


def test_a_part_without_a_name_is_titled_by_its_kind() -> None:
    part = Part(PartKind.RUN, "", Phase.ABORTED, "StoppedByHand", "stopped by alice")
    assert run_verdict([part]).message == "run: stopped by alice"


def test_a_part_still_running_is_refused() -> None:
    gate = Part(PartKind.GATE, "g", Phase.RUNNING, "Measuring", "1 of 4")
    with pytest.raises(ValueError, match=r"gate g \(Running\)"):
        run_verdict([*PASSED_RUN, gate])


def test_no_parts_is_inconclusive_not_passed() -> None:
    verdict = run_verdict([])
    assert (verdict.phase, verdict.reason) == (Phase.INCONCLUSIVE, "NothingAssessed")


# ---------------------------------------------------------------- read from the run's status

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
STOPPED = "spec.abort was set: the run was stopped by hand"


def window(phase: Phase, reason: str, message: str, **fields: Any) -> WindowStatus:
    return WindowStatus(phase=phase, reason=reason, message=message, started_at=T0, **fields)


def clean_run() -> DrillRunStatus:
    """A run as the engine leaves one that passed: every part ended, nothing left in force."""
    return DrillRunStatus(
        phase=Phase.PASSED,
        reason="AllPassed",
        started_at=T0,
        steady_state=SteadyStateStatus(
            before=window(Phase.PASSED, "SteadyStateMet", "steady state before: error ratio 0"),
            after=window(Phase.PASSED, "SteadyStateMet", "steady state after: error ratio 0"),
        ),
        steps=[
            StepStatus(name="kill", phase=Phase.PASSED, reason="ExpectationsMet", message="RTO 0"),
            StepStatus(name="outage", phase=Phase.PASSED, reason="ExpectationsMet", message="ok"),
        ],
        model_checks=[
            ModelCheckStatus(name="baseline", phase=Phase.PASSED, reason="ModelMatches"),
            ModelCheckStatus(name="kill", step="kill", phase=Phase.PASSED, reason="ModelMatches"),
            ModelCheckStatus(
                name="outage", step="outage", phase=Phase.PASSED, reason="ModelMatches"
            ),
        ],
        gates=[GateStatus(name="g", phase=Phase.PASSED, reason="GatePassed", message="4 ok")],
        abort_conditions=[
            AbortConditionStatus(
                name="a", phase=Phase.PASSED, reason="NotMet", message="did not hold in 9"
            )
        ],
        faults=[fault("f-1", "Undone")],
    )


def fault(id_: str, state: str) -> FaultRecord:
    return FaultRecord.model_validate(
        {"id": id_, "step": "kill", "type": "PodKill", "cluster": "east", "state": state}
    )


def interrupted(status: DrillRunStatus, phase: Phase, reason: str, message: str) -> None:
    status.interrupt = InterruptStatus(phase=phase, reason=reason, message=message, at=T0)


def failed_gate(s: DrillRunStatus) -> None:
    s.gates[0] = GateStatus(name="g", phase=Phase.FAILED, reason="GateFailed", message="2 of 4")


def step_error(s: DrillRunStatus) -> None:
    """What the engine leaves when its first step cannot be made: the rest not run."""
    s.steps = [
        StepStatus(name="kill", phase=Phase.ERROR, reason="NoProvider", message="none for east"),
        StepStatus(name="outage", message="not run: step kill ended Error"),
    ]
    s.model_checks = s.model_checks[:1]
    assert s.steady_state is not None
    s.steady_state.after = None


def stopped_mid_step(s: DrillRunStatus) -> None:
    s.steps[1] = StepStatus(
        name="outage", phase=Phase.ABORTED, reason="StoppedByHand", message=STOPPED
    )
    s.steps[1].interrupted = True
    s.model_checks = s.model_checks[:2]
    assert s.steady_state is not None
    s.steady_state.after = None
    interrupted(s, Phase.ABORTED, "StoppedByHand", STOPPED)


def stopped_in_steady_state(s: DrillRunStatus) -> None:
    """A window the interrupt cut short repeats it: the interrupt counts once, as the run's."""
    assert s.steady_state is not None
    s.steady_state.after = window(
        Phase.ABORTED, "StoppedByHand", f"interrupted: {STOPPED}", interrupted=True
    )
    interrupted(s, Phase.ABORTED, "StoppedByHand", STOPPED)


def engine_error_mid_step(s: DrillRunStatus) -> None:
    """An engine that failed mid-step leaves the step Running: cut short by the interrupt,
    which says why."""
    s.steps[1] = StepStatus(name="outage", phase=Phase.RUNNING)
    s.model_checks = s.model_checks[:2]
    assert s.steady_state is not None
    s.steady_state.after = None
    interrupted(s, Phase.ERROR, "EngineError", "the run stopped: hub gone")


def nothing_assessed(s: DrillRunStatus) -> None:
    s.steady_state = SteadyStateStatus()
    s.steps = [StepStatus(name="kill"), StepStatus(name="outage")]
    s.model_checks, s.gates, s.abort_conditions, s.faults = [], [], [], []


def model_check_and_step_failed(s: DrillRunStatus) -> None:
    """The check after a step is met before the step's own part: it names the verdict."""
    s.model_checks[1].phase, s.model_checks[1].reason = Phase.FAILED, "ModelMismatch"
    s.model_checks[1].message = "agreement 0.5 < min 0.99"
    s.steps[0].phase, s.steps[0].reason = Phase.FAILED, "ExpectationFailed"


def unchanged(s: DrillRunStatus) -> None:
    pass


Change = Callable[[DrillRunStatus], None]
CASES: dict[str, tuple[Change, Phase, str, str]] = {
    "all-passed": (
        unchanged,
        Phase.PASSED,
        "AllPassed",
        "every part passed: 2 steady states, 2 steps, 1 gate, 3 model checks, 1 abort condition",
    ),
    "failed-gate": (failed_gate, Phase.FAILED, "GateFailed", "gate g: 2 of 4"),
    "step-error": (step_error, Phase.ERROR, "NoProvider", "step kill: none for east"),
    "stopped-mid-step": (
        stopped_mid_step,
        Phase.ABORTED,
        "StoppedByHand",
        f"step outage: {STOPPED}; also Aborted: run",
    ),
    "stopped-in-steady-state": (
        stopped_in_steady_state,
        Phase.ABORTED,
        "StoppedByHand",
        f"run: {STOPPED}",
    ),
    "engine-error-mid-step": (
        engine_error_mid_step,
        Phase.ERROR,
        "EngineError",
        "run: the run stopped: hub gone",
    ),
    "nothing-assessed": (
        nothing_assessed,
        Phase.INCONCLUSIVE,
        "NothingAssessed",
        "the run assessed nothing",
    ),
    "model-check-first": (
        model_check_and_step_failed,
        Phase.FAILED,
        "ModelMismatch",
        "model check kill: agreement 0.5 < min 0.99; also Failed: step kill",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_the_verdict_is_read_from_the_status(case: str) -> None:
    change, phase, reason, message = CASES[case]
    status = clean_run()
    change(status)
    verdict = verdict_of(status)
    assert (verdict.phase, verdict.reason, verdict.message) == (phase, reason, message)
    # A function of what the apiserver holds: the same after a round trip through JSON.
    back = DrillRunStatus.model_validate(json.loads(json.dumps(status.dump())))
    assert parts_of(back) == parts_of(status)
    assert verdict_of(back) == verdict


def test_the_parts_come_in_the_order_the_run_met_them() -> None:
    assert [(p.kind, p.name) for p in parts_of(clean_run())] == [
        (PartKind.STEADY_STATE, "before"),
        (PartKind.MODEL_CHECK, "baseline"),
        (PartKind.MODEL_CHECK, "kill"),
        (PartKind.STEP, "kill"),
        (PartKind.MODEL_CHECK, "outage"),
        (PartKind.STEP, "outage"),
        (PartKind.STEADY_STATE, "after"),
        (PartKind.GATE, "g"),
        (PartKind.ABORT_CONDITION, "a"),
    ]


def test_an_unfinished_part_of_a_run_not_interrupted_is_refused_not_passed() -> None:
    status = clean_run()
    status.gates[0] = GateStatus(name="g", phase=Phase.RUNNING, reason="Measuring")
    with pytest.raises(ValueError, match=r"gate g \(Running\)"):
        verdict_of(status)
    status = clean_run()
    status.steps[1].phase = Phase.RUNNING
    with pytest.raises(ValueError, match=r"step outage \(Running\)"):
        verdict_of(status)


def test_the_message_names_faults_left_in_force_whatever_else_happened() -> None:
    status = clean_run()
    status.faults = [fault("f-1", "Undone"), fault("f-2", "Applied"), fault("f-3", "Recorded")]
    assert not_undone(status) == "PodKill f-3 in east, PodKill f-2 in east"
    failed_gate(status)
    assert verdict_message(verdict_of(status), status) == (
        "gate g: 2 of 4; faults not undone: PodKill f-3 in east, PodKill f-2 in east"
    )
    # Named once: an UndoFailed interrupt says it already.
    interrupted(status, Phase.ERROR, "UndoFailed", f"faults not undone: {not_undone(status)}")
    status.gates[0].phase = Phase.PASSED
    verdict = verdict_of(status)
    assert verdict_message(verdict, status) == verdict.message
    assert verdict.message == "run: faults not undone: PodKill f-3 in east, PodKill f-2 in east"


def test_a_rollback_ends_a_status_written_mid_step_aborted() -> None:
    """What a new leader finds (the last status the engine wrote, camelCase from the
    apiserver) and the verdict once cut_short ended it."""
    written = {
        "phase": "Running",
        "steadyState": {
            "before": {"phase": "Passed", "reason": "SteadyStateMet", "message": "ok"},
        },
        "steps": [
            {"name": "kill", "phase": "Running", "startedAt": "2026-12-01T10:00:05Z"},
            {"name": "outage", "phase": "Pending"},
        ],
        "modelChecks": [{"name": "baseline", "phase": "Passed", "reason": "ModelMatches"}],
        "gates": [{"name": "g", "phase": "Running", "reason": "Measuring"}],
        "abortConditions": [{"name": "a", "phase": "Running", "evaluations": 3}],
        "faults": [{"id": "f-1", "step": "kill", "type": "PodKill", "cluster": "east"}],
    }
    status = DrillRunStatus.parse(written)
    why = "the operator restarted mid-run and rolled the run back"
    cut_short(status, Phase.ABORTED, "OperatorRestarted", why)
    kill = status.steps[0]
    assert (kill.phase, kill.reason, kill.interrupted, kill.message) == (
        Phase.ABORTED,
        "OperatorRestarted",
        True,
        why,
    )
    assert status.steps[1].phase is Phase.PENDING and kill.finished_at is not None
    verdict = verdict_of(status)
    assert (verdict.phase, verdict.reason) == (Phase.ABORTED, "OperatorRestarted")
    assert verdict.message == f"step kill: {why}; also Aborted: run"
    # The first reason wins: a second cut leaves the recorded interrupt alone.
    cut_short(status, Phase.ERROR, "Later", "later")
    assert status.interrupt is not None and status.interrupt.reason == "OperatorRestarted"
    assert verdict_of(DrillRunStatus.parse(status.dump())) == verdict


def test_a_rollback_in_the_steady_state_after_counts_the_interrupt_once() -> None:
    status = clean_run()
    status.phase = Phase.RUNNING
    assert status.steady_state is not None
    status.steady_state.after = WindowStatus(phase=Phase.RUNNING, started_at=T0)
    status.gates[0] = GateStatus(name="g", phase=Phase.RUNNING, reason="Measuring")
    status.abort_conditions[0].phase = Phase.RUNNING
    with pytest.raises(ValueError, match="not every part ended"):
        verdict_of(status)  # a run in flight has no verdict yet
    cut_short(status, Phase.ABORTED, "OperatorRestarted", "restarted")
    after = status.steady_state.after
    assert (after.phase, after.interrupted, after.message) == (
        Phase.ABORTED,
        True,
        "interrupted: restarted",
    )
    verdict = verdict_of(status)
    assert (verdict.phase, verdict.reason, verdict.message) == (
        Phase.ABORTED,
        "OperatorRestarted",
        "run: restarted",
    )
