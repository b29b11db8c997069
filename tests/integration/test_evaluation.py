"""The model re-evaluated after every switch (spec.evaluation), on the sandbox: real servers
answer the golden set, report their digests through the V2 model metadata, and a real outage
(not a drill) is followed by the evaluation of the cluster that took over."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldr.kube.constants import GROUP, SWITCH_ANNOTATION, VERSION
from sandbox import kube
from sandbox.api import Sandbox
from tests.integration.modeldeployments import (
    NAME,
    PLURAL,
    create,
    custom,
    manifest,
    serving_everywhere,
    wait_status,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_SET = ROOT / "examples/sandbox/golden-set.yaml"
EVALUATION = {
    "goldenSet": {"configMapRef": {"name": "tiny-bert-golden"}},
    "minAgreement": 0.99,
    "minAccuracy": 0.8,
}


def with_golden_set(hub_ns: str, **spec: Any) -> dict[str, Any]:
    kube.core("hub").create_namespaced_config_map(hub_ns, yaml.safe_load(GOLDEN_SET.read_text()))
    md = manifest(hub_ns, **spec)
    create(hub_ns, md)
    return md


def model_verified(s: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in s.get("conditions") or [] if c["type"] == "ModelVerified"), None)


def evaluated(s: dict[str, Any], cluster: str) -> bool:
    evaluation = (s.get("lastFailover") or {}).get("evaluation") or {}
    return evaluation.get("cluster") == cluster and evaluation.get("phase") != "Running"


def switch_to(hub_ns: str, role: str) -> None:
    annotations = {"metadata": {"annotations": {SWITCH_ANNOTATION: role}}}
    custom().patch_namespaced_custom_object(GROUP, VERSION, hub_ns, PLURAL, NAME, annotations)


def test_a_switch_by_hand_is_followed_by_a_verified_evaluation(hub_ns: str) -> None:
    """Before any switch the baseline (the primary's answers) is taken and verified; a
    switch by hand to the standby (the same model) is evaluated: agreement 1, every server's
    digest as pinned, ModelVerified True."""
    md = with_golden_set(hub_ns, evaluation=EVALUATION)
    s = wait_status(hub_ns, serving_everywhere, "model servers Ready in both clusters")
    s = wait_status(
        hub_ns,
        lambda s: (model_verified(s) or {}).get("reason") == "Baseline",
        "the baseline of the primary",
        60,
    )
    baseline = model_verified(s)
    assert baseline is not None and baseline["status"] == "True", baseline
    assert "primary on 48 golden items" in baseline["message"], baseline
    asked = time.monotonic()
    switch_to(hub_ns, "standby")
    s = wait_status(hub_ns, lambda s: evaluated(s, "standby"), "the standby's evaluation", 90)
    evaluation = s["lastFailover"]["evaluation"]
    print(f"\nswitch by hand + evaluation: {time.monotonic() - asked:.1f} s")
    assert evaluation["phase"] == "Verified" and evaluation["reason"] == "ModelVerified", s
    assert evaluation["agreement"] == 1.0 and evaluation["accuracy"] >= 0.8, evaluation
    digests = evaluation["servedDigests"]
    assert len(digests) == 1 and set(digests.values()) == {md["spec"]["model"]["expectedDigest"]}
    assert all(server.startswith("http://127.2.") for server in digests), digests
    verified = model_verified(s)
    assert verified is not None and verified["status"] == "True", verified


def test_a_real_outage_onto_a_wrong_answering_standby_is_not_verified_and_fails_back(
    hub_ns: str, sandbox: Sandbox
) -> None:
    """The standby truncates every text (a runtime override): it is healthy and answers, but
    not as the primary did. A real primary outage (the sandbox stops its control plane and
    pods) fails over; the evaluation after it says NotVerified (ModelMismatch) with the
    figures; with onFailure failBack, once the primary is back and passes its health check
    the operator switches back (failback mode is manual: only the evaluation asks), and the
    evaluation after that verifies the primary."""
    standby = {
        "env": [
            {"name": "MODELDR_SERVE_MAX_SEQ_LENGTH", "value": "6"},
            {"name": "MODELDR_SERVE_TRUNCATE", "value": "true"},
        ]
    }
    md = manifest(hub_ns, evaluation=EVALUATION | {"onFailure": "failBack"})
    md["spec"]["clusters"]["standby"]["runtime"] = standby
    kube.core("hub").create_namespaced_config_map(hub_ns, yaml.safe_load(GOLDEN_SET.read_text()))
    create(hub_ns, md)
    wait_status(hub_ns, serving_everywhere, "model servers Ready in both clusters")
    wait_status(
        hub_ns,
        lambda s: (model_verified(s) or {}).get("reason") == "Baseline",
        "the baseline of the primary",
        60,
    )
    sandbox.outage("primary")
    try:
        s = wait_status(hub_ns, lambda s: evaluated(s, "standby"), "the evaluation", 120)
        failover = s["lastFailover"]
        assert failover["automatic"] is True and failover["to"] == "standby", failover
        evaluation = failover["evaluation"]
        assert evaluation["phase"] == "NotVerified", evaluation
        assert evaluation["reason"] == "ModelMismatch" and evaluation["agreement"] < 0.99
        assert "agreement" in evaluation["message"], evaluation
        verified = model_verified(s)
        assert verified is not None and verified["status"] == "False", verified
    finally:
        sandbox.restore("primary")
    s = wait_status(hub_ns, lambda s: evaluated(s, "primary"), "the failback's evaluation", 180)
    failback = s["lastFailover"]
    assert failback["from"] == "standby" and failback["to"] == "primary", failback
    assert failback["evaluation"]["phase"] == "Verified", failback["evaluation"]
    assert failback["evaluation"]["agreement"] == 1.0
    verified = model_verified(s)
    assert verified is not None and verified["status"] == "True", verified
