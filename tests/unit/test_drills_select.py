"""Target selection: modes, seeds, empty selections and the blast radius (pure)."""

from __future__ import annotations

import pytest

from modeldr.drills.select import (
    BlastRadiusExceeded,
    Candidate,
    Mode,
    NoTargets,
    TooFewTargets,
    allowed_pods,
    select_node,
    select_pods,
    wanted_count,
)

PODS = [f"tiny-bert-{c}" for c in "abcdefghij"]  # 10 pods


def test_one_picks_a_single_candidate() -> None:
    selection = select_pods(PODS, Mode.ONE, None, seed=7)
    assert len(selection.targets) == 1 and selection.targets[0] in PODS
    assert (selection.seed, selection.mode, selection.candidates) == (7, Mode.ONE, 10)


def test_all_picks_every_candidate_sorted() -> None:
    selection = select_pods(list(reversed(PODS)), Mode.ALL, None, seed=1)
    assert selection.targets == tuple(PODS)


def test_fixed_picks_that_many() -> None:
    assert len(select_pods(PODS, Mode.FIXED, 3, seed=1).targets) == 3


def test_percent_rounds_up() -> None:
    assert len(select_pods(PODS, Mode.PERCENT, 25, seed=1).targets) == 3  # 2.5 → 3
    assert len(select_pods(PODS, Mode.PERCENT, 1, seed=1).targets) == 1  # 0.1 → 1
    assert len(select_pods(PODS, Mode.PERCENT, 30, seed=1).targets) == 3  # exactly 3


def test_percent_zero_selects_none_and_is_no_targets() -> None:
    with pytest.raises(NoTargets, match="selects none"):
        select_pods(PODS, Mode.PERCENT, 0, seed=1)


def test_targets_are_sorted_and_distinct() -> None:
    targets = select_pods(PODS, Mode.FIXED, 5, seed=3).targets
    assert list(targets) == sorted(set(targets))


def test_same_seed_same_targets_whatever_the_listing_order() -> None:
    first = select_pods(PODS, Mode.FIXED, 4, seed=42).targets
    again = select_pods(list(reversed(PODS)), Mode.FIXED, 4, seed=42).targets
    assert first == again


def test_different_seeds_choose_differently() -> None:
    choices = {select_pods(PODS, Mode.ONE, None, seed=s).targets for s in range(50)}
    assert len(choices) > 3


def test_candidates_may_carry_their_node() -> None:
    candidates = [Candidate("p1", "n1"), Candidate("p2", "n2")]
    assert select_pods(candidates, Mode.ALL, None, seed=0).targets == ("p1", "p2")


def test_zero_candidates_is_no_targets() -> None:
    with pytest.raises(NoTargets, match="zero targets") as caught:
        select_pods([], Mode.ALL, None, seed=1)
    assert caught.value.reason == "NoTargets"


def test_fixed_more_than_there_are_is_refused_not_trimmed() -> None:
    with pytest.raises(TooFewTargets, match="asks for 11 pods, only 10 exist"):
        select_pods(PODS, Mode.FIXED, 11, seed=1)


def test_blast_radius_refuses_more_than_allowed_with_the_numbers() -> None:
    with pytest.raises(BlastRadiusExceeded) as caught:
        select_pods(PODS, Mode.ALL, None, seed=1, max_pods_percent=50)
    message = str(caught.value)
    assert "asks for 10 of 10 pods" in message and "allows 5" in message and "50%" in message
    assert caught.value.reason == "BlastRadiusExceeded"


def test_blast_radius_at_its_limit_is_allowed() -> None:
    selection = select_pods(PODS, Mode.FIXED, 5, seed=1, max_pods_percent=50)
    assert (len(selection.targets), selection.allowed) == (5, 5)


def test_blast_radius_is_a_share_of_all_the_models_pods() -> None:
    # Killing all 2 pods of the primary is 50 % of the model's 4 pods.
    selection = select_pods(["p1", "p2"], Mode.ALL, None, seed=1, total_pods=4, max_pods_percent=50)
    assert selection.targets == ("p1", "p2")
    with pytest.raises(BlastRadiusExceeded):
        select_pods(["p1", "p2"], Mode.ALL, None, seed=1, total_pods=3, max_pods_percent=50)


def test_blast_radius_that_allows_nothing_refuses_even_one() -> None:
    with pytest.raises(BlastRadiusExceeded, match="allows 0"):
        select_pods(["p1"], Mode.ONE, None, seed=1, max_pods_percent=50)  # floor(0.5) = 0


def test_allowed_pods_rounds_down_exactly() -> None:
    assert allowed_pods(8, 12.5) == 1
    assert allowed_pods(3, 33.3) == 0
    assert allowed_pods(10, 29.9) == 2
    assert allowed_pods(1000, 0.3) == 3  # 0.3 as a binary float is a hair below 0.3
    assert allowed_pods(7, None) == 7
    assert allowed_pods(7, 100) == 7
    with pytest.raises(ValueError):
        allowed_pods(7, 101)


def test_wanted_count_checks_its_value() -> None:
    assert wanted_count(Mode.PERCENT, 33.3, 3) == 1  # 0.999 → 1
    assert wanted_count(Mode.PERCENT, 100, 3) == 3
    assert wanted_count(Mode.PERCENT, 0.1, 1000) == 1  # 0.1 as a binary float is a hair above
    for mode, value in [(Mode.FIXED, None), (Mode.FIXED, 0), (Mode.FIXED, 1.5)]:
        with pytest.raises(ValueError):
            wanted_count(mode, value, 3)
    with pytest.raises(ValueError):
        wanted_count(Mode.PERCENT, 120, 3)


def test_repeated_candidate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="repeat"):
        select_pods(["p1", "p1"], Mode.ALL, None, seed=1)


# --- nodes ------------------------------------------------------------------------------

SPREAD = [
    Candidate("p1", "node-a"),
    Candidate("p2", "node-a"),
    Candidate("p3", "node-b"),
    Candidate("p4", "node-c"),
    Candidate("p5", None),  # pending: on no node
]


def test_node_is_one_that_runs_the_model() -> None:
    selection = select_node(SPREAD, seed=5)
    assert selection.node in {"node-a", "node-b", "node-c"}
    assert selection.candidates == ("node-a", "node-b", "node-c")
    assert selection.seed == 5


def test_node_choice_is_deterministic_for_a_seed() -> None:
    assert select_node(SPREAD, seed=9) == select_node(list(reversed(SPREAD)), seed=9)
    assert len({select_node(SPREAD, seed=s).node for s in range(30)}) == 3


def test_node_selection_lists_the_pods_it_takes_down() -> None:
    assert select_node(SPREAD, seed=0, node="node-a").pods == ("p1", "p2")


def test_named_node_must_run_a_pod_of_the_model() -> None:
    with pytest.raises(NoTargets, match="node-z runs none of the model's pods"):
        select_node(SPREAD, seed=0, node="node-z")


def test_no_scheduled_pod_means_no_node() -> None:
    with pytest.raises(NoTargets):
        select_node([Candidate("p1", None)], seed=0)
    with pytest.raises(NoTargets):
        select_node([], seed=0)


def test_node_choice_stays_within_the_blast_radius() -> None:
    # 5 pods at 20 % allow 1: node-a (2 pods) is never chosen.
    nodes = {select_node(SPREAD, seed=s, max_pods_percent=20).node for s in range(30)}
    assert nodes == {"node-b", "node-c"}


def test_named_node_over_the_blast_radius_is_refused() -> None:
    with pytest.raises(BlastRadiusExceeded, match="node-a runs 2 of the model's pods"):
        select_node(SPREAD, seed=0, node="node-a", max_pods_percent=20)


def test_every_node_over_the_blast_radius_is_refused() -> None:
    with pytest.raises(BlastRadiusExceeded, match="allows 0"):
        select_node(SPREAD, seed=0, max_pods_percent=10)
