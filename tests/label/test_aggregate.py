"""Majority vote (deterministic, reported ties), Dawid–Skene (beats the vote on a crowd with an
adversarial and a noisy annotator, over seeds) and their comparison on gold with Wilson
intervals."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint

from garrison.core.errors import InvalidInput
from garrison.label import (
    DawidSkene,
    MajorityVote,
    compare_on_gold,
    dawid_skene,
    majority_vote,
)
from garrison.label.aggregate import wilson_interval

CLASSES = ["a", "b", "c"]


def crowd(seed: int, tasks: int = 300) -> tuple[dict[int, dict[str, str]], dict[int, str]]:
    """Two good annotators (80% right), one noisy (40%, else uniform), one adversary (says the
    next class 85% of the time); each task gets three of the four."""
    rng = np.random.default_rng(seed)
    truth = {t: CLASSES[int(rng.choice(3, p=[0.5, 0.3, 0.2]))] for t in range(tasks)}

    def answer(who: str, true: str) -> str:
        j = CLASSES.index(true)
        if who in ("good1", "good2"):
            right = rng.random() < 0.8
            return true if right else CLASSES[int(rng.choice([k for k in range(3) if k != j]))]
        if who == "noisy":
            return true if rng.random() < 0.4 else CLASSES[int(rng.integers(3))]
        return CLASSES[(j + 1) % 3] if rng.random() < 0.85 else true

    annotators = ["good1", "good2", "noisy", "adversary"]
    labels = {}
    for t, true in truth.items():
        chosen = rng.choice(4, size=3, replace=False)
        labels[t] = {annotators[i]: answer(annotators[i], true) for i in chosen}
    return labels, truth


def test_majority_vote_takes_the_most_frequent_label() -> None:
    result = majority_vote({1: {"x": "a", "y": "a", "z": "b"}, 2: {"x": "b"}, 3: {}})
    assert isinstance(result, MajorityVote)
    assert result.labels == {1: "a", 2: "b"}
    assert result.support == {1: pytest.approx(2 / 3), 2: 1.0}
    assert result.ties == {}


def test_majority_vote_breaks_ties_deterministically_and_reports_them() -> None:
    labels = {
        1: {"x": "b", "y": "b"},
        2: {"x": "b", "y": "c"},
        3: {"x": "a", "y": "c"},
        4: {"x": "c", "y": "b", "z": None},
    }
    result = majority_vote(labels)
    # b and c are tied overall (3 each): the sorted order decides between them; a is rarer.
    assert result.labels[2] == "b" and result.ties[2] == ("b", "c")
    assert result.labels[3] == "c" and result.ties[3] == ("c", "a")
    assert result.labels[4] == "b"
    reordered = {t: dict(reversed(list(v.items()))) for t, v in reversed(list(labels.items()))}
    assert majority_vote(reordered) == result


@given(
    st.dictionaries(
        st.integers(0, 20),
        st.dictionaries(st.sampled_from("pqrs"), st.sampled_from("abc"), min_size=1),
        min_size=1,
    )
)
def test_majority_vote_label_has_the_top_count(labels: dict[int, dict[str, str]]) -> None:
    result = majority_vote(labels)
    for task, votes in labels.items():
        counts = [list(votes.values()).count(v) for v in votes.values()]
        assert list(votes.values()).count(result.labels[task]) == max(counts)
        assert (task in result.ties) == (counts.count(max(counts)) > max(counts))


@pytest.mark.parametrize("seed", range(10))
def test_dawid_skene_beats_majority_vote_on_a_crowd_with_an_adversary(seed: int) -> None:
    labels, truth = crowd(seed)
    mv = majority_vote(labels)
    ds = dawid_skene(labels)
    scores = compare_on_gold({"majority": mv, "dawid-skene": ds}, truth)
    assert scores["dawid-skene"].accuracy > scores["majority"].accuracy + 0.05, scores
    assert ds.converged
    # It found the adversary out: its answer given the true class is mostly the next class.
    for j, true in enumerate(CLASSES):
        row = ds.confusion["adversary"][true]
        assert max(row, key=row.__getitem__) == CLASSES[(j + 1) % 3]
    assert ds.confusion["good1"]["a"]["a"] > 0.6


def test_dawid_skene_posteriors_are_distributions_and_priors_follow_the_data() -> None:
    labels, _ = crowd(0)
    ds = dawid_skene(labels)
    assert isinstance(ds, DawidSkene) and ds.classes == tuple(CLASSES)
    for task, posterior in ds.posteriors.items():
        assert sum(posterior.values()) == pytest.approx(1.0)
        assert ds.labels[task] == max(posterior, key=posterior.__getitem__)
    assert sum(ds.priors.values()) == pytest.approx(1.0)
    assert ds.priors["a"] == pytest.approx(0.5, abs=0.08)
    for rows in ds.confusion.values():
        for row in rows.values():
            assert sum(row.values()) == pytest.approx(1.0)
    assert math.isfinite(ds.log_likelihood)


def test_dawid_skene_with_unanimous_annotators_agrees_with_them() -> None:
    labels = {t: {"x": v, "y": v, "z": v} for t, v in enumerate("abcabcaab")}
    ds = dawid_skene(labels)
    assert ds.labels == {t: v for t, v in enumerate("abcabcaab")}


def test_dawid_skene_classes_and_limits() -> None:
    labels = {1: {"x": "a", "y": "b"}, 2: {"x": "a"}}
    ds = dawid_skene(labels, classes=["b", "a", "never"])
    assert ds.classes == ("b", "a", "never")
    assert ds.posteriors[2]["never"] < 0.1
    with pytest.raises(InvalidInput, match="outside the classes"):
        dawid_skene(labels, classes=["a"])
    with pytest.raises(InvalidInput, match="repeat"):
        dawid_skene(labels, classes=["a", "a", "b"])
    one = dawid_skene(crowd(1)[0], max_iterations=1)
    assert one.iterations == 1
    assert dawid_skene({}).labels == {}


def test_compare_on_gold_gives_wilson_intervals() -> None:
    gold = {t: "a" for t in range(10)}
    chosen: dict[int, Any] = {t: ("a" if t < 7 else "b") for t in range(9)}  # task 9 unlabeled
    result = compare_on_gold({"m": chosen}, gold)["m"]
    assert (result.correct, result.n) == (7, 9)
    assert result.accuracy == pytest.approx(7 / 9)
    assert result.coverage == pytest.approx(0.9)
    low, high = proportion_confint(7, 9, method="wilson")
    assert (result.low, result.high) == (pytest.approx(low), pytest.approx(high))
    assert result.as_dict()["n"] == 9
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
