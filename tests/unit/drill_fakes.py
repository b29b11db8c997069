"""Small real-ish stand-ins for what the drill engine talks to, for unit tests without a
cluster: a RunState whose write() keeps every status it would have sent, a member registry
of plain members, a fault driver that records what it was asked (and checks the journal was
written before it acts), a probe that answers from a switchable "broken" flag, and a Drill
built from them with a real Target (tests/specs.py) and a real Journal."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

from kubernetes import client

from modeldr.api.drillplan import DrillPlanSpec, PrometheusQuery
from modeldr.api.drillstatus import DrillRunStatus, FaultRecord
from modeldr.api.modeldeployment import ModelDeploymentSpec
from modeldr.drills.consent import Guard
from modeldr.drills.engine import Drill, Interrupt
from modeldr.drills.faults.base import Aim, Choice
from modeldr.drills.journal import Journal
from modeldr.drills.probe import TrafficProbe
from modeldr.drills.probe_stats import ProbeSample
from modeldr.drills.refusal import Refusal
from modeldr.drills.runstate import RunRef, RunState, StatusWriteError, status_body
from modeldr.drills.target import Target
from modeldr.kube.constants import DRILLS_ENABLED, DRILLS_LABEL
from modeldr.kube.errors import MemberError
from modeldr.kube.members import MemberRegistry
from modeldr.kube.promql import QueryOutcome, QueryValues
from modeldr.kube.seal import JournalSeal
from modeldr.operator.runtime import Runtime
from tests.specs import minimal_spec


def nowhere() -> client.ApiClient:
    """An API client pointing at a closed loopback port: any real call fails fast."""
    return client.ApiClient(client.Configuration(host="http://127.0.0.1:9"))


# The journal's seal in unit tests (the operator's key is a Secret in its namespace).
TEST_SEAL = JournalSeal(b"modeldr unit tests, never a real key")


def sealed(record: FaultRecord, run_uid: str = "uid-1") -> FaultRecord:
    """The record as the operator's journal writes it for run `run_uid` (RecordingState's)."""
    record.signature = TEST_SEAL.seal(run_uid, record)
    return record


class RecordingState(RunState):
    """A RunState whose write() keeps a copy of each status body instead of sending it;
    `fail_writes` makes the next writes raise StatusWriteError (a hub that refuses)."""

    def __init__(self, status: DrillRunStatus | None = None) -> None:
        super().__init__(nowhere(), RunRef("ns", "run-1", "uid-1"), status or DrillRunStatus())
        self.writes: list[dict[str, Any]] = []
        self.fail_writes = 0
        # Refuse the first write whose body this says yes to (then it is cleared).
        self.refuse_once: Callable[[dict[str, Any]], bool] | None = None
        self.refused = 0

    async def write(self) -> None:
        body = copy.deepcopy(status_body(self.status))
        refuse = self.refuse_once is not None and self.refuse_once(body)
        if refuse:
            self.refuse_once = None
        if self.fail_writes or refuse:
            self.fail_writes = max(0, self.fail_writes - 1)
            self.refused += 1
            raise StatusWriteError("the hub did not take the status (test)")
        self.writes.append(body)

    def fault_in_last_write(self, fault_id: str) -> dict[str, Any] | None:
        if not self.writes:
            return None
        for fault in self.writes[-1].get("faults", []):
            if fault["id"] == fault_id:
                return cast(dict[str, Any], fault)
        return None


@dataclass
class FakeMember:
    name: str
    api: client.ApiClient = field(default_factory=nowhere)
    prometheus_url: str | None = None
    infrastructure_url: str | None = None
    infrastructure_token: str | None = "test-token"  # what the fake providers accept


class FakeMembers:
    """MemberRegistry's get(): the named member, or MemberError like the real one."""

    def __init__(self, *members: FakeMember) -> None:
        self.members = {m.name: m for m in members}

    def get(self, cluster: str) -> FakeMember:
        if cluster not in self.members:
            raise MemberError(cluster, "no Secret labelled for it (test)")
        return self.members[cluster]

    def registry(self) -> MemberRegistry:
        return cast(MemberRegistry, self)


class FakeDriver:
    """A FaultDriver that records its calls. inject() notes what the last status write said
    about its record (the journal must be written before the fault is applied), and can be
    told to fail; undo() fails `undo_failures` times (or always)."""

    provider = "fake-provider"
    needs_infrastructure = False

    def describe(self, fault_type: str) -> str:
        return "a fake fault that records its calls"

    def __init__(self, state: RecordingState, name: str = "fake") -> None:
        self.state = state
        self.name = name
        self.calls: list[tuple[str, str]] = []
        self.journal_at_inject: list[dict[str, Any] | None] = []
        self.inject_error: Exception | None = None
        self.undo_failures = 0
        self.undo_always_fails = False
        self.targets: tuple[str, ...] = ("pod-a",)
        # A node-level fault's node (Choice parameters "node"); None: a pod-level fault.
        self.node: str | None = None
        self.on_inject: Callable[[], None] | None = None
        self.on_undo: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def choose(self, members: MemberRegistry, aim: Aim) -> Choice:
        with self._lock:
            self.calls.append(("plan", aim.where.cluster))
        parameters = {"namespace": aim.where.namespace}
        if self.node is not None:
            parameters["node"] = self.node
        return Choice(self.targets, parameters, aim.seed)

    def inject(self, members: MemberRegistry, record: FaultRecord) -> None:
        with self._lock:
            self.calls.append(("inject", record.id))
            self.journal_at_inject.append(self.state.fault_in_last_write(record.id))
        if self.inject_error is not None:
            raise self.inject_error
        if self.on_inject is not None:
            self.on_inject()

    def undo(self, members: MemberRegistry, record: FaultRecord) -> None:
        with self._lock:
            self.calls.append(("undo", record.id))
            fail = self.undo_always_fails or self.undo_failures > 0
            if self.undo_failures > 0:
                self.undo_failures -= 1
        if fail:
            raise RuntimeError(f"{self.name}: member unreachable (test)")
        if self.on_undo is not None:
            self.on_undo()

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls]


class FakeProbe:
    """The probe as the engine sees it: samples() answers a request every 10 ms over the
    last `history_s` seconds of the real monotonic clock, failed while `broken` is set (as a
    fault would make them) and answered by `cluster` otherwise."""

    def __init__(self, cluster: str = "primary", history_s: float = 30.0) -> None:
        self.cluster = cluster
        self.history_s = history_s
        self.broken = False
        self.broken_since: float | None = None
        # Every other request fails (a target that serves, badly).
        self.flaky = False
        # Requests sent from then on answer again (those before keep their failure).
        self.broken_until: float | None = None
        self.started = False
        self.stopped = False

    def start(self) -> FakeProbe:
        self.started = True
        return self

    def stop(self, wait_s: float | None = None) -> bool:
        self.stopped = True
        return True

    def break_(self) -> None:
        self.broken, self.broken_since = True, time.monotonic()

    def heal(self) -> None:
        self.broken, self.broken_since = False, None

    def answer_from_now(self) -> None:
        """The target starts answering: what failed before stays failed in the record."""
        self.broken, self.broken_until = False, time.monotonic()

    def samples(self, since: float | None = None) -> list[ProbeSample]:
        now = time.monotonic()
        out = []
        for k in range(int(self.history_s * 100), -1, -1):
            at = now - k * 0.01
            if since is not None and at < since:
                continue
            bad = self.broken_since is not None and at >= self.broken_since
            bad = bad and (self.broken_until is None or at < self.broken_until)
            bad = bad or (self.flaky and k % 2 == 0)
            out.append(
                ProbeSample(
                    at,
                    0.001,
                    ok=not bad,
                    cluster=None if bad else self.cluster,
                    error="refused" if bad else None,
                )
            )
        return out


class QuickInterrupt(Interrupt):
    """The real Interrupt with every hold scaled down (a 1 s step holds `scale` s); the
    seconds asked for are kept."""

    def __init__(self, scale: float = 0.02) -> None:
        super().__init__()
        self.scale = scale
        self.asked: list[float] = []

    async def hold(self, seconds: float) -> bool:
        self.asked.append(seconds)
        return await super().hold(seconds * self.scale)


def serving_status(ready: bool = True) -> dict[str, Any]:
    """A ModelDeployment status as the operator writes it: Ready, or its servers loading."""
    condition = (
        {"type": "Ready", "status": "True", "reason": "Serving", "message": "primary: ok"}
        if ready
        else {
            "type": "Ready",
            "status": "False",
            "reason": "ServersNotAnswering",
            "message": "primary: client probe: 0 of 1 answered; HTTP 503: model is loading x1",
        }
    )
    return {"activeCluster": "primary", "conditions": [condition]}


def target(spec: ModelDeploymentSpec | None = None, name: str = "bert") -> Target:
    return Target("ns", name, "md-uid", spec or minimal_spec(name), {DRILLS_LABEL: DRILLS_ENABLED})


def plan_spec(**overrides: Any) -> DrillPlanSpec:
    """A valid plan: one PodKill step of 1 s on the active cluster, 1 s steady states."""
    doc: dict[str, Any] = {
        "target": {"modelDeployment": "bert"},
        "steadyState": {"durationSeconds": 1},
        "steps": [{"name": "kill", "fault": {"type": "PodKill"}, "durationSeconds": 1}],
    }
    doc.update(overrides)
    return DrillPlanSpec.parse(doc)


async def no_prometheus(q: PrometheusQuery) -> QueryOutcome:
    return QueryValues(())


class Consenting:
    """A run's tenancy checks that find nothing to refuse, or what a test gives them:
    `lapsed` after `lapse_after` checks, `node_refused` for every node-level fault."""

    def __init__(
        self,
        lapsed: tuple[str, str] | None = None,
        lapse_after: int = 0,
        node_refused: Refusal | None = None,
    ) -> None:
        self.lapsed, self.lapse_after, self.node_refused = lapsed, lapse_after, node_refused
        self.checks = 0

    def lapse(self) -> tuple[str, str] | None:
        self.checks += 1
        return self.lapsed if self.checks > self.lapse_after else None

    def node_refusal(self, fault_type: str, cluster: str, node: str) -> Refusal | None:
        return self.node_refused


def make_drill(
    plan: DrillPlanSpec,
    state: RecordingState,
    members: FakeMembers,
    *,
    the_target: Target | None = None,
    probe: FakeProbe | None = None,
    interrupt: Interrupt | None = None,
    query: Callable[[PrometheusQuery], Awaitable[QueryOutcome]] = no_prometheus,
    stop_reason: Callable[[], tuple[str, str] | None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
    target_status: Callable[[], dict[str, Any]] = lambda: serving_status(),
    guard: Guard | None = None,
) -> Drill:
    runtime = cast(Runtime, SimpleNamespace(hub=nowhere(), members=members.registry()))
    return Drill(
        runtime=runtime,
        state=state,
        plan=plan,
        plan_name="plan",
        target=the_target or target(),
        seed=7,
        probe=cast(TrafficProbe, probe or FakeProbe()),
        journal=Journal(state, members.registry(), TEST_SEAL),
        query=query,
        stop_reason=stop_reason,
        guard=guard or Consenting(),
        interrupt=interrupt or QuickInterrupt(),
        clock=clock,
        read_target_status=target_status,
    )
