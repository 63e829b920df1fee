"""Labeling functions: keyword and regular-expression rules, read from YAML, as a pre-label source.

A rules file is a YAML list; each rule votes one label on the records it matches and abstains
on the others::

    - name: fuel-words
      label: logistics
      keywords: [convoy, fuel, depot]     # whole words, case-insensitive unless case_sensitive
    - name: outage
      label: network
      regex: '\\b(outage|reboot)s?\\b'      # Python syntax, searched anywhere in the field
      fields: [text, subject]             # default [text]
      case_sensitive: false

A rule has ``keywords`` or ``regex``, not both. Anything else (an unknown key, a duplicate name,
a regular expression that does not compile, bad YAML) is :class:`InvalidInput` naming the rule.

:func:`apply_functions` gives the votes matrix (records x rules, ``None`` where a rule
abstains); :func:`lf_report` its coverage, overlap and conflict per rule and overall, the
majority vote over the rules, and accuracies on gold.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from garrison.core.errors import InvalidInput
from garrison.label.aggregate import GoldAccuracy, compare_on_gold, majority_vote

__all__ = [
    "LabelingFunction",
    "LfReport",
    "RuleStats",
    "Votes",
    "apply_functions",
    "lf_report",
    "load_functions",
    "parse_functions",
]

_KEYS = {"name", "label", "keywords", "regex", "fields", "case_sensitive"}


@dataclass(frozen=True)
class LabelingFunction:
    """One rule: votes ``label`` when ``pattern`` is found in one of ``fields``."""

    name: str
    label: str
    pattern: re.Pattern[str]
    fields: tuple[str, ...] = ("text",)
    keywords: tuple[str, ...] = ()
    regex: str | None = None

    def votes_on(self, record: str | Mapping[str, Any]) -> str | None:
        for name in self.fields:
            value = _field(record, name)
            if value is not None and self.pattern.search(value):
                return self.label
        return None


def _field(record: str | Mapping[str, Any], name: str) -> str | None:
    if isinstance(record, str):
        return record if name == "text" else None
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return "\n".join(str(v) for v in value)
    return str(value)


def _rule(entry: Any, position: int, names: set[str]) -> LabelingFunction:
    if not isinstance(entry, Mapping):
        raise InvalidInput(f"Labeling rule {position} is not a mapping with a name and a label.")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"Labeling rule {position} has no name.")
    where = f"Labeling rule {name!r}"
    unknown = sorted(set(map(str, entry)) - _KEYS)
    if unknown:
        raise InvalidInput(f"{where} has an unknown key {unknown[0]!r}.")
    if name in names:
        raise InvalidInput(f"{where} is defined twice.")
    label = entry.get("label")
    if not isinstance(label, str | int) or isinstance(label, bool) or not str(label).strip():
        raise InvalidInput(f"{where} has no label.")
    keywords, regex = entry.get("keywords"), entry.get("regex")
    if (keywords is None) == (regex is None):
        raise InvalidInput(f"{where} needs either keywords or regex (one of the two).")
    case_sensitive = entry.get("case_sensitive", False)
    if not isinstance(case_sensitive, bool):
        raise InvalidInput(f"{where} has a case_sensitive that is not true or false.")
    fields = entry.get("fields", ["text"])
    if (
        not isinstance(fields, list)
        or not fields
        or not all(isinstance(f, str) and f for f in fields)
    ):
        raise InvalidInput(f"{where} has fields that are not a list of field names.")
    flags = 0 if case_sensitive else re.IGNORECASE
    words: tuple[str, ...] = ()
    if keywords is not None:
        if (
            not isinstance(keywords, list)
            or not keywords
            or not all(isinstance(k, str) and k.strip() for k in keywords)
        ):
            raise InvalidInput(f"{where} has keywords that are not a list of words.")
        words = tuple(k.strip() for k in keywords)
        alternatives = "|".join(re.escape(k) for k in sorted(words, key=len, reverse=True))
        source = rf"(?<!\w)(?:{alternatives})(?!\w)"
    else:
        if not isinstance(regex, str) or not regex:
            raise InvalidInput(f"{where} has a regex that is not text.")
        source = regex
    try:
        pattern = re.compile(source, flags)
    except re.error as exc:
        raise InvalidInput(
            f"{where} has a regular expression that does not compile: {exc}."
        ) from exc
    return LabelingFunction(
        name=name,
        label=str(label),
        pattern=pattern,
        fields=tuple(fields),
        keywords=words,
        regex=regex if keywords is None else None,
    )


def parse_functions(text: str) -> list[LabelingFunction]:
    """The rules of a YAML document (see the module docstring)."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidInput(f"The labeling rules are not valid YAML{where}.") from exc
    if not isinstance(loaded, list) or not loaded:
        raise InvalidInput("The labeling rules are a YAML list of rules, with at least one.")
    rules: list[LabelingFunction] = []
    names: set[str] = set()
    for position, entry in enumerate(loaded, start=1):
        rule = _rule(entry, position, names)
        names.add(rule.name)
        rules.append(rule)
    return rules


def load_functions(path: str | Path) -> list[LabelingFunction]:
    """The rules of a YAML file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"The labeling rules file {path} cannot be read.") from exc
    return parse_functions(text)


@dataclass(frozen=True)
class Votes:
    """Each rule's vote on each record: ``matrix[record][rule]`` is a label or ``None``."""

    rules: tuple[str, ...]
    labels: tuple[str, ...]
    matrix: tuple[tuple[str | None, ...], ...]

    def by_record(self) -> dict[int, dict[str, str]]:
        """Record index -> {rule: label} for the rules that voted (majority vote's input)."""
        return {
            i: {rule: v for rule, v in zip(self.rules, row, strict=True) if v is not None}
            for i, row in enumerate(self.matrix)
        }


def apply_functions(
    rules: Sequence[LabelingFunction], texts: Sequence[str | Mapping[str, Any]]
) -> Votes:
    """The votes of ``rules`` on ``texts`` (each a text, or a record's fields with ``text``)."""
    return Votes(
        rules=tuple(r.name for r in rules),
        labels=tuple(r.label for r in rules),
        matrix=tuple(tuple(r.votes_on(t) for r in rules) for t in texts),
    )


@dataclass(frozen=True)
class RuleStats:
    """One rule (or ``overall``) on the records: shares of records it voted on (``coverage``),
    voted on with another rule (``overlap``), and voted on with another rule voting a different
    label (``conflict``); its accuracy on the gold records it voted on, when gold was given."""

    name: str
    coverage: float
    overlap: float
    conflict: float
    accuracy: GoldAccuracy | None = None


@dataclass(frozen=True)
class LfReport:
    """:func:`lf_report`'s result: per-rule and overall statistics, the majority vote over the
    rules (records no rule voted on are left out; ``ties`` as in :class:`MajorityVote`) and,
    with gold, the majority vote's accuracy."""

    records: int
    rules: tuple[RuleStats, ...]
    overall: RuleStats
    majority: dict[int, str]
    ties: dict[int, tuple[str, ...]]


def lf_report(votes: Votes, gold: Mapping[int, Any] | Sequence[Any] | None = None) -> LfReport:
    """Coverage, overlap and conflict of each rule and overall, and the majority vote over the
    rules; with ``gold`` (record index -> label, or a list aligned with the records, ``None``
    for records without gold) each rule's and the majority's accuracy with Wilson intervals."""
    n = len(votes.matrix)
    gold_map: dict[Hashable, Any] | None = None
    if gold is not None:
        items = gold.items() if isinstance(gold, Mapping) else enumerate(gold)
        gold_map = {i: g for i, g in items if g is not None}
    voted = [[v for v in row if v is not None] for row in votes.matrix]

    def share(count: int) -> float:
        return count / n if n else float("nan")

    stats = []
    for r, name in enumerate(votes.rules):
        mine = [i for i, row in enumerate(votes.matrix) if row[r] is not None]
        overlap = sum(len(voted[i]) > 1 for i in mine)
        conflict = sum(any(v != votes.matrix[i][r] for v in voted[i]) for i in mine)
        accuracy = None
        if gold_map is not None:
            rule_labels = {i: votes.matrix[i][r] for i in mine}
            accuracy = compare_on_gold({name: rule_labels}, gold_map)[name]
        stats.append(RuleStats(name, share(len(mine)), share(overlap), share(conflict), accuracy))
    majority = majority_vote(votes.by_record())
    overall_accuracy = None
    if gold_map is not None:
        overall_accuracy = compare_on_gold({"majority": majority}, gold_map)["majority"]
    overall = RuleStats(
        "overall",
        coverage=share(sum(bool(v) for v in voted)),
        overlap=share(sum(len(v) > 1 for v in voted)),
        conflict=share(sum(len(set(v)) > 1 for v in voted)),
        accuracy=overall_accuracy,
    )
    return LfReport(
        records=n,
        rules=tuple(stats),
        overall=overall,
        majority={cast(int, i): str(v) for i, v in majority.labels.items()},
        ties={cast(int, i): tuple(map(str, t)) for i, t in majority.ties.items()},
    )
