"""The operator's metric families: series the chart's alerts need exist before they count."""

from __future__ import annotations

from prometheus_client import REGISTRY

from modeldr.operator import metrics


def _failovers(namespace: str, name: str) -> dict[tuple[str, str, str], float]:
    found: dict[tuple[str, str, str], float] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "modeldr_failovers_total"
                and labels.get("namespace") == namespace
                and labels.get("modeldeployment") == name
            ):
                found[(labels["from_cluster"], labels["to_cluster"], labels["trigger"])] = (
                    sample.value
                )
    return found


def test_failover_series_start_at_zero_in_both_directions() -> None:
    metrics.zero_failovers("ns-a", "model-a", "east", "west")
    series = _failovers("ns-a", "model-a")
    assert set(series) == {
        (src, dst, trigger)
        for src, dst in (("east", "west"), ("west", "east"))
        for trigger in metrics.FAILOVER_TRIGGERS
    }
    assert set(series.values()) == {0.0}


def test_zeroing_again_keeps_counts_and_forget_drops_the_series() -> None:
    metrics.FAILOVERS.labels("ns-b", "model-b", "east", "west", "automatic").inc()
    metrics.zero_failovers("ns-b", "model-b", "east", "west")
    assert _failovers("ns-b", "model-b")[("east", "west", "automatic")] == 1.0
    metrics.forget("ns-b", "model-b")
    assert _failovers("ns-b", "model-b") == {}
