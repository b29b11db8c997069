"""`modeldr rollout status|promote|abort` (client/rollout.py) against a stand-in hub: what it
prints, the request it writes, and its exit codes."""

from __future__ import annotations

from typing import Any

import pytest

from modeldr.client import rollout as cli
from modeldr.client.app import main

VERIFYING = {
    "phase": "Verifying",
    "from": {"expectedDigest": "sha256:" + "1" * 64, "revision": "v1"},
    "to": {"expectedDigest": "sha256:" + "2" * 64, "revision": "v2"},
    "message": "the standby serves the new version: evaluating it",
}


class FakeHub:
    def __init__(self, md: dict[str, Any] | None) -> None:
        self.md = md
        self.context_namespace = "team-a"
        self.annotations: dict[str, str] = {}

    def get_modeldeployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.md

    def annotate_modeldeployment(self, namespace: str, name: str, key: str, value: str) -> None:
        self.annotations[key] = value


def with_hub(monkeypatch: pytest.MonkeyPatch, md: dict[str, Any] | None) -> FakeHub:
    hub = FakeHub(md)
    monkeypatch.setattr(cli, "Hub", lambda kubeconfig, context: hub)
    return hub


def md(rollout: dict[str, Any] | None, spec_rollout: bool = True) -> dict[str, Any]:
    return {"spec": {"rollout": {}} if spec_rollout else {}, "status": {"rollout": rollout}}


@pytest.mark.parametrize(
    ("phase", "code"), [("Promoted", 0), ("RolledBack", 1), ("Verifying", 2), ("Promoting", 2)]
)
def test_status_exits_with_the_outcome(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], phase: str, code: int
) -> None:
    evaluation = {"cluster": "standby", "agreement": 1.0, "f1": 0.5, "referenceF1": 0.96}
    with_hub(monkeypatch, md(VERIFYING | {"phase": phase, "evaluation": evaluation}))
    assert main(["rollout", "status", "tiny-bert"]) == code
    out = capsys.readouterr().out
    assert f"rollout: {phase}" in out and "to: v2 (sha256:222222222222…)" in out
    assert "evaluation on standby: agreement 1.0000, f1 0.5000, referenceF1 0.9600" in out


def test_promote_and_abort_write_the_request_only_when_it_applies(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = with_hub(monkeypatch, md(VERIFYING))
    assert main(["rollout", "promote", "tiny-bert"]) == 2  # requested; still in progress
    assert hub.annotations == {"modeldr.io/rollout": "promote"}
    hub = with_hub(monkeypatch, md(VERIFYING | {"phase": "Promoted"}))
    assert main(["rollout", "abort", "tiny-bert"]) == 3
    assert hub.annotations == {} and "abort needs Verifying or Promoting" in capsys.readouterr().err


def test_usage_errors_exit_3(monkeypatch: pytest.MonkeyPatch) -> None:
    with_hub(monkeypatch, None)
    assert main(["rollout", "status", "missing"]) == 3
    with_hub(monkeypatch, md(None, spec_rollout=False))
    assert main(["rollout", "status", "tiny-bert"]) == 3
