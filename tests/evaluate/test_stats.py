"""The evaluation statistics against reference implementations (scipy, statsmodels) on fixed
inputs, their behaviour over seeds (a planted difference detected at about the stated power, a
null difference at about the stated level), properties of every interval, and the gate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from garrison.core.errors import InvalidInput
from garrison.evaluate.stats import (
    Comparison,
    Estimate,
    adjust,
    bootstrap_mean,
    clopper_pearson_upper,
    clustered_se,
    design_effect,
    detectable_difference,
    estimate,
    gate,
    holm,
    mcnemar_exact,
    paired_compare,
    power_statement,
    slices,
    upper_bound_gate,
    wilson,
    zero_failure_bound,
)

RATES = [(0, 1), (0, 10), (10, 10), (1, 10), (37, 50), (0, 300), (300, 300), (3, 1000), (512, 1024)]


# -- rates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("successes", "n"), RATES)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_statsmodels(successes: int, n: int, confidence: float) -> None:
    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    got = wilson(successes, n, confidence)
    assert got.value == successes / n and got.n == n and got.method == "wilson"
    assert got.low == pytest.approx(max(0.0, low), abs=1e-12)
    assert got.high == pytest.approx(min(1.0, high), abs=1e-12)
    assert got.high - got.low > 0  # never zero width, 0/N and N/N included


@pytest.mark.parametrize(
    ("failures", "n"), [(1, 10), (3, 100), (5, 300), (2, 2000), (9, 10), (50, 100_000)]
)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_clopper_pearson_upper_matches_the_one_sided_beta_bound(
    failures: int, n: int, confidence: float
) -> None:
    # A two-sided interval at alpha = 2(1 - c) has the one-sided upper bound at c.
    _, high = proportion_confint(failures, n, alpha=2 * (1 - confidence), method="beta")
    got = clopper_pearson_upper(failures, n, confidence)
    assert got.high == pytest.approx(high, rel=1e-9)
    assert got.high == pytest.approx(scipy_stats.beta.ppf(confidence, failures + 1, n - failures))
    assert (got.low, got.value, got.method) == (0.0, failures / n, "clopper-pearson-upper")


def test_clopper_pearson_edges() -> None:
    assert clopper_pearson_upper(10, 10).high == 1.0
    zero = clopper_pearson_upper(0, 300)
    assert zero.high == pytest.approx(1 - 0.05 ** (1 / 300)) == zero_failure_bound(300)
    assert zero.high == pytest.approx(scipy_stats.beta.ppf(0.95, 1, 300))
    assert 0 < zero.high < 3 / 300  # the rule of three, a little under


@pytest.mark.parametrize(
    "call",
    [
        lambda: wilson(0, 0),
        lambda: wilson(11, 10),
        lambda: wilson(-1, 10),
        lambda: wilson(1, 10, confidence=1.0),
        lambda: clopper_pearson_upper(0, 0),
        lambda: clopper_pearson_upper(3, 2),
        lambda: zero_failure_bound(0),
        lambda: wilson(True, 10),  # type: ignore[arg-type]
    ],
)
def test_rates_fail_closed_on_bad_counts(call: object) -> None:
    with pytest.raises(InvalidInput):
        call()  # type: ignore[operator]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_rate_intervals_contain_their_value_and_have_width(pair: tuple[int, int]) -> None:
    successes, n = pair
    w = wilson(successes, n)
    assert 0.0 <= w.low <= w.value <= w.high <= 1.0
    assert w.high - w.low > 0
    upper = clopper_pearson_upper(successes, n)
    assert upper.value <= upper.high <= 1.0 and upper.high > 0
    if successes < n:  # one more failure never lowers the bound
        assert clopper_pearson_upper(successes + 1, n).high >= upper.high


# -- means and clusters ------------------------------------------------------------------------


def _clustered_sample(seed: int, groups: int = 12, size: int = 8) -> tuple[np.ndarray, list[str]]:
    """Values that share a document effect: strongly correlated within a document."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(0, 1.0, groups)
    clusters = [f"doc{g}" for g in range(groups) for _ in range(size)]
    values = np.repeat(effect, size) + rng.normal(0, 0.3, groups * size)
    return values, clusters


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clustered_se_matches_statsmodels_cluster_ols(seed: int) -> None:
    values, clusters = _clustered_sample(seed)
    groups = np.array([int(c[3:]) for c in clusters])
    fit = OLS(values, np.ones((values.size, 1))).fit(
        cov_type="cluster", cov_kwds={"groups": groups}
    )
    assert clustered_se(values, clusters) == pytest.approx(float(fit.bse[0]), rel=1e-10)
    # Unequal cluster sizes too.
    rng = np.random.default_rng(seed)
    uneven = rng.integers(0, 5, size=40)
    y = rng.normal(size=40)
    fit = OLS(y, np.ones((40, 1))).fit(cov_type="cluster", cov_kwds={"groups": uneven})
    assert clustered_se(y, list(uneven)) == pytest.approx(float(fit.bse[0]), rel=1e-10)


def test_clustered_se_needs_two_clusters() -> None:
    with pytest.raises(InvalidInput):
        clustered_se([1.0, 2.0, 3.0], ["d", "d", "d"])
    with pytest.raises(InvalidInput):
        clustered_se([1.0, 2.0, 3.0], ["d", "e"])


def test_bootstrap_is_seeded_and_near_the_normal_interval() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(0.6, 0.2, 400)
    first = bootstrap_mean(values, seed=3)
    assert first == bootstrap_mean(values, seed=3)
    assert first != bootstrap_mean(values, seed=4)
    assert first.method == "bootstrap" and first.n == 400
    se = values.std(ddof=1) / math.sqrt(values.size)
    assert first.low == pytest.approx(values.mean() - 1.96 * se, abs=0.25 * se)
    assert first.high == pytest.approx(values.mean() + 1.96 * se, abs=0.25 * se)


def test_the_cluster_bootstrap_resamples_documents() -> None:
    values, clusters = _clustered_sample(0)
    items = bootstrap_mean(values)
    docs = bootstrap_mean(values, clusters=clusters)
    assert docs.method == "cluster-bootstrap" and docs.clusters == 12
    assert docs.value == items.value
    # Correlated items within a document: resampling documents widens the interval to about
    # the cluster-robust normal interval.
    assert docs.high - docs.low > 2 * (items.high - items.low)
    se = clustered_se(values, clusters)
    assert (docs.high - docs.low) == pytest.approx(2 * 1.96 * se, rel=0.3)


def test_estimate_picks_the_interval_by_kind() -> None:
    binary = [1.0] * 30 + [0.0] * 10
    assert estimate(binary, binary=True) == wilson(30, 40)
    numeric = estimate([0.2, 0.4, 0.9, 0.5], binary=False)
    assert numeric.method == "bootstrap"
    with pytest.raises(InvalidInput):
        estimate([0.0, 0.5, 1.0], binary=True)
    for bad in ([], [float("nan"), 1.0], [float("inf")]):
        with pytest.raises(InvalidInput):
            estimate(bad, binary=False)
    with pytest.raises(InvalidInput):
        estimate([1.0, 0.0], binary=True, clusters=["a"])


def test_clustered_rates_use_the_design_effect() -> None:
    # Whole documents right or wrong: a document is one observation, not eight.
    docs = [1.0] * 5 + [0.0] * 3
    values = [v for v in docs for _ in range(8)]
    clusters = [f"d{i}" for i in range(8) for _ in range(8)]
    plain = estimate(values, binary=True)
    clustered = estimate(values, binary=True, clusters=clusters)
    assert clustered.method == "wilson-cluster" and clustered.clusters == 8
    assert design_effect(values, clusters) == pytest.approx(8 * 8 / 7)  # CR1 of 8 documents
    assert clustered.effective_n == pytest.approx(64 / (64 / 7))
    assert clustered.value == plain.value
    assert clustered.high - clustered.low > 2 * (plain.high - plain.low)
    # Independent-looking documents: no inflation (deff is at least 1, never shrinks n).
    mixed = [1.0, 0.0] * 32
    assert estimate(mixed, binary=True, clusters=clusters).effective_n == pytest.approx(64.0)
    # Every item its own document: independent items, the plain Wilson interval.
    own = [str(i) for i in range(64)]
    assert estimate(values, binary=True, clusters=own) == plain
    # 0/N with clusters keeps a positive width.
    zero = estimate([0.0] * 64, binary=True, clusters=clusters)
    assert zero.low == 0.0 and zero.high > 0.0


def test_slices_give_the_same_intervals_per_slice() -> None:
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    keys = ["SECRET", "U", "U", "SECRET", "U", "U"]
    got = slices(values, keys, binary=True)
    assert list(got) == ["SECRET", "U"]
    assert got["SECRET"] == wilson(2, 2) and got["U"] == wilson(2, 4)
    clusters = ["a", "b", "b", "c", "c", "d"]
    clustered = slices(values, keys, binary=True, clusters=clusters)
    assert clustered["U"] == estimate(
        [0.0, 1.0, 0.0, 1.0], binary=True, clusters=["b", "b", "c", "d"]
    )
    with pytest.raises(InvalidInput):
        slices(values, keys[:-1], binary=True)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=60),
    st.integers(1, 6),
)
def test_mean_intervals_contain_their_value(values: list[float], groups: int) -> None:
    clusters = [str(i % groups) for i in range(len(values))]
    for got in (
        bootstrap_mean(values, resamples=200),
        bootstrap_mean(values, clusters=clusters, resamples=200),
        estimate([float(v > 0.5) for v in values], binary=True, clusters=clusters),
    ):
        assert got.low <= got.value <= got.high
    rate = estimate([float(v > 0.5) for v in values], binary=True, clusters=clusters)
    assert rate.high - rate.low > 0


# -- comparisons -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a_only", "b_only"), [(0, 0), (0, 1), (3, 12), (12, 3), (5, 5), (0, 20), (40, 61), (200, 170)]
)
def test_mcnemar_exact_matches_statsmodels(a_only: int, b_only: int) -> None:
    expected = mcnemar([[50, a_only], [b_only, 30]], exact=True).pvalue
    if a_only + b_only == 0:
        expected = 1.0  # statsmodels gives nan for no discordant pair: nothing to test
    assert mcnemar_exact(a_only, b_only) == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_holm_matches_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.2, size=7)
    p[3] = p[1]  # a tie
    names = [f"m{i}" for i in range(p.size)]
    got = holm(dict(zip(names, p, strict=True)))
    reference = multipletests(p, method="holm")[1]
    assert list(got) == names  # the caller's order
    assert [got[n] for n in names] == pytest.approx(list(reference), rel=1e-12)
    assert all(0 <= v <= 1 for v in got.values())
    assert holm({}) == {}
    with pytest.raises(InvalidInput):
        holm({"x": 1.5})


def test_paired_compare_binary_uses_mcnemar_on_the_discordant_pairs() -> None:
    a = [1, 1, 1, 0, 0, 1, 0, 1, 1, 0] * 5
    b = [1, 1, 0, 1, 1, 1, 1, 1, 1, 0] * 5
    got = paired_compare("exact", a, b, binary=True)
    assert got.test == "mcnemar-exact" and got.n == 50
    assert got.p_value == mcnemar_exact(5, 15)
    assert got.difference.value == pytest.approx(np.mean(b) - np.mean(a))
    assert got.difference.low <= got.difference.value <= got.difference.high
    assert got.a == wilson(30, 50) and got.b == wilson(40, 50)
    assert got.p_adjusted is None and got.higher_is_better
    assert got.to_json()["difference"]["method"] == "paired-bootstrap"
    # Items sharing a source document: McNemar would treat them as independent.
    clusters = [f"d{i // 5}" for i in range(50)]
    clustered = paired_compare("exact", a, b, binary=True, clusters=clusters)
    assert clustered.test == "paired-bootstrap"
    assert clustered.difference.method == "paired-cluster-bootstrap"
    assert clustered.difference.clusters == 10
    # Each item its own cluster is the independent case.
    own = paired_compare("exact", a, b, binary=True, clusters=[str(i) for i in range(50)])
    assert own.test == "mcnemar-exact"


def test_paired_compare_keeps_the_pairing() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.3, 80)
    b = a + 0.05 + rng.normal(0, 0.01, 80)  # B is a little better on every item
    paired = paired_compare("f1", a, b, binary=False)
    assert paired.test == "paired-bootstrap"
    assert paired.difference.low > 0.04 and paired.p_value < 0.01
    # Unpaired, the two intervals overlap widely: only the pairing shows the difference.
    assert paired.a.high > paired.b.low


def test_paired_compare_fails_closed() -> None:
    with pytest.raises(InvalidInput):
        paired_compare("m", [1, 0, 1], [1, 0], binary=True)
    with pytest.raises(InvalidInput):
        paired_compare("m", [], [], binary=False)
    with pytest.raises(InvalidInput):
        paired_compare("m", [0.5], [1.0], binary=True)
    with pytest.raises(InvalidInput):
        paired_compare("m", [1.0, 0.0], [1.0, float("nan")], binary=False)


def test_adjust_fills_holm_across_the_metrics_of_a_comparison() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(0.5, 0.2, 50)
    comparisons = [
        paired_compare(m, a, a + shift + rng.normal(0, 0.05, 50), binary=False)
        for m, shift in (("f1", 0.0), ("rouge-l", 0.03), ("chrf", 0.1))
    ]
    adjusted = adjust(comparisons)
    reference = multipletests([c.p_value for c in comparisons], method="holm")[1]
    assert [c.p_adjusted for c in adjusted] == pytest.approx(list(reference))
    assert [c.metric for c in adjusted] == ["f1", "rouge-l", "chrf"]
    assert all(c.p_adjusted is not None and c.p_adjusted >= c.p_value for c in adjusted)


def test_a_planted_difference_is_detected_at_about_the_stated_power() -> None:
    """At the difference the power formula names, McNemar's exact test detects it in about
    80% of suites (a little less: the exact test is conservative); with no difference it
    rejects in about 5%."""
    n, discordance = 200, 0.3
    delta = detectable_difference(n, discordance=discordance)
    assert delta == pytest.approx(2.8016 * math.sqrt(0.3 / 200), rel=1e-3)
    rates = {}
    for planted in (delta, 0.0):
        hits = 0
        for seed in range(300):
            u = np.random.default_rng(seed).random(n)
            b_only = u < discordance / 2 + planted / 2
            a_only = ~b_only & (u < discordance)
            hits += mcnemar_exact(int(a_only.sum()), int(b_only.sum())) < 0.05
        rates[planted] = hits / 300
    assert 0.68 <= rates[delta] <= 0.88
    assert rates[0.0] <= 0.08


def _p(a: np.ndarray, b: np.ndarray, seed: int) -> float:
    return paired_compare("m", a, b, binary=False, resamples=400, seed=seed).p_value


def test_the_paired_bootstrap_holds_its_level_and_finds_a_real_difference() -> None:
    null = planted = 0
    for seed in range(150):
        rng = np.random.default_rng(seed)
        a = rng.normal(0.5, 0.2, 60)
        same = a + rng.normal(0, 0.2, 60)
        better = a + 0.1 + rng.normal(0, 0.2, 60)
        null += _p(a, same, seed) < 0.05
        planted += _p(a, better, seed) < 0.05
    assert null / 150 <= 0.09
    assert planted / 150 >= 0.9


# -- power -------------------------------------------------------------------------------------


def test_detectable_difference_formulas() -> None:
    z = scipy_stats.norm.ppf(0.975) + scipy_stats.norm.ppf(0.8)
    assert detectable_difference(400) == pytest.approx(z * math.sqrt(0.5 / 400))
    assert detectable_difference(400, paired=False, baseline=0.8) == pytest.approx(
        z * math.sqrt(2 * 0.8 * 0.2 / 400)
    )
    assert detectable_difference(400, discordance=0.1) == pytest.approx(z * math.sqrt(0.1 / 400))
    # More items, smaller detectable differences; more agreement, smaller still.
    assert detectable_difference(1600) == pytest.approx(detectable_difference(400) / 2)
    assert detectable_difference(400, discordance=0.1) < detectable_difference(400)
    for bad in ({"baseline": 0.0}, {"alpha": 1.0}, {"power": 0.0}, {"discordance": 0.0}):
        with pytest.raises(InvalidInput):
            detectable_difference(100, **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        detectable_difference(0)


def test_power_statements() -> None:
    assert power_statement(300, 0) == "0 failures in 300 -> rate below 1.0% at 95%"
    assert power_statement(300, 1) == "1 failure in 300 -> rate below 1.6% at 95%"
    assert power_statement(300) == "this suite detects a difference of 11.4 points at 80% power"
    assert power_statement(1000, discordance=0.1).endswith("2.8 points at 80% power")


# -- the gate ----------------------------------------------------------------------------------


def _comparison(low: float, high: float, p: float, *, higher: bool = True) -> Comparison:
    e = Estimate(0.8, 0.75, 0.85, 300, "wilson")
    d = Estimate((low + high) / 2, low, high, 300, "paired-bootstrap")
    return Comparison("accuracy", e, e, d, "mcnemar-exact", p, None, 300, higher)


def test_non_inferiority_gate() -> None:
    assert gate(_comparison(-0.01, 0.03, 0.4), mode="non-inferiority", margin=0.02).passed
    failed = gate(_comparison(-0.03, 0.01, 0.4), mode="non-inferiority", margin=0.02)
    assert not failed.passed and failed.rule == "non-inferiority (margin 0.02)"
    assert "-0.0300" in failed.reason
    # Margin 0: B must not be worse at the lower end.
    assert not gate(_comparison(-0.001, 0.05, 0.1), mode="non-inferiority").passed
    # Lower is better (a leak rate, a latency): B's improvement is a - b.
    assert gate(
        _comparison(-0.05, 0.01, 0.1, higher=False), mode="non-inferiority", margin=0.02
    ).passed
    worse = _comparison(-0.01, 0.05, 0.1, higher=False)
    assert not gate(worse, mode="non-inferiority", margin=0.02).passed


def test_superiority_gate_needs_the_interval_and_the_adjusted_p() -> None:
    assert gate(_comparison(0.01, 0.05, 0.01), mode="superiority").passed
    assert not gate(_comparison(-0.01, 0.05, 0.01), mode="superiority").passed
    assert not gate(_comparison(0.01, 0.05, 0.06), mode="superiority").passed
    adjusted = adjust([_comparison(0.01, 0.05, 0.03), _comparison(0.01, 0.05, 0.04)])
    verdict = gate(adjusted[0], mode="superiority")  # Holm: 0.06 and 0.06
    assert not verdict.passed and "adjusted p" in verdict.reason
    assert gate(_comparison(-0.05, -0.01, 0.01, higher=False), mode="superiority").passed


def test_gate_rejects_bad_rules() -> None:
    with pytest.raises(InvalidInput):
        gate(_comparison(0.0, 0.1, 0.1), mode="non-inferiority", margin=-0.1)
    with pytest.raises(InvalidInput):
        gate(_comparison(0.0, 0.1, 0.1), mode="equivalence")  # type: ignore[arg-type]


def test_upper_bound_gate_on_leak_rates() -> None:
    passed = upper_bound_gate(clopper_pearson_upper(0, 300), 0.02)
    assert passed.passed and passed.rule == "upper bound below 0.02"
    assert not upper_bound_gate(clopper_pearson_upper(0, 100), 0.02).passed  # 3.0% bound
    assert not upper_bound_gate(clopper_pearson_upper(2, 300), 0.02).passed
    with pytest.raises(InvalidInput):
        upper_bound_gate(clopper_pearson_upper(0, 300), 0.0)


def test_estimates_print_and_serialize() -> None:
    e = Estimate(0.8125, 0.77125, 0.848, 400, "wilson")
    assert str(e) == "0.812 [0.771, 0.848] (n=400)"
    assert e.to_json() == {
        "value": 0.8125, "low": 0.77125, "high": 0.848, "n": 400, "method": "wilson",
        "confidence": 0.95,
    }  # fmt: skip
    clustered = estimate([1.0, 0.0, 1.0, 1.0], binary=True, clusters=["a", "a", "b", "c"])
    assert clustered.to_json()["clusters"] == 3 and "effective_n" in clustered.to_json()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=80),
    st.integers(1, 10),
)
def test_paired_comparisons_are_well_formed(pairs: list[tuple[bool, bool]], groups: int) -> None:
    a = [float(x) for x, _ in pairs]
    b = [float(y) for _, y in pairs]
    clusters = [str(i % groups) for i in range(len(pairs))]
    for got in (
        paired_compare("m", a, b, binary=True, resamples=200),
        paired_compare("m", a, b, binary=True, clusters=clusters, resamples=200),
        paired_compare("m", a, b, binary=False, resamples=200),
    ):
        d = got.difference
        assert d.low <= d.value <= d.high and 0.0 <= got.p_value <= 1.0
        assert d.value == pytest.approx(sum(b) / len(b) - sum(a) / len(a))
        assert got.a.low <= got.a.value <= got.a.high
        if got.test == "mcnemar-exact" or got.a.method.startswith("wilson"):
            assert got.a.high > got.a.low  # rates never collapse to a point


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=12))
def test_holm_is_monotone_and_never_below_the_raw_p(ps: list[float]) -> None:
    got = holm({str(i): p for i, p in enumerate(ps)})
    for i, p in enumerate(ps):
        assert p <= got[str(i)] <= 1.0 or got[str(i)] == 1.0
    ordered = sorted(range(len(ps)), key=lambda i: ps[i])
    adjusted = [got[str(i)] for i in ordered]
    assert adjusted == sorted(adjusted)
