"""The CLI's follow loop (modeldr.client.follow) against a scripted hub: Ctrl-C aborts the run
and waits until its faults are undone, a second Ctrl-C stops waiting, a timeout aborts, a
run no operator picks up is given up on, a hub that stays away is a connection error."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from rich.console import Console

from modeldr.client import follow
from modeldr.client.follow import Follower, Stop
from modeldr.client.hub import HubUnavailable


def run(phase: str, faults: list[str] | None = None, started: bool = True) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if started:
        status["startedAt"] = "2026-12-01T10:00:00Z"
    status["faults"] = [
        {"id": f"f-{i}", "step": "s", "type": "NodeDrain", "cluster": "standby", "state": state}
        for i, state in enumerate(faults or [])
    ]
    return {"metadata": {"name": "r"}, "spec": {"planRef": {"name": "p"}}, "status": status}


class Hub:
    """Serves the scripted states one read at a time (the last one forever); what happens
    after an abort is scripted separately."""

    def __init__(self, states: list[Any], after_abort: list[Any] | None = None) -> None:
        self.states = states
        self.after_abort = after_abort
        self.aborted = 0
        self.reads = 0

    def get_run(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        states = self.after_abort if self.aborted and self.after_abort else self.states
        state = states.pop(0) if len(states) > 1 else states[0]
        if isinstance(state, Exception):
            raise state
        return dict(state)

    def get_modeldeployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return {"status": {"activeCluster": "primary"}}

    def abort_run(self, namespace: str, name: str) -> None:
        self.aborted += 1


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow, "POLL_S", 0.001)
    monkeypatch.setattr(follow, "PENDING_PATIENCE_S", 0.05)
    monkeypatch.setattr(follow, "HUB_PATIENCE_S", 0.05)


def follower(hub: Hub) -> tuple[Follower, Console]:
    console = Console(record=True, width=200)
    return Follower(hub, "ns", console, live=False), console  # type: ignore[arg-type]


def test_a_run_is_followed_to_its_verdict() -> None:
    hub = Hub(
        [run("Pending", started=False), run("Running", ["Applied"]), run("Passed", ["Undone"])]
    )
    f, console = follower(hub)
    result = f.follow("r", "md", Stop(), None)
    assert result.run["status"]["phase"] == "Passed" and result.settled
    assert not (result.interrupted or result.timed_out) and hub.aborted == 0
    text = console.export_text()
    assert "run r: Running" in text and "fault f-0 undone" in text


def test_ctrl_c_aborts_and_waits_until_every_fault_is_undone() -> None:
    stop = Stop()
    stop.handle(signal.SIGINT, None)
    in_force = run("Running", ["Applied"])
    hub = Hub([in_force], after_abort=[in_force, in_force, run("Aborted", ["Undone"])])
    f, console = follower(hub)
    result = f.follow("r", "md", stop, None)
    assert hub.aborted == 1 and result.interrupted and result.settled
    assert result.run["status"]["phase"] == "Aborted"
    assert "interrupted: aborting DrillRun r" in console.export_text()


def test_a_final_phase_with_a_fault_still_in_force_is_waited_for_after_an_abort() -> None:
    stop = Stop()
    stop.handle(signal.SIGTERM, None)
    hub = Hub(
        [run("Running", ["Applied"])],
        after_abort=[run("Aborted", ["Applied"]), run("Aborted", ["Undone"])],
    )
    result = follower(hub)[0].follow("r", "md", stop, None)
    assert result.settled and result.run["status"]["faults"][0]["state"] == "Undone"


def test_a_second_ctrl_c_stops_waiting() -> None:
    stop = Stop()
    stop.handle(signal.SIGINT, None)
    stop.handle(signal.SIGINT, None)
    hub = Hub([run("Running", ["Applied"])])
    result = follower(hub)[0].follow("r", "md", stop, None)
    assert stop.hard and result.interrupted and not result.settled


def test_a_timeout_aborts_the_run() -> None:
    hub = Hub([run("Running", ["Applied"])], after_abort=[run("Aborted", ["Undone"])])
    result = follower(hub)[0].follow("r", "md", Stop(), 0.02)
    assert result.timed_out and not result.interrupted and hub.aborted == 1 and result.settled


def test_a_run_no_operator_picks_up_is_given_up_on() -> None:
    hub = Hub([run("Pending", started=False)])
    f, console = follower(hub)
    result = f.follow("r", "md", Stop(), None)
    assert result.timed_out and hub.aborted == 1
    assert "is the modeldr operator running?" in console.export_text()


def test_a_hub_that_stays_away_is_a_connection_error() -> None:
    hub = Hub([run("Running"), HubUnavailable("the hub cannot be reached")])
    with pytest.raises(HubUnavailable):
        follower(hub)[0].follow("r", "md", Stop(), None)


@pytest.mark.parametrize(
    ("states", "settled"),
    [
        (["Undone", "Abandoned", "Forged"], True),  # a forged entry was never in force
        (["Undone", "Applied"], False),
        (["Recorded"], False),
        ([], True),
    ],
)
def test_settled_means_no_fault_in_force(states: list[str], settled: bool) -> None:
    run = {"status": {"faults": [{"id": f"f-{i}", "state": s} for i, s in enumerate(states)]}}
    assert follow.faults_settled(run) is settled
