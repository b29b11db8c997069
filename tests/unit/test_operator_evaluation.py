"""The model evaluated after a switch (operator/evaluation.py, operator/verify.py): the
assessment's outcomes, the golden set answered by real loopback servers that report their
digest through the V2 model metadata, and the daemon's state across ticks (baseline,
reference, failBack)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, cast

import kopf
import pytest

from modeldr.api.modeldeployment import Evaluation
from modeldr.kube.golden import GoldenItem
from modeldr.operator import verify
from modeldr.operator.evaluation import (
    Evaluated,
    EvaluationState,
    Outcome,
    Reference,
    assess,
    evaluate,
    golden_digest,
)
from tests.loopback import serve

BODY = cast(kopf.Body, {})  # Events are caught by the `events` fixture
DIGEST = "sha256:" + "1" * 64
OTHER = "sha256:" + "2" * 64
GOLDEN = tuple(GoldenItem(f"review {i}", "positive" if i % 2 else "negative") for i in range(10))
LABELS = [item.label for item in GOLDEN]
SETTINGS = Evaluation.model_validate(
    {"goldenSet": {"configMapRef": {"name": "g"}}, "minAgreement": 0.99, "minAccuracy": 0.8}
)


def flipped(labels: list[str], n: int) -> list[str | None]:
    """The labels with the first n answered the other way."""
    other = {"positive": "negative", "negative": "positive"}
    return [other[label] if i < n else label for i, label in enumerate(labels)]


def test_the_same_answers_and_digest_verify() -> None:
    outcome, reason, message, scores = assess(
        SETTINGS, "standby", GOLDEN, LABELS, LABELS, {"http://s1": DIGEST}, DIGEST
    )
    assert (outcome, reason) == (Outcome.VERIFIED, "ModelVerified")
    assert scores.agreement == 1.0 and "standby on 10 golden items" in message


def test_a_standby_that_answers_otherwise_is_not_verified_with_the_figures() -> None:
    outcome, reason, message, _ = assess(
        SETTINGS, "standby", GOLDEN, flipped(LABELS, 3), LABELS, {"s": DIGEST}, DIGEST
    )
    assert (outcome, reason) == (Outcome.NOT_VERIFIED, "ModelMismatch")
    assert "agreement 0.7000 < min 0.99" in message and "accuracy 0.7000 < min 0.8" in message


def test_a_server_serving_another_digest_is_not_verified_even_with_the_same_answers() -> None:
    digests: dict[str, str | None] = {"http://s1": DIGEST, "http://s2": OTHER}
    outcome, _, message, _ = assess(SETTINGS, "standby", GOLDEN, LABELS, LABELS, digests, DIGEST)
    assert outcome is Outcome.NOT_VERIFIED
    assert "http://s2 serves sha256:222222222222…, expected sha256:111111111111…" in message


def test_missing_evidence_never_verifies() -> None:
    unknown_digest: dict[str, str | None] = {"http://s1": None}
    outcome, reason, message, _ = assess(
        SETTINGS, "standby", GOLDEN, LABELS, LABELS, unknown_digest, DIGEST
    )
    assert (outcome, reason) == (Outcome.UNKNOWN, "EvaluationIncomplete")
    assert "the served digest of http://s1 is unknown" in message
    no_reference = assess(SETTINGS, "standby", GOLDEN, LABELS, None, {"s": DIGEST}, DIGEST)
    assert no_reference[0] is Outcome.UNKNOWN and "no reference answers" in no_reference[2]
    nobody = assess(SETTINGS, "standby", GOLDEN, LABELS, LABELS, {}, DIGEST)
    assert nobody[0] is Outcome.UNKNOWN
    # A baseline has nothing to agree with: it is judged on the minimums and the digest.
    baseline = assess(
        SETTINGS, "primary", GOLDEN, LABELS, None, {"s": DIGEST}, DIGEST, baseline=True
    )
    assert (baseline[0], baseline[1]) == (Outcome.VERIFIED, "Baseline")


class Server(BaseHTTPRequestHandler):
    """A classifier: answers the golden texts as `state["labels"]` says (by text), and its
    digest (absent when `state["digest"]` is None)."""

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        state = self.server.state  # type: ignore[attr-defined]
        texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["texts"]
        state["batches"] += 1
        if state.get("down"):
            self._send(503, {"error": "down"})
            return
        labels = state["labels"]
        self._send(200, {"predictions": [{"label": labels[t]} for t in texts]})

    def do_GET(self) -> None:
        state = self.server.state  # type: ignore[attr-defined]
        body: dict[str, Any] = {"name": "tiny-bert"}
        if state["digest"] is not None:
            body["parameters"] = {"digest": state["digest"]}
        self._send(200 if self.path == "/v2/models/tiny-bert" else 404, body)


def server_state(labels: list[str | None], digest: str | None = DIGEST) -> dict[str, Any]:
    return {
        "labels": {item.text: label for item, label in zip(GOLDEN, labels, strict=True)},
        "digest": digest,
        "batches": 0,
    }


def reference(answers: list[str | None] | None = None) -> Reference:
    return Reference("primary", tuple(answers or LABELS), DIGEST, golden_digest(GOLDEN))


def test_evaluate_asks_real_servers_in_batches_and_falls_over_to_the_next() -> None:
    down = server_state(list(LABELS)) | {"down": True}
    up = server_state(list(LABELS))
    with serve(Server, down) as first, serve(Server, up) as second:
        result = asyncio.run(
            evaluate(SETTINGS, GOLDEN, "standby", [first, second], "tiny-bert", DIGEST, reference())
        )
    assert result.outcome is Outcome.VERIFIED, result.message
    assert down["batches"] == 1 and up["batches"] == 1  # 10 texts: one batch, asked again
    assert dict(result.digests) == {first: DIGEST, second: DIGEST}
    assert result.to_status()["servedDigests"] == {first: DIGEST, second: DIGEST}
    assert result.to_status()["agreement"] == 1.0


def test_evaluate_says_unknown_when_nobody_answers_and_a_stale_reference_is_ignored() -> None:
    with serve(Server, server_state(list(LABELS)) | {"down": True}) as url:
        result = asyncio.run(
            evaluate(SETTINGS, GOLDEN, "standby", [url], "tiny-bert", DIGEST, reference())
        )
    assert (result.outcome, result.reason) == (Outcome.UNKNOWN, "ModelUnreachable")
    assert "HTTP 503" in result.message
    stale = Reference("primary", tuple(LABELS), DIGEST, "another golden set")
    with serve(Server, server_state(list(LABELS))) as url:
        result = asyncio.run(
            evaluate(SETTINGS, GOLDEN, "standby", [url], "tiny-bert", DIGEST, stale)
        )
    assert result.outcome is Outcome.UNKNOWN and "no reference answers" in result.message


# ------------------------------------------------------------------ the daemon's state


class Ctl:
    """What verify.py reads of a DaemonState."""

    def __init__(self) -> None:
        self.evaluation = EvaluationState()
        self.namespace, self.name = "team-a", "tiny-bert"


def spec_of(on_failure: str = "alert") -> Any:
    from modeldr.api.modeldeployment import ModelDeploymentSpec
    from tests.specs import minimal_spec_dict

    raw = minimal_spec_dict(
        evaluation={"goldenSet": {"configMapRef": {"name": "g"}}, "onFailure": on_failure}
    )
    raw["model"]["expectedDigest"] = DIGEST
    return ModelDeploymentSpec.parse(raw)


def result(cluster: str, outcome: Outcome, answers: list[str | None] | None = None) -> Evaluated:
    return Evaluated(
        cluster,
        outcome,
        "r",
        "m",
        datetime.now(UTC),
        answers=tuple(answers or LABELS),
        golden_digest=golden_digest(GOLDEN),
    )


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    posted: list[tuple[str, str, str]] = []
    monkeypatch.setattr(verify, "post_event", lambda body, t, r, m: posted.append((t, r, m)))
    return posted


def test_a_verified_evaluation_becomes_the_reference_and_an_unverified_one_does_not(
    events: list[tuple[str, str, str]],
) -> None:
    ctl: Any = Ctl()
    spec = spec_of()
    verify.finished(
        ctl, BODY, spec, spec.evaluation, ("baseline", result("primary", Outcome.VERIFIED))
    )
    assert ctl.evaluation.reference.cluster == "primary" and events == []
    wrong = flipped(LABELS, 5)
    verify.finished(
        ctl, BODY, spec, spec.evaluation, ("switch", result("standby", Outcome.NOT_VERIFIED, wrong))
    )
    assert ctl.evaluation.reference.cluster == "primary"  # the good answers stay the reference
    assert ctl.evaluation.last["phase"] == "NotVerified"
    assert events == [("Warning", "ModelNotVerified", "after the switch to standby: m")]
    assert ctl.evaluation.fail_back_to is None  # onFailure alert: nothing switches


def test_fail_back_asks_once_for_the_former_cluster_until_an_evaluation_verifies(
    events: list[tuple[str, str, str]],
) -> None:
    ctl: Any = Ctl()
    spec = spec_of("failBack")
    assert spec.evaluation is not None
    verify.finished(
        ctl, BODY, spec, spec.evaluation, ("baseline", result("primary", Outcome.VERIFIED))
    )
    verify.finished(
        ctl, BODY, spec, spec.evaluation, ("switch", result("standby", Outcome.NOT_VERIFIED))
    )
    assert ctl.evaluation.fail_back_to == "primary"
    assert verify.fail_back_request(ctl, spec) == "primary"
    assert events[-1][1] == "EvaluationFailBack"
    # Back on primary, which fails too (a model broken everywhere): no ping-pong.
    ctl.evaluation.fail_back_to = None
    verify.finished(
        ctl, BODY, spec, spec.evaluation, ("switch", result("primary", Outcome.NOT_VERIFIED))
    )
    assert ctl.evaluation.fail_back_to is None
    assert verify.fail_back_request(ctl, spec) is None


def test_the_condition_says_evaluating_then_the_outcome() -> None:
    ctl: Any = Ctl()
    spec = spec_of()
    changes: list[Any] = []
    status: dict[str, Any] = {"lastFailover": {"to": "standby"}}
    verify.report_evaluation(ctl, spec, status, changes)
    assert changes == [("ModelVerified", False, "NotEvaluated", "no evaluation yet")]
    ctl.evaluation.verified = result("standby", Outcome.VERIFIED)
    ctl.evaluation.last = {"phase": "Verified"}
    changes.clear()
    verify.report_evaluation(ctl, spec, status, changes)
    assert changes == [("ModelVerified", True, "r", "m")]
    assert status["lastFailover"]["evaluation"] == {"phase": "Verified"}
