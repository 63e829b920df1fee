"""Compilation must not leak through the assistant: two chunks each readable alone, together
marked higher by a rule, never reach a reader who may not read the raised marking."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.assist import REFUSAL, ask
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.markings import dominates, parse_marking
from garrison.store.derived import Chunks
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.assist.conftest import FAST
from tests.assist.test_generator_hook import FakeGenerator

QUESTION = "When does the kestrelwing program receive the thoriumsalt shipment?"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("assist-compilation")
    workspace = Workspace.init(root / "ws", system_high="SECRET//NOFORN")
    folder = root / "in"
    folder.mkdir()
    (folder / "program.txt").write_text(
        "(U) The kestrelwing program schedules its next receipt for the spring quarter.\n"
    )
    (folder / "material.txt").write_text(
        "(U) A thoriumsalt shipment leaves the northern warehouse in the spring quarter.\n"
    )
    (folder / "garden.txt").write_text("(U) The greenhouse tomatoes need water every morning.\n")
    system = workspace.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    # The rule comes after the pipeline ran: each chunk alone stays UNCLASSIFIED.
    system.registry_add_compilation(
        "kestrel-thorium", when=["kestrelwing"], and_=["re:thorium\\w*"],
        marking="SECRET//NOFORN", reason="Program and material together reveal the site.",
    )  # fmt: skip
    system.add_user("uma", SubjectSpec(clearance="U", roles=("viewer",)))
    system.add_user("sam", SubjectSpec(clearance="S", roles=("viewer",)))
    system.add_user("gus", SubjectSpec(clearance="S", citizenship="GBR", roles=("viewer",)))
    yield workspace
    workspace.close()


def _shown(answer: dict[str, object]) -> dict[str, object]:
    """What a reader sees of an answer, less what differs between any two questions."""
    return {k: v for k, v in answer.items() if k not in ("question", "timings")}


def test_each_chunk_alone_is_readable_and_answers(ws: Workspace) -> None:
    texts = {c["text"]: c["marking"] for c in Chunks(ws.session("uma")).list()}
    assert len(texts) == 3 and set(texts.values()) == {"UNCLASSIFIED"}
    alone = ask(ws.session("uma"), "What does the kestrelwing program schedule?", k=1)
    assert not alone.refused and alone.marking == "UNCLASSIFIED" and not alone.findings
    assert "kestrelwing" in alone.text


def test_together_the_answer_is_raised_for_a_reader_of_the_rule(ws: Workspace) -> None:
    answer = ask(ws.session("sam"), QUESTION)
    assert not answer.refused
    assert answer.marking == "SECRET//NOFORN"
    assert answer.context_marking == "UNCLASSIFIED"  # each chunk keeps its own marking
    assert [f["rule"] for f in answer.findings] == ["kestrel-thorium"]
    assert answer.to_dict()["findings"][0]["kind"] == "compilation"


def test_together_the_answer_is_refused_to_a_reader_below_the_rule(ws: Workspace) -> None:
    answer = ask(ws.session("uma"), QUESTION)
    assert answer.refused and answer.text == "(U) " + REFUSAL
    assert answer.marking == "UNCLASSIFIED"
    assert answer.citations == [] and answer.context == [] and answer.findings == []
    for word in ("kestrelwing", "thoriumsalt", "spring", "warehouse"):
        assert word not in answer.text
    # Indistinguishable from a question no readable source answers.
    nothing = ask(ws.session("uma"), "zzyzx quasar obelisk?")
    assert nothing.refused
    assert _shown(answer.to_dict()) == _shown(nothing.to_dict())
    # The audit log (at system high) records why: retrieval's page already withheld the hits
    # that together would raise it above the reader, so the assistant never saw them.
    searches = [e for e in ws.audit.tail() if e.action == "search" and e.actor == "uma"]
    event = searches[-2]
    assert event.details["compilation"] == ["kestrel-thorium"] and event.details["withheld"]
    asks = [e for e in ws.audit.tail() if e.action == "ask" and e.actor == "uma"]
    assert asks[-2].details["refused"] and asks[-2].details["context"] == 0


def test_a_ceiling_below_the_rule_gets_the_refusal(ws: Workspace) -> None:
    answer = ask(ws.session("sam"), QUESTION, max_marking="UNCLASSIFIED")
    assert answer.refused and answer.marking == "UNCLASSIFIED" and answer.context == []


def test_a_generator_never_receives_what_it_is_not_accredited_for(ws: Workspace) -> None:
    low = FakeGenerator(accredited=parse_marking("UNCLASSIFIED"))
    answer = ask(ws.session("sam"), QUESTION, generator=low)
    assert low.received == []  # the combined context is SECRET//NOFORN: never sent
    assert answer.refused and answer.marking == "UNCLASSIFIED"
    high = FakeGenerator(accredited=parse_marking("SECRET//NOFORN"))
    answer = ask(ws.session("sam"), QUESTION, generator=high)
    assert high.received and high.content_markings[-1].banner() == "SECRET//NOFORN"
    assert answer.marking == "SECRET//NOFORN"
    assert all(s.marking == "SECRET//NOFORN" for s in answer.sentences)
    # A reader below the rule gets the refusal from a generator too, and nothing is sent.
    other = FakeGenerator(accredited=parse_marking("SECRET//NOFORN"))
    refused = ask(ws.session("uma"), QUESTION, generator=other)
    assert refused.refused and other.received == []


def test_the_cli_shows_the_refusal_not_the_answer(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from garrison.cli.main import main

    code = main(["ask", QUESTION, "-w", str(ws.root), "--as", "uma", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert data["refused"] and data["answer"] == "(U) " + REFUSAL
    assert data["marking"] == "UNCLASSIFIED" and data["context"] == [] and data["findings"] == []
    for word in ("warehouse", "spring", "receipt", "kestrel-thorium"):
        assert word not in out


#: Words only the program chunk, and only the material chunk, holds (never in a question).
PROGRAM_ONLY = "schedules its next receipt"
MATERIAL_ONLY = "northern warehouse"
_WORDS = ["kestrelwing", "thoriumsalt", "program", "shipment", "greenhouse", "spring", "when"]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    user=st.sampled_from(["uma", "sam", "gus"]),
    words=st.lists(st.sampled_from(_WORDS), min_size=1, max_size=5, unique=True),
    k=st.integers(1, 4),
    ceiling=st.sampled_from([None, "UNCLASSIFIED", "SECRET//NOFORN"]),
)
def test_no_reader_gets_the_combination_above_their_access(
    ws: Workspace, user: str, words: list[str], k: int, ceiling: str | None
) -> None:
    from garrison.core.errors import InvalidInput, NotPermitted

    session = ws.session(user)
    rule = parse_marking("SECRET//NOFORN")
    try:
        answer = ask(session, " ".join(words) + "?", k=k, max_marking=ceiling)
    except (InvalidInput, NotPermitted):
        assert ceiling is not None and not session.can_read(parse_marking(ceiling))
        return
    marking = parse_marking(answer.marking)
    assert session.can_read(marking)
    shown = answer.text + " ".join(c.quote for c in answer.citations)
    combined = PROGRAM_ONLY in shown and MATERIAL_ONLY in shown
    context = {c.chunk_id for c in answer.context}
    chunks = {c["text"]: c["id"] for c in Chunks(ws.session()).list()}
    both = {i for t, i in chunks.items() if "kestrelwing" in t or "thoriumsalt" in t}
    if combined or both <= context:
        assert dominates(marking, rule)
    if not session.can_read(rule):
        assert not combined and not both <= context and not answer.findings
