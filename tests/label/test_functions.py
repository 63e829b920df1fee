"""Labeling functions: strict YAML rules (each bad rule named), keyword and regex matching over
fields, the votes matrix, and the coverage / overlap / conflict / gold report."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from statsmodels.stats.proportion import proportion_confint

from garrison.core.errors import InvalidInput
from garrison.label import apply_functions, lf_report, load_functions, parse_functions

RULES = """
- name: fuel
  label: logistics
  keywords: [fuel, convoy, "supply depot"]
- name: outage
  label: network
  regex: '\\b(outage|reboot)s?\\b'
- name: storm
  label: weather
  keywords: [storm]
  fields: [text, subject]
- name: convoy-weather
  label: weather
  keywords: [convoy]
  case_sensitive: true
"""

TEXTS = [
    "Fuel for the Convoy arrives Tuesday.",  # fuel; convoy-weather does not (case)
    "The convoy waits out the storm.",  # fuel, storm, convoy-weather: conflict
    "Router outages overnight.",  # outage
    {"text": "Nothing of note.", "subject": "Storm warning"},  # storm, through the subject
    "Refueling is not fuel-free.",  # fuel (whole word "fuel" in fuel-free)
    "Supply Depot inventory.",  # fuel (a phrase keyword)
    "nothing at all",  # no vote
]


def test_rules_parse_with_their_defaults() -> None:
    rules = parse_functions(RULES)
    assert [r.name for r in rules] == ["fuel", "outage", "storm", "convoy-weather"]
    assert rules[0].keywords == ("fuel", "convoy", "supply depot") and rules[0].regex is None
    assert rules[1].regex is not None and rules[1].fields == ("text",)
    assert rules[2].fields == ("text", "subject")


def test_votes_follow_keywords_regexes_fields_and_case() -> None:
    votes = apply_functions(parse_functions(RULES), TEXTS)
    assert votes.rules == ("fuel", "outage", "storm", "convoy-weather")
    assert votes.matrix == (
        ("logistics", None, None, None),
        ("logistics", None, "weather", "weather"),
        (None, "network", None, None),
        (None, None, "weather", None),
        ("logistics", None, None, None),
        ("logistics", None, None, None),
        (None, None, None, None),
    )
    assert votes.by_record()[1] == {
        "fuel": "logistics",
        "storm": "weather",
        "convoy-weather": "weather",
    }


def test_keywords_match_whole_words_only() -> None:
    rules = parse_functions("- {name: r, label: x, keywords: [cat]}")
    assert apply_functions(rules, ["concatenate", "a cat.", "CAT!", "cats"]).matrix == (
        (None,),
        ("x",),
        ("x",),
        (None,),
    )


def test_the_report_counts_coverage_overlap_and_conflict() -> None:
    votes = apply_functions(parse_functions(RULES), TEXTS)
    report = lf_report(votes)
    by_name = {r.name: r for r in report.rules}
    n = len(TEXTS)
    assert report.records == n
    assert by_name["fuel"].coverage == pytest.approx(4 / n)
    assert by_name["fuel"].overlap == pytest.approx(1 / n)
    assert by_name["fuel"].conflict == pytest.approx(1 / n)
    assert by_name["storm"].coverage == pytest.approx(2 / n)
    assert by_name["storm"].overlap == pytest.approx(1 / n)
    assert by_name["storm"].conflict == pytest.approx(1 / n)
    assert by_name["outage"].overlap == 0 and by_name["outage"].conflict == 0
    assert report.overall.coverage == pytest.approx(6 / n)
    assert report.overall.overlap == pytest.approx(1 / n)
    assert report.overall.conflict == pytest.approx(1 / n)
    # Majority over the rules: record 1 has two weather votes against one logistics vote.
    assert report.majority == {
        0: "logistics",
        1: "weather",
        2: "network",
        3: "weather",
        4: "logistics",
        5: "logistics",
    }
    assert report.ties == {}
    assert by_name["fuel"].accuracy is None


def test_the_report_scores_rules_and_their_majority_on_gold() -> None:
    votes = apply_functions(parse_functions(RULES), TEXTS)
    gold = ["logistics", "logistics", "network", "weather", "other", "logistics", None]
    report = lf_report(votes, gold)
    by_name = {r.name: r for r in report.rules}
    fuel = by_name["fuel"].accuracy
    assert fuel is not None and (fuel.correct, fuel.n) == (3, 4)
    low, high = proportion_confint(3, 4, method="wilson")
    assert (fuel.low, fuel.high) == (pytest.approx(low), pytest.approx(high))
    weather = by_name["convoy-weather"].accuracy
    assert weather is not None and (weather.correct, weather.n) == (0, 1)
    majority = report.overall.accuracy
    assert majority is not None and (majority.correct, majority.n) == (4, 6)
    assert majority.coverage == pytest.approx(1.0)  # gold covers six records, all voted on
    as_map = lf_report(votes, dict(enumerate(gold)))
    assert as_map.overall.accuracy == majority


def test_the_report_of_nothing_is_undefined_not_zero() -> None:
    votes = apply_functions(parse_functions(RULES), [])
    report = lf_report(votes)
    assert math.isnan(report.overall.coverage) and report.majority == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- name: a\n  label: x\n  keywords: [k\n", "not valid YAML"),
        ("{name: a}", "a YAML list"),
        ("[]", "a YAML list"),
        ("- just a string", "rule 1 is not a mapping"),
        ("- label: x\n  keywords: [k]", "rule 1 has no name"),
        (
            "- {name: bad-regex, label: x, regex: '(unclosed'}",
            "'bad-regex' has a regular expression",
        ),
        ("- {name: both, label: x, regex: a, keywords: [b]}", "'both' needs either"),
        ("- {name: neither, label: x}", "'neither' needs either"),
        ("- {name: nolabel, keywords: [k]}", "'nolabel' has no label"),
        ("- {name: typo, label: x, keyword: [k]}", "'typo' has an unknown key 'keyword'"),
        ("- {name: kw, label: x, keywords: k}", "'kw' has keywords that are not a list"),
        ("- {name: kw, label: x, keywords: []}", "'kw' has keywords that are not a list"),
        ("- {name: f, label: x, keywords: [k], fields: text}", "'f' has fields"),
        ("- {name: c, label: x, keywords: [k], case_sensitive: maybe}", "'c' has a case_sensitive"),
        ("- {name: r, label: x, regex: 3}", "'r' has a regex that is not text"),
        (
            "- {name: twice, label: x, keywords: [a]}\n- {name: twice, label: y, keywords: [b]}",
            "'twice' is defined twice",
        ),
    ],
)
def test_bad_rules_are_refused_naming_the_rule(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        parse_functions(text)


def test_rules_load_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    assert [r.name for r in load_functions(path)] == ["fuel", "outage", "storm", "convoy-weather"]
    with pytest.raises(InvalidInput, match="cannot be read"):
        load_functions(tmp_path / "absent.yaml")
