"""Agreement metrics against the reference implementations (krippendorff, scikit-learn,
statsmodels) on fixed and random inputs, their algebraic properties, span F1, box matching,
and bootstrap intervals."""

from __future__ import annotations

import math
from typing import Any

import krippendorff
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from garrison.core.errors import InvalidInput
from garrison.label import (
    BoxMatch,
    Estimate,
    alpha_interval,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    match_boxes,
    span_f1,
    span_scores,
    span_token_alpha,
    span_token_units,
    with_interval,
)

LEVELS = ["nominal", "ordinal", "interval"]

# Krippendorff (2011)'s worked example: 4 coders, 12 units, missing values as None.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def _as_units(matrix: list[list[Any]]) -> dict[int, dict[str, Any]]:
    """Coders x units (None: missing) as unit -> {coder: value}."""
    units: dict[int, dict[str, Any]] = {}
    for c, row in enumerate(matrix):
        for u, value in enumerate(row):
            units.setdefault(u, {})
            if value is not None:
                units[u][f"c{c}"] = value
    return units


def _reference(matrix: list[list[Any]], level: str) -> float:
    data = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))


@pytest.mark.parametrize("level", LEVELS)
def test_alpha_matches_the_reference_on_the_worked_example(level: str) -> None:
    ours = krippendorff_alpha(_as_units(KRIPPENDORFF_2011), level=level)  # type: ignore[arg-type]
    assert ours == pytest.approx(_reference(KRIPPENDORFF_2011, level), abs=1e-9)


def test_alpha_of_the_worked_example_is_the_published_value() -> None:
    # Krippendorff (2011), p. 3-4: nominal 0.743, interval 0.849.
    assert krippendorff_alpha(_as_units(KRIPPENDORFF_2011)) == pytest.approx(0.743, abs=5e-4)
    value = krippendorff_alpha(_as_units(KRIPPENDORFF_2011), level="interval")
    assert value == pytest.approx(0.849, abs=5e-4)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("seed", range(8))
def test_alpha_matches_the_reference_on_random_data(level: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    coders, units = int(rng.integers(2, 6)), int(rng.integers(5, 40))
    truth = rng.integers(1, 6, size=units)
    matrix: list[list[Any]] = []
    for _ in range(coders):
        noisy = np.where(rng.random(units) < 0.3, rng.integers(1, 6, size=units), truth)
        row = [None if rng.random() < 0.2 else int(v) for v in noisy]
        matrix.append(row)
    if len({v for row in matrix for v in row if v is not None}) < 2:
        pytest.skip("a single value: alpha is undefined for both")
    ours = krippendorff_alpha(_as_units(matrix), level=level)  # type: ignore[arg-type]
    assert ours == pytest.approx(_reference(matrix, level), abs=1e-9)


def test_alpha_takes_a_sequence_of_units_and_text_values() -> None:
    units = [{"a": "x", "b": "x"}, {"a": "y", "b": "y"}, {"a": "x", "b": "y"}, {"a": "z"}]
    by_key = dict(enumerate(units))
    assert krippendorff_alpha(units) == krippendorff_alpha(by_key)
    numeric = [{k: {"x": 0, "y": 1, "z": 2}[v] for k, v in u.items()} for u in units]
    assert krippendorff_alpha(units) == pytest.approx(krippendorff_alpha(numeric))


def test_alpha_is_undefined_without_two_pairable_values() -> None:
    assert math.isnan(krippendorff_alpha({1: {"a": 1, "b": 1}, 2: {"a": 1, "b": 1}}))
    assert math.isnan(krippendorff_alpha({1: {"a": 1}, 2: {"b": 2}}))  # nothing pairable
    assert math.isnan(krippendorff_alpha({}))


def test_alpha_refuses_what_it_cannot_measure() -> None:
    with pytest.raises(InvalidInput, match="numeric"):
        krippendorff_alpha({1: {"a": "x", "b": "y"}}, level="interval")
    with pytest.raises(InvalidInput, match="level"):
        krippendorff_alpha({1: {"a": 1, "b": 2}}, level="ratio")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="mapping"):
        krippendorff_alpha([[1, 2]])  # type: ignore[list-item]


_values = st.integers(min_value=0, max_value=4)
_unit_rows = st.lists(
    st.dictionaries(st.sampled_from("abcd"), _values, min_size=0, max_size=4),
    min_size=2,
    max_size=25,
)


@given(st.lists(_values, min_size=2, max_size=30), st.integers(2, 5))
def test_alpha_is_one_for_perfect_agreement(values: list[int], coders: int) -> None:
    units = [{f"c{c}": v for c in range(coders)} for v in values]
    for level in LEVELS:
        alpha = krippendorff_alpha(units, level=level)  # type: ignore[arg-type]
        if len(set(values)) < 2:
            assert math.isnan(alpha)
        else:
            assert alpha == pytest.approx(1.0)


@given(_unit_rows)
def test_alpha_is_bounded_above_by_one_and_below_by_minus_one_for_two_pairable_values(
    units: list[dict[str, int]],
) -> None:
    for level in LEVELS:
        alpha = krippendorff_alpha(units, level=level)  # type: ignore[arg-type]
        assert math.isnan(alpha) or alpha <= 1.0 + 1e-9
        # alpha's lower bound is -1 + 1/... only for binary nominal data; it stays finite.
        assert math.isnan(alpha) or math.isfinite(alpha)


@given(_unit_rows)
def test_alpha_does_not_depend_on_the_order_of_units_or_the_names_of_coders(
    units: list[dict[str, int]],
) -> None:
    renamed = [{k.upper(): v for k, v in u.items()} for u in reversed(units)]
    a, b = krippendorff_alpha(units), krippendorff_alpha(renamed)
    assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


# -- kappas --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_cohen_kappa_matches_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, size=60)
    b = np.where(rng.random(60) < 0.6, a, rng.integers(0, 4, size=60))
    assert cohen_kappa(list(a), list(b)) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


def test_cohen_kappa_leaves_out_missing_pairs() -> None:
    a = ["x", "y", None, "x", "y"]
    b = ["x", "y", "x", None, "x"]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(["x", "y", "y"], ["x", "y", "x"]))
    assert math.isnan(cohen_kappa(["x", "x"], ["x", "x"]))
    with pytest.raises(InvalidInput):
        cohen_kappa(["x"], ["x", "y"])


@given(st.lists(st.tuples(_values, _values), min_size=1, max_size=40))
def test_cohen_kappa_is_symmetric_and_at_most_one(pairs: list[tuple[int, int]]) -> None:
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    ab, ba = cohen_kappa(a, b), cohen_kappa(b, a)
    assert (math.isnan(ab) and math.isnan(ba)) or ab == pytest.approx(ba)
    assert math.isnan(ab) or ab <= 1.0 + 1e-12
    same = cohen_kappa(a, a)
    assert math.isnan(same) or same == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(6))
def test_fleiss_kappa_matches_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    raters, units = int(rng.integers(2, 7)), int(rng.integers(10, 50))
    truth = rng.integers(0, 4, size=(units, 1))
    ratings = np.where(
        rng.random((units, raters)) < 0.5, truth, rng.integers(0, 4, (units, raters))
    )
    table, _ = aggregate_raters(ratings)
    expected = sm_fleiss(table, method="fleiss")
    assert fleiss_kappa(ratings.tolist()) == pytest.approx(expected, abs=1e-12)


def test_fleiss_kappa_needs_the_same_number_of_raters() -> None:
    with pytest.raises(InvalidInput, match="same number"):
        fleiss_kappa([["a", "b"], ["a"]])
    assert math.isnan(fleiss_kappa([["a", "a"], ["a", "a"]]))
    assert fleiss_kappa([["a", "a"], ["b", "b"]]) == pytest.approx(1.0)


# -- spans ---------------------------------------------------------------------------------------


def test_span_f1_exact_and_overlap() -> None:
    gold = [(0, 5, "PER"), (10, 16, "LOC"), (20, 25, "ORG")]
    predicted = [(0, 5, "PER"), (11, 16, "LOC"), (20, 25, "PER"), (30, 33, "ORG")]
    exact = span_scores(predicted, gold, mode="exact")
    assert (exact.true_positives, exact.predicted, exact.gold) == (1, 4, 3)
    assert exact.f1 == pytest.approx(2 / 7)
    assert exact.precision == pytest.approx(0.25) and exact.recall == pytest.approx(1 / 3)
    overlap = span_scores(predicted, gold, mode="overlap")
    assert overlap.true_positives == 2  # the shifted LOC counts; the wrong label never does
    assert span_f1(predicted, gold, mode="overlap") == pytest.approx(4 / 7)


def test_span_overlap_matches_each_gold_span_once() -> None:
    gold = [(0, 10, "X")]
    predicted = [(0, 4, "X"), (5, 10, "X")]
    assert span_scores(predicted, gold, mode="overlap").true_positives == 1


def test_span_f1_over_documents_sums_counts() -> None:
    docs_pred = [[(0, 3, "A")], [], [(2, 4, "B")]]
    docs_gold = [[(0, 3, "A")], [(1, 2, "A")], [(2, 4, "B")]]
    scores = span_scores(docs_pred, docs_gold)
    assert (scores.true_positives, scores.predicted, scores.gold) == (2, 2, 3)
    assert math.isnan(span_f1([], []))
    with pytest.raises(InvalidInput):
        span_scores([[(0, 1, "A")]], [[(0, 1, "A")], []])
    with pytest.raises(InvalidInput, match="start"):
        span_f1([(5, 2, "A")], [(0, 1, "A")])
    with pytest.raises(InvalidInput, match="exact or overlap"):
        span_f1([], [], mode="fuzzy")  # type: ignore[arg-type]


@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.integers(1, 10), st.sampled_from("AB")).map(
            lambda t: (t[0], t[0] + t[1], t[2])
        ),
        min_size=1,
        max_size=10,
    )
)
def test_span_f1_of_spans_against_themselves_is_one(spans: list[tuple[int, int, str]]) -> None:
    assert span_f1(spans, spans, mode="exact") == pytest.approx(1.0)
    assert span_f1(spans, spans, mode="overlap") == pytest.approx(1.0)


def test_token_alpha_reads_spans_per_token() -> None:
    texts = ["Ada Lovelace met Babbage in London.", "Nothing here."]
    spans = {
        "ann": [[(0, 12, "PER"), (17, 24, "PER"), (28, 34, "LOC")], []],
        "bob": [[(0, 3, "PER"), (17, 24, "ORG"), (28, 34, "LOC")], []],
        "cy": [[(0, 12, "PER")], None],  # cy did not label the second document
    }
    units = span_token_units(texts, spans)
    assert len(units) == 7 + 3
    assert units[0] == {"ann": "PER", "bob": "PER", "cy": "PER"}
    assert units[1] == {"ann": "PER", "bob": "O", "cy": "PER"}  # "Lovelace"
    assert units[3] == {"ann": "PER", "bob": "ORG", "cy": "O"}  # "Babbage"
    assert units[7] == {"ann": "O", "bob": "O"}
    expected = krippendorff_alpha(units)
    assert span_token_alpha(texts, spans) == pytest.approx(expected)
    matrix = [[u.get(c) for u in units] for c in ("ann", "bob", "cy")]
    codes = {"O": 0, "PER": 1, "ORG": 2, "LOC": 3}
    numeric = [[None if v is None else codes[v] for v in row] for row in matrix]
    assert expected == pytest.approx(_reference(numeric, "nominal"))


# -- boxes ---------------------------------------------------------------------------------------


def test_box_matching_counts_matched_missing_extra_and_wrong_label() -> None:
    gold = [(0, 0, 10, 10, "car"), (20, 20, 10, 10, "dog"), (50, 50, 5, 5, "cat")]
    predicted = [
        (1, 1, 10, 10, "car"),  # IoU 0.68: matched
        (20, 20, 10, 10, "cat"),  # same box, wrong label
        (80, 80, 5, 5, "cat"),  # nowhere near: extra
    ]
    result = match_boxes(predicted, gold)
    assert result == BoxMatch(matched=1, missing=1, extra=1, wrong_label=1)
    assert result.precision == pytest.approx(1 / 3) and result.recall == pytest.approx(1 / 3)


def test_box_matching_prefers_the_same_label_and_respects_the_threshold() -> None:
    gold = [(0, 0, 10, 10, "car"), (2, 0, 10, 10, "truck")]
    predicted = [(1, 0, 10, 10, "truck")]
    assert match_boxes(predicted, gold) == BoxMatch(1, 1, 0, 0)
    shifted = [(6, 0, 10, 10, "car")]  # IoU with the car 4/16 = 0.25
    assert match_boxes(shifted, gold[:1]) == BoxMatch(0, 1, 1, 0)
    assert match_boxes(shifted, gold[:1], iou=0.25) == BoxMatch(1, 0, 0, 0)


def test_box_matching_is_one_to_one_across_images() -> None:
    gold = [[(0, 0, 10, 10, "a")], [(0, 0, 10, 10, "a")]]
    predicted = [[(0, 0, 10, 10, "a"), (0, 0, 10, 10, "a")], []]
    assert match_boxes(predicted, gold) == BoxMatch(matched=1, missing=1, extra=1, wrong_label=0)
    with pytest.raises(InvalidInput, match="positive size"):
        match_boxes([(0, 0, 0, 10, "a")], [(0, 0, 1, 1, "a")])
    with pytest.raises(InvalidInput, match="IoU"):
        match_boxes([], [], iou=0)


# -- intervals -----------------------------------------------------------------------------------


def test_with_interval_brackets_the_value_and_is_seeded() -> None:
    units = _as_units(KRIPPENDORFF_2011)
    first = with_interval(krippendorff_alpha, units, resamples=300, seed=3)
    again = with_interval(krippendorff_alpha, units, resamples=300, seed=3)
    assert isinstance(first, Estimate) and first == again
    assert first.n == 12
    assert first.low <= first.value <= first.high
    assert first.value == pytest.approx(krippendorff_alpha(units), abs=1e-6)
    assert first.high - first.low > 0.01  # twelve units do not pin alpha down


def test_with_interval_over_pairs_and_documents() -> None:
    rng = np.random.default_rng(0)
    a = list(rng.integers(0, 3, size=200))
    b = [x if rng.random() < 0.8 else int(rng.integers(0, 3)) for x in a]
    kappa = with_interval(
        lambda us: cohen_kappa(*zip(*us, strict=True)), list(zip(a, b, strict=True))
    )
    assert kappa.low < kappa.value < kappa.high
    assert kappa.value == pytest.approx(cohen_kappa(a, b), abs=1e-6)
    docs = [([(0, 2, "A")], [(0, 2, "A")]), ([(0, 2, "A")], [(1, 3, "A")])] * 10
    f1 = with_interval(lambda us: span_f1([p for p, _ in us], [g for _, g in us]), docs)
    assert f1.value == pytest.approx(0.5) and f1.low <= 0.5 <= f1.high
    boxes = [([(0, 0, 4, 4, "x")], [(0, 0, 4, 4, "x")])] * 5
    assert with_interval(lambda us: match_boxes(*zip(*us, strict=True)).f1, boxes).value == 1.0


@pytest.mark.parametrize("level", LEVELS)
def test_the_fast_alpha_interval_is_the_generic_one(level: str) -> None:
    rng = np.random.default_rng(5)
    units: dict[int, dict[str, int]] = {}
    for u in range(80):
        truth = int(rng.integers(1, 5))
        units[u] = {
            c: (truth if rng.random() < 0.7 else int(rng.integers(1, 5)))
            for c in ("a", "b", "c")
            if rng.random() < 0.8
        }
    generic = with_interval(
        lambda us: krippendorff_alpha(us, level=level),  # type: ignore[arg-type]
        units,
        resamples=200,
        seed=1,
    )
    fast = alpha_interval(units, level=level, resamples=200, seed=1)  # type: ignore[arg-type]
    assert fast.n == generic.n == 80
    assert (fast.value, fast.low, fast.high) == pytest.approx(
        (generic.value, generic.low, generic.high), abs=1e-6
    )
    assert math.isnan(alpha_interval({1: {"a": 1, "b": 1}}).value)


def test_no_runtime_code_imports_the_gpl_reference() -> None:
    import ast
    from pathlib import Path

    import garrison

    root = Path(garrison.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] == "krippendorff" for n in names), path
