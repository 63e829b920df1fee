"""Active learning: uncertainty scores, the batch picker (random fallback, uncertainty,
k-center diversity), input checks, and the simulated saving over random at a small size."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from garrison.core.errors import InvalidInput
from garrison.label import next_batch, simulate, uncertainty

Matrix = npt.NDArray[np.float64]


def boundary_data(seed: int = 0, n: int = 500, d: int = 5) -> tuple[Matrix, list[str]]:
    """Points spread evenly over a cube, split by a hyperplane: most of them are far from the
    boundary, where a random label teaches little."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, d))
    y = ["pos" if v > 0 else "neg" for v in x[:, 0] + 0.3 * x[:, 1]]
    return x * 3, y


def test_uncertainty_is_one_when_undecided_and_zero_when_sure() -> None:
    probabilities = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    margin = uncertainty(probabilities, "margin")
    assert margin.tolist() == pytest.approx([1.0, 0.0, 1.0])
    entropy = uncertainty(probabilities, "entropy")
    assert entropy[1] == pytest.approx(0.0, abs=1e-9) and entropy[2] == pytest.approx(1.0)
    assert 0 < entropy[0] < 1
    with pytest.raises(InvalidInput, match="margin or entropy"):
        uncertainty(probabilities, "variance")  # type: ignore[arg-type]


def test_before_two_classes_the_batch_is_a_seeded_random_draw() -> None:
    pool = np.random.default_rng(1).normal(size=(50, 4))
    first = next_batch(np.zeros((0, 4)), [], pool, batch=10, seed=3)
    assert first == next_batch(np.zeros((0, 4)), [], pool, batch=10, seed=3)
    assert first != next_batch(np.zeros((0, 4)), [], pool, batch=10, seed=4)
    assert len(set(first)) == 10 and all(0 <= i < 50 for i in first)
    one_class = next_batch(pool[:3], ["a", "a", "a"], pool[3:], batch=5, seed=0)
    assert len(set(one_class)) == 5
    assert sorted(next_batch(np.zeros((0, 4)), [], pool[:3], batch=10)) == [0, 1, 2]
    assert next_batch(np.zeros((0, 4)), [], np.zeros((0, 4))) == []


def _two_clusters() -> tuple[Matrix, list[str]]:
    labeled = np.array([[-3.0, 0.0], [-2.5, 0.5], [3.0, 0.0], [2.5, -0.5]])
    return labeled, ["left", "left", "right", "right"]


def test_without_diversity_the_most_uncertain_record_comes_first() -> None:
    labeled, labels = _two_clusters()
    pool = np.array([[-4.0, 0.0], [0.05, 0.0], [4.0, 0.0], [1.5, 0.0]])
    picked = next_batch(labeled, labels, pool, diversity=0.0, batch=2, strategy="margin")
    assert picked == [1, 3]
    assert next_batch(labeled, labels, pool, diversity=0.0, batch=1, strategy="entropy") == [1]


def test_with_full_diversity_a_batch_spreads_out_like_k_center() -> None:
    labeled, labels = _two_clusters()
    # Five copies of one far point and two other far points: k-center takes one copy only.
    pool = np.array([[0.0, 10.0]] * 5 + [[0.0, -10.0], [10.0, 10.0]])
    picked = next_batch(labeled, labels, pool, diversity=1.0, batch=3)
    assert len([i for i in picked if i < 5]) == 1
    assert {5, 6} <= set(picked)
    # Without diversity the copies, all equally uncertain, crowd the batch.
    crowded = next_batch(labeled, labels, pool, diversity=0.0, batch=3)
    assert len([i for i in crowded if i < 5]) >= 2


def test_the_batch_is_deterministic_and_never_repeats() -> None:
    x, y = boundary_data(n=200)
    labeled, pool = x[:20], x[20:]
    a = next_batch(labeled, y[:20], pool, batch=15, seed=2)
    assert a == next_batch(labeled, y[:20], pool, batch=15, seed=2)
    assert len(set(a)) == 15 and max(a) < 180


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"diversity": 1.5}, "diversity"),
        ({"batch": 0}, "at least one"),
        ({"strategy": "least-confident"}, "margin or entropy"),
    ],
)
def test_next_batch_refuses_bad_options(kwargs: dict[str, object], message: str) -> None:
    labeled, labels = _two_clusters()
    with pytest.raises(InvalidInput, match=message):
        next_batch(labeled, labels, np.zeros((3, 2)), **kwargs)  # type: ignore[arg-type]


def test_next_batch_refuses_inputs_that_do_not_fit() -> None:
    labeled, labels = _two_clusters()
    with pytest.raises(InvalidInput, match="one label per"):
        next_batch(labeled, labels[:3], np.zeros((3, 2)))
    with pytest.raises(InvalidInput, match="dimensions"):
        next_batch(labeled, labels, np.zeros((3, 5)))
    with pytest.raises(InvalidInput, match="matrix"):
        next_batch(labeled, labels, np.zeros(3))
    with pytest.raises(InvalidInput, match="finite"):
        next_batch(labeled, labels, np.full((3, 2), np.nan))


def test_active_ordering_needs_fewer_labels_than_random() -> None:
    x, y = boundary_data()
    result = simulate(x, y, target_accuracy=0.97, seeds=range(8), batch=5, resamples=500)
    assert result.pool == 350 and result.test == 150 and len(result.runs) == 8
    assert all(r.active_reached and r.random_reached for r in result.runs)
    assert result.mean_active < result.mean_random
    assert result.saving.value == pytest.approx(result.mean_random - result.mean_active)
    assert result.saving.low > 0, result  # the interval excludes no saving
    assert result.relative_saving.low > 0
    assert result == simulate(x, y, target_accuracy=0.97, seeds=range(8), batch=5, resamples=500)


def test_a_target_out_of_reach_counts_the_whole_pool() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = [str(v) for v in rng.integers(0, 2, size=60)]  # labels unrelated to the points
    result = simulate(x, y, target_accuracy=1.0, seeds=[0], batch=10, resamples=50)
    run = result.runs[0]
    assert not run.active_reached and not run.random_reached
    assert run.active == run.random == result.pool == 42


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_accuracy": 0.0}, "target accuracy"),
        ({"target_accuracy": 0.9, "test_fraction": 1.0}, "test fraction"),
        ({"target_accuracy": 0.9, "seeds": []}, "seed"),
        ({"target_accuracy": 0.9, "batch": 500}, "Too few records"),
    ],
)
def test_simulate_refuses_bad_options(kwargs: dict[str, object], message: str) -> None:
    x, y = boundary_data(n=40)
    with pytest.raises(InvalidInput, match=message):
        simulate(x, y, **kwargs)  # type: ignore[arg-type]


def test_on_a_large_pool_picks_come_from_the_most_uncertain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import garrison.label.active as active

    monkeypatch.setattr(active, "MIN_CANDIDATES", 20)
    monkeypatch.setattr(active, "CANDIDATES_PER_PICK", 1)
    x, y = boundary_data(n=300)
    labeled, pool = x[:30], x[30:]
    picked = next_batch(labeled, y[:30], pool, batch=5, diversity=0.5)
    model = active._Model(labeled, y[:30], 0)
    scores = uncertainty(model.probabilities(pool))
    top = set(np.argsort(-scores, kind="stable")[:20].tolist())
    assert len(set(picked)) == 5 and set(picked) <= top
    # Pure k-center looks at the whole pool.
    spread = next_batch(labeled, y[:30], pool, batch=5, diversity=1.0)
    assert not set(spread) <= top
