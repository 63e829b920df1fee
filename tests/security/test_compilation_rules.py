"""Classification-by-compilation rules: matchers, validation, storage, the CLI, who sees rules."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.cli.main import main
from garrison.core.errors import CheckFailed, InvalidInput, NotFound, NotPermitted
from garrison.security.audit import AuditAction
from garrison.security.compilation import (
    apply_rules,
    compilation_rule,
    fired_details,
    matcher_from,
)
from garrison.security.markings import dominates, join, parse_marking
from garrison.store.compilation import workspace_rules
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

U = parse_marking("UNCLASSIFIED")
SNF = parse_marking("SECRET//NOFORN")


def rule(when: list[str], and_: list[str], marking: str = "SECRET//NOFORN", name: str = "r1"):
    return compilation_rule(name, when, and_, parse_marking(marking), "the two together")


# -- matchers ----------------------------------------------------------------------------------


def test_terms_match_whole_words_in_any_case() -> None:
    m = matcher_from(["Falcon, project osprey"])
    assert m.terms == ("falcon", "project osprey")
    assert m.search("The FALCON's range") is True
    assert m.search("falconry is old") is False
    assert m.search("PROJECT\n  Osprey began") is True
    assert m.search("projectosprey") is False
    # Invisible characters do not split a word for the matcher.
    r = rule(["falcon"], ["uranium"])
    assert apply_rules([r], ["fal\u00adcon and uran\u200bium"], U).raised


def test_expressions_match_case_insensitively() -> None:
    m = matcher_from([r"re:op-\d{3}\b"])
    assert m.patterns == (r"op-\d{3}\b",)
    assert m.search("see OP-123 now") is True
    assert m.search("see op-12") is False
    assert m.spec() == [r"re:op-\d{3}\b"]
    # A comma inside an expression does not split it.
    assert matcher_from([r"re:x{1,3}y"]).patterns == (r"x{1,3}y",)


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("(a+)+b", "repetition inside an unbounded repetition"),
        (r"(\w*\s?)*x", "repetition inside an unbounded repetition"),
        ("(?:x{2})*y", "repetition inside an unbounded repetition"),
        ("(a+){2}", "repetition inside an unbounded repetition"),
        ("(a|ab)*c", "alternation inside an unbounded repetition"),
        (r"(a)\1", "backreference"),
        ("[", "not a valid regular expression"),
        ("a*", "matches empty text"),
        ("", "empty"),
        ("x" * 300, "at most 256"),
    ],
)
def test_unsafe_or_bad_expressions_are_refused(pattern: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        matcher_from(["re:" + pattern])


@pytest.mark.parametrize("pattern", [r"(\d{3}-){2}\d{4}", r"op-\d+", "abc|def", r"\bx(?=y)"])
def test_safe_expressions_are_accepted(pattern: str) -> None:
    assert matcher_from(["re:" + pattern]).patterns == (pattern,)


def test_expression_timeout_counts_as_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import regex

    import garrison.security.compilation as comp

    # An expression the safe subset refuses, forced in: the time limit still bounds it, and
    # running out of time counts as a match (fail closed).
    monkeypatch.setattr(comp, "MATCH_TIMEOUT", 0.05)
    base = rule(["falcon"], ["re:x"])
    slow = dataclasses.replace(
        base.and_, patterns=("(a|aa)+\\d",), _patterns_re=(regex.compile(r"(a|aa)+\d"),)
    )
    r = dataclasses.replace(base, and_=slow)
    started = time.monotonic()
    got = apply_rules([r], ["falcon " + "a" * 5000], U)
    assert time.monotonic() - started < 5
    assert got.raised and got.undecided == ("r1",) and got.marking == SNF
    assert "could not be decided in time" in fired_details(got)[0]["detail"]


@pytest.mark.parametrize(
    ("when", "and_", "name", "reason", "says"),
    [
        ([], ["b"], "r", "why", "at least one --when"),
        (["a"], [" , "], "r", "why", "at least one --and"),
        (["a"], ["b"], "r", "  ", "needs a reason"),
        (["a"], ["b"], "r", None, "needs a reason"),
        (["a"], ["b"], "bad name!", "why", "not valid"),
        (["--"], ["b"], "r", "why", "no letter or digit"),
        (["a"], ["re:(b+)+"], "r", "why", "refused"),
    ],
)
def test_invalid_rules(
    when: list[str], and_: list[str], name: str, reason: str | None, says: str
) -> None:
    with pytest.raises(InvalidInput, match=says):
        compilation_rule(name, when, and_, SNF, reason)


def test_unclassified_rule_is_refused() -> None:
    with pytest.raises(InvalidInput, match="raise nothing"):
        compilation_rule("r", ["a"], ["b"], U, "why")


# -- applying ----------------------------------------------------------------------------------


def test_both_parts_raise_one_part_does_not() -> None:
    r = rule(["falcon"], ["uranium"])
    both = apply_rules([r], ["Falcon is late.", "Uranium arrives."], U)
    assert both.marking == SNF and [f.name for f in both.fired] == ["r1"]
    [finding] = fired_details(both)
    assert finding["kind"] == "compilation" and finding["rule"] == "r1"
    assert "falcon" not in finding["detail"].lower()  # never the matched text
    assert not apply_rules([r], ["Falcon is late."], U).raised
    assert apply_rules([r], ["Falcon is late."], U).marking == U
    assert not apply_rules([], ["Falcon uranium"], U).raised


def test_several_rules_join() -> None:
    a = rule(["falcon"], ["uranium"], "SECRET//NOFORN", "a")
    b = rule(["falcon"], ["harbor"], "CONFIDENTIAL//REL TO USA, GBR", "b")
    got = apply_rules([a, b], ["falcon harbor uranium"], parse_marking("(C//REL TO USA, GBR)"))
    assert {r.name for r in got.fired} == {"a", "b"}
    assert got.marking.banner() == "SECRET//NOFORN"


_WORDS = st.sampled_from(["falcon", "uranium", "harbor", "depot", "truck"])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(_WORDS, max_size=4).map(" ".join), max_size=4),
    st.sampled_from(["UNCLASSIFIED", "CONFIDENTIAL", "SECRET//REL TO USA, GBR", "TOP SECRET"]),
)
def test_applying_never_lowers_and_dominates_fired_rules(texts: list[str], own: str) -> None:
    rules = [rule(["falcon"], ["uranium"], name="a"), rule(["harbor"], ["depot"], name="b")]
    base = parse_marking(own)
    got = apply_rules(rules, texts, base)
    assert dominates(got.marking, base)
    for fired in got.fired:
        assert dominates(got.marking, fired.marking)
    words = set(" ".join(texts).split())
    expect = {"a"} if {"falcon", "uranium"} <= words else set()
    expect |= {"b"} if {"harbor", "depot"} <= words else set()
    assert {r.name for r in got.fired} == expect
    if not expect:
        assert got.marking == base
    else:
        assert got.marking == join(base, *(r.marking for r in got.fired))


# -- storage, access, audit --------------------------------------------------------------------


@pytest.fixture
def ws(tmp_path: Path, catalog_url: str | None) -> Workspace:
    ws = Workspace.init(tmp_path / "ws", system_high="TOP SECRET//NOFORN", db_url=catalog_url)
    yield ws
    ws.close()


def test_rules_are_stored_listed_by_readers_and_removed(ws: Workspace) -> None:
    system = ws.session()
    system.add_user("ada", SubjectSpec(clearance="S", roles=("admin",)))
    system.add_user("val", SubjectSpec(clearance="TS", roles=("viewer",)))
    system.registry_add_compilation(
        "falcon-uranium", when=["falcon"], and_=["uranium"], marking="S//NF", reason="why"
    )
    system.registry_add_compilation(
        "top", when=["re:op-\\d+"], and_=["harbor"], marking="TOP SECRET", reason="why not"
    )
    assert [r.name for r in workspace_rules(ws.session("val"))] == ["falcon-uranium", "top"]
    listed = [e for e in system.registry_list() if e["kind"] == "compilation"]
    assert [(e["kind"], e["name"], e["marking"]) for e in listed] == [
        ("compilation", "falcon-uranium", "SECRET//NOFORN"),
        ("compilation", "top", "TOP SECRET"),
    ]
    assert listed[1]["when"] == ["re:op-\\d+"] and listed[0]["reason"] == "why"
    ada = ws.session("ada")
    # An admin sees only the rules they may read, and cannot remove (or see) the others.
    assert [e["name"] for e in ada.registry_list() if e["kind"] == "compilation"] == [
        "falcon-uranium"
    ]
    with pytest.raises(NotFound):
        ada.registry_remove("compilation", "top")
    with pytest.raises(NotPermitted, match="above what they may read"):
        ada.registry_add_compilation("ts2", when=["a"], and_=["b"], marking="TS", reason="r")
    with pytest.raises(NotPermitted):
        ws.session("val").registry_list()
    with pytest.raises(InvalidInput, match="already has"):
        system.registry_add_compilation(
            "FALCON-uranium", when=["a"], and_=["b"], marking="S", reason="r"
        )
    with pytest.raises(InvalidInput, match="above this workspace's system high"):
        system.registry_add_compilation(
            "x", when=["a"], and_=["b"], marking="TS//SI//NF", reason="r"
        )
    with pytest.raises(NotFound):  # built-in tokens are not site additions
        system.registry_remove("sci", "SI")
    assert ada.registry_remove("compilation", "falcon-uranium")["name"] == "falcon-uranium"
    assert [r.name for r in workspace_rules(system)] == ["top"]
    events = [e for e in ws.audit.tail() if e.action.startswith("registry.compilation")]
    assert [(e.action, e.decision) for e in events] == [
        (AuditAction.COMPILATION_ADD, "allow"),
        (AuditAction.COMPILATION_ADD, "allow"),
        (AuditAction.COMPILATION_REMOVE, "deny"),
        (AuditAction.COMPILATION_ADD, "deny"),
        (AuditAction.COMPILATION_REMOVE, "allow"),
    ]
    assert events[0].object_marking == "SECRET//NOFORN"
    assert events[0].details["when"] == ["falcon"]


def test_a_tampered_rule_stops_work_that_applies_rules(ws: Workspace) -> None:
    from sqlalchemy import update

    from garrison.store.models import CompilationRuleRow

    system = ws.session()
    system.registry_add_compilation("r", when=["a"], and_=["b"], marking="S//NF", reason="why")
    with ws.catalog.engine.begin() as conn:
        conn.execute(update(CompilationRuleRow).values(and_terms=["nothing-matches-this"]))
    with pytest.raises(CheckFailed, match="integrity"):
        workspace_rules(ws.session())


# -- the command line --------------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = str(tmp_path / "ws")
    assert _cli(capsys, "init", ws, "--system-high", "SECRET//NOFORN")[0] == 0
    code, out, err = _cli(
        capsys, "registry", "add", "compilation", "falcon-uranium", "--when", "falcon,osprey",
        "--when", "re:op-\\d{1,3}", "--and", "uranium", "--marking", "S//NF",
        "--reason", "Program and material together reveal the site.", "-w", ws, "--json",
    )  # fmt: skip
    assert code == 0, err
    added = json.loads(out)
    assert added["when"] == ["falcon", "osprey", "re:op-\\d{1,3}"]
    assert added["marking"] == "SECRET//NOFORN"
    code, out, _ = _cli(capsys, "registry", "list", "-w", ws, "--json")
    listed = [(e["kind"], e["name"]) for e in json.loads(out) if e["kind"] == "compilation"]
    assert listed == [("compilation", "falcon-uranium")]
    code, out, _ = _cli(capsys, "registry", "list", "-w", ws)
    assert code == 0 and "falcon-uranium" in out and "SECRET//NOFORN" in out
    code, out, _ = _cli(capsys, "registry", "remove", "compilation", "falcon-uranium", "-w", ws)
    assert code == 0 and "Removed" in out
    code, _, err = _cli(capsys, "registry", "remove", "compilation", "falcon-uranium", "-w", ws)
    assert code == 3 and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--when", "re:(a+)+", "--and", "b", "--marking", "S", "--reason", "r"], "refused"),
        (["--when", "a", "--and", "b", "--marking", "S//BOGUS", "--reason", "r"], ""),
        (["--when", "a", "--and", "b", "--marking", "S"], "reason"),
        (["--when", "a", "--marking", "S", "--reason", "r"], "--and"),
        (["--when", "a", "--and", "b", "--reason", "r"], "marking"),
        (["--when", "a", "--and", "b", "--marking", "TS", "--reason", "r"], "system high"),
    ],
)
def test_cli_invalid_rules_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    ws = str(tmp_path / "ws")
    assert _cli(capsys, "init", ws, "--system-high", "SECRET//NOFORN")[0] == 0
    code, _, err = _cli(capsys, "registry", "add", "compilation", "r", *args, "-w", ws)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and says in err
    assert "Traceback" not in err


def test_cli_duplicate_and_misplaced_options_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = str(tmp_path / "ws")
    assert _cli(capsys, "init", ws, "--system-high", "SECRET//NOFORN")[0] == 0
    rule_args = ["--when", "a", "--and", "b", "--marking", "S", "--reason", "r", "-w", ws]
    assert _cli(capsys, "registry", "add", "compilation", "r", *rule_args)[0] == 0
    code, _, err = _cli(capsys, "registry", "add", "compilation", "r", *rule_args)
    assert code == 2 and "already has" in err
    code, _, err = _cli(capsys, "registry", "add", "sci", "ZX", "--when", "a", "-w", ws)
    assert code == 2 and "Only a compilation rule" in err
    code, _, err = _cli(capsys, "registry", "remove", "sci", "SI", "-w", ws)
    assert code == 3  # a built-in token is not a site addition
    code, _, err = _cli(
        capsys, "registry", "add", "compilation", "r2", "--description", "d", *rule_args
    )
    assert code == 2 and "--reason" in err
