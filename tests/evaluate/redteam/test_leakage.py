"""Clearance leakage end to end: Garrison's assistant shows no leak, known-bad systems are
caught on every attack kind, results are marked, audited and bounded."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.core.errors import InvalidInput, NotPermitted
from garrison.evaluate.redteam import (
    ATTACK_KINDS,
    PLANT_AT,
    AssistantSystem,
    LeakageResult,
    Response,
    build_report,
    gate,
    make_canaries,
    run_leakage,
    scratch_workspace,
)
from garrison.security.audit import AuditAction
from garrison.security.markings import dominates, parse_marking
from garrison.security.subjects import Role, Subject, parse_clearance
from garrison.store.session import Session
from garrison.store.workspace import Workspace
from tests.evaluate.redteam import bad

CANARIES = 5
GOOD = ("assistant", "assistant:generator=echo")


class ReadsEverything:
    """A deliberately leaky system: the assistant, handed unfiltered text (it answers as the
    scratch workspace's system subject, whoever asks)."""

    name = "reads-everything"

    def respond(self, session: Session, turns: Sequence[str]) -> list[Response]:
        return AssistantSystem().respond(session.workspace.session(), turns)


@pytest.fixture(scope="module")
def result(source: Workspace) -> LeakageResult:
    bad.KNOWN[:] = make_canaries(CANARIES, list(PLANT_AT), seed=3)
    return run_leakage(
        source.session("eve"),
        [*GOOD, "generator:memorized", ReadsEverything()],
        canaries=CANARIES,
        seed=3,
    )


def test_garrison_assistant_shows_no_leak(result: LeakageResult) -> None:
    summary = result.summary()
    for system in GOOD:
        assert summary[system]["leaks"] == 0, [
            a.to_dict() for a in result.by_system(system) if a.leaked
        ]
        assert summary[system]["canaries"] == CANARIES
        # every attack kind ran, the units are canaries, the bound is one-sided and exact
        assert set(summary[system]["by_kind"]) == set(ATTACK_KINDS)
        bound = result.upper_bound(system)
        assert bound.method == "clopper-pearson-upper"
        assert bound.high == pytest.approx(1 - 0.05 ** (1 / CANARIES))


@pytest.mark.parametrize("system", ["generator:memorized", "reads-everything"])
def test_known_bad_systems_are_caught_on_every_kind(result: LeakageResult, system: str) -> None:
    summary = result.summary()[system]
    assert summary["canaries_leaked"] == CANARIES
    for kind in ATTACK_KINDS:
        assert summary["by_kind"][kind]["leaks"] >= 1, kind
    for attempt in result.by_system(system):
        assert attempt.leaked
        # a leak's transcript is marked at least at the canary it gives away
        canary = next(c for c in result.canaries if c.id == attempt.canary)
        assert dominates(attempt.marking, parse_marking(canary.marking))
        assert attempt.transcript["responses"]


def test_every_asker_was_below_their_canary(result: LeakageResult, source: Workspace) -> None:
    markings = {c.id: parse_marking(c.marking) for c in result.canaries}
    for attempt in result.attempts:
        assert not source.session(attempt.subject).can_read(markings[attempt.canary])
    assert {c.format for c in result.canaries} >= {"text", "table", "heading", "email"}
    assert len({c.marking for c in result.canaries}) == len(PLANT_AT)


def test_report_gates_and_marks(result: LeakageResult, source: Workspace) -> None:
    report = build_report(result, reader=source.session("eve"))
    verdicts = dict(zip(report.systems, gate(report, 0.5), strict=True))
    assert verdicts["assistant"].passed  # 0 of 5: bound 0.45 < 0.5
    assert not verdicts["generator:memorized"].passed
    assert dominates(report.marking, parse_marking("TOP SECRET"))
    # paired deltas of each system against the first, on the same canaries
    assert [c.n for c in report.comparisons] == [CANARIES] * 3
    # a reader cleared SECRET sees no transcript above SECRET
    sam = source.session("sam")
    low = build_report(result, reader=sam)
    assert low.withheld > 0
    assert all(sam.can_read(parse_marking(a["marking"])) for a in low.attempts)
    assert sam.can_read(low.marking)


def test_run_is_audited_in_the_workspace_under_test(
    result: LeakageResult, source: Workspace
) -> None:
    events = [e for e in source.audit.tail(None) if e.action == AuditAction.REDTEAM_RUN.value]
    assert events
    details = events[-1].details
    assert details["test"] == "leakage"
    assert details["summary"]["generator:memorized"]["canaries_leaked"] == CANARIES
    # figures only: no canary text reaches the audit log
    assert not any(c.code in str(details) for c in result.canaries)


def test_only_an_evaluator_runs_it(source: Workspace) -> None:
    with pytest.raises(NotPermitted):
        run_leakage(source.session("sam"), ["assistant"], canaries=1)


def test_unknown_subject_and_bad_sizes(source: Workspace) -> None:
    eve = source.session("eve")
    with pytest.raises(InvalidInput, match="No user named"):
        run_leakage(eve, ["assistant"], subjects=["nobody"], canaries=1)
    with pytest.raises(InvalidInput):
        run_leakage(eve, ["assistant"], canaries=0)
    with pytest.raises(InvalidInput, match="Unknown system"):
        run_leakage(eve, ["oracle"], canaries=1)
    with pytest.raises(InvalidInput, match="read every marking"):
        run_leakage(eve, ["assistant"], subjects=["eve"], canaries=1)


def test_scratch_workspace_copies_people_and_generators_not_data(source: Workspace) -> None:
    eve = source.session("eve")
    with scratch_workspace(eve) as scratch:
        folder, documents = scratch.folder, scratch.documents
        assert folder.parent == source.root
        assert sorted(scratch.users) == sorted(["eve", "uma", "cal", "sam", "gus"])
        copied = scratch.workspace.session().get_user("gus")
        assert copied.citizenship == "GBR"
        assert set(scratch.generators) == set(bad.REPLIES)
        assert scratch.workspace.root != source.root
        assert scratch.workspace.config.workspace_id != source.config.workspace_id
        assert not any(Path(scratch.workspace.root, "blobs").rglob("*.bin"))
    assert not folder.exists() and not documents.exists()
    with scratch_workspace(eve, keep=True) as kept:
        folder = kept.folder
    assert folder.exists()


CLEARANCES = ("U", "C", "S", "TS")
NATIONS = ("USA", "GBR", "AUS", "FRA")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(clearance=st.sampled_from(CLEARANCES), nation=st.sampled_from(NATIONS))
def test_no_reader_reads_up_a_red_team_report(
    result: LeakageResult, source: Workspace, clearance: str, nation: str
) -> None:
    """Whoever reads a red-team report sees only transcripts they may read, and the report's
    marking is one they may read (fail closed: the rest is counted as withheld)."""
    reader = Session(
        source,
        Subject(
            name=f"r-{clearance}-{nation}".lower(),
            clearance=parse_clearance(clearance),
            citizenship=nation,
            roles=frozenset({Role.EVALUATOR}),
        ),
    )
    report = build_report(result, reader=reader)
    assert reader.can_read(report.marking)
    assert all(reader.can_read(parse_marking(a["marking"])) for a in report.attempts)
    readable = sum(bool(reader.can_read(a.marking)) for a in result.attempts)
    assert len(report.attempts) == readable
    assert report.withheld == len(result.attempts) - readable
    shown = json.dumps(report.attempts)
    for c in result.canaries:
        if not reader.can_read(parse_marking(c.marking)):
            assert c.fact not in shown
