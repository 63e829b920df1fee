"""The deployment gate: paired comparisons of two runs on one suite, and their verdicts.

Three scripted generators answer a generation suite of 60 items: ``good`` always right,
``twin`` exactly like it (a null difference), ``worse`` wrong on every third item (a planted
difference of a third).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from garrison.core.errors import InvalidInput, NotFound
from garrison.evaluate import Runs, RunSummary, SystemSpec
from garrison.evaluate._suite_items import NewItem
from garrison.evaluate._suites import Suites
from garrison.models import register_endpoint
from garrison.security.markings import parse_marking
from garrison.store.workspace import Workspace
from tests.evaluate.run_fixtures import qa_suite, ws  # noqa: F401
from tests.models.openai_server import serve

M = parse_marking
N = 60
SCORERS = ["normalized", "token-f1"]


def _word(messages: list[dict[str, str]]) -> int:
    last = messages[-1]["content"].rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1  # -1: the registration's probe


def good(messages: list[dict[str, str]]) -> str:
    return f"Signal {_word(messages)} acknowledged."


def worse(messages: list[dict[str, str]]) -> str:
    i = _word(messages)
    return "No idea." if i % 3 == 0 else f"Signal {i} acknowledged."


@pytest.fixture(scope="module")
def gens(ws: Workspace) -> Iterator[dict[str, str]]:  # noqa: F811
    with ExitStack() as stack:
        out = {}
        for name, reply in (("good", good), ("twin", good), ("worse", worse)):
            server = stack.enter_context(serve(reply=reply))
            version = register_endpoint(
                ws.session("ada"),
                f"gate-{name}",
                base_url=server.base_url,
                model="tiny",
                accredited=M("SECRET"),
            )
            out[name] = version.ref
        yield out


@pytest.fixture(scope="module")
def runs(ws: Workspace, gens: dict[str, str]) -> dict[str, RunSummary]:  # noqa: F811
    session = ws.session("ted")
    items = [
        NewItem(
            input={"prompt": f"Acknowledge signal {i}"},
            expected={"reference": f"Signal {i} acknowledged."},
            marking=M("CONFIDENTIAL" if i % 2 else "UNCLASSIFIED"),
            cluster=f"doc-{i // 2}",
        )
        for i in range(N)
    ]
    suite = Suites(session).create("signals", "generation", items)
    return {
        name: Runs(session).start(suite.ref, SystemSpec("generator", ref), scorers=SCORERS)
        for name, ref in gens.items()
    }


def test_planted_difference_is_detected(ws: Workspace, runs: dict[str, RunSummary]) -> None:  # noqa: F811
    r = Runs(ws.session("ted"))
    report = r.compare(runs["good"].ref, runs["worse"].ref, metrics=["normalized"])
    (c,) = report.comparisons
    assert c.n == N
    assert c.difference.value == pytest.approx(-1 / 3)
    assert c.difference.high < 0
    # Two items share each source document: McNemar would take them as independent.
    assert c.test == "paired-bootstrap" and c.difference.clusters == N // 2
    assert c.p_value < 0.01
    (verdict,) = report.verdicts
    assert not verdict.passed  # B is worse: not non-inferior
    assert report.marking == M("CONFIDENTIAL")
    # The other way round, the better system is superior.
    better = r.compare(runs["worse"].ref, runs["good"].ref, mode="superiority")
    assert all(v.passed for v in better.verdicts)
    assert {c.metric for c in better.comparisons} == set(SCORERS)
    # Holm across the two metrics: adjusted p-values are never below the raw ones.
    for c in better.comparisons:
        assert c.p_adjusted is not None and c.p_adjusted >= c.p_value


def test_null_difference_is_not(ws: Workspace, runs: dict[str, RunSummary]) -> None:  # noqa: F811
    r = Runs(ws.session("ted"))
    report = r.compare(runs["good"].ref, runs["twin"].ref)
    for c in report.comparisons:
        assert c.difference.value == 0.0
    # Non-inferiority within a margin passes; superiority does not.
    assert all(
        v.passed for v in r.compare(runs["good"].ref, runs["twin"].ref, margin=0.05).verdicts
    )
    sup = r.compare(runs["good"].ref, runs["twin"].ref, mode="superiority")
    assert not any(v.passed for v in sup.verdicts)


def test_upper_bound_gate(ws: Workspace, runs: dict[str, RunSummary]) -> None:  # noqa: F811
    r = Runs(ws.session("ted"))
    # "normalized" of the good system is 60/60: as a rate its exact upper bound is 1.
    report = r.compare(runs["worse"].ref, runs["good"].ref, metrics=["normalized"], upper_below=0.5)
    assert not report.verdicts[0].passed


def test_compare_needs_one_suite_and_readable_runs(
    ws: Workspace,  # noqa: F811
    runs: dict[str, RunSummary],
) -> None:
    ted = Runs(ws.session("ted"))
    other = ted.start(qa_suite(ws, "gate-other").ref, SystemSpec("assistant", "assistant"))
    with pytest.raises(InvalidInput):
        ted.compare(runs["good"].ref, other.ref)
    with pytest.raises(InvalidInput):
        ted.compare(runs["good"].ref, runs["worse"].ref, metrics=["bleu"])
    # uma (U) does not dominate the runs (C): both look missing.
    with pytest.raises(NotFound):
        Runs(ws.session("uma")).compare(runs["good"].ref, runs["worse"].ref)
