"""QA suites generated from the indexed, marked corpus: every item cites a real chunk it came
from and is marked like it; templates and draws are deterministic for a seed; nothing above the
builder -- or above a generator's accreditation -- is used or sent."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from garrison.assist import Generation
from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.evaluate._suite_docs import template_questions
from garrison.evaluate._suites import Suites
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.models import register_endpoint
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.markings import Marking, dominates, join, parse_marking
from garrison.store.derived import Chunks
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.assist.conftest import CANARIES, FAST, HEADING, MEMO_S, READS, write_corpus
from tests.models.openai_server import serve

M = parse_marking
#: A markdown file with key-value lines and a table, under an UNCLASSIFIED heading.
FACTS = (
    "# (U) Depot facts\n\n(U) Location: Harbor Road 5\n\n(U) Commander: Major Jones\n\n"
    "| Ship | Port |\n|---|---|\n| Albatross | Kiel |\n| Borealis | Oslo |\n"
)
EVALUATORS = {"eva": "TS", "evu": "U", "evs": "S"}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("suitedocs")
    workspace = Workspace.init(root / "ws", system_high="TOP SECRET")
    write_corpus(root / "in")
    (root / "in" / "facts.md").write_text(FACTS)
    system = workspace.session()
    ingest_paths(system, [str(root / "in")], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    for name, clearance in EVALUATORS.items():
        system.add_user(name, SubjectSpec(clearance=clearance, roles=("evaluator",)))
    system.add_user("vic", SubjectSpec(clearance="TS", roles=("viewer",)))
    system.add_user("ada", SubjectSpec(clearance="TS", roles=("admin",)))
    yield workspace
    workspace.close()


def _chunks(ws: Workspace) -> dict[str, dict[str, object]]:
    return {c["id"]: c for c in Chunks(ws.session()).list()}


def test_items_cite_the_chunk_they_came_from_and_are_marked_like_it(ws: Workspace) -> None:
    suites = Suites(ws.session("eva"))
    suite = suites.generate_from_docs("docs-all", limit=60, seed=3)
    chunks = _chunks(ws)
    items = list(suites.items(suite.ref))
    answerable = [i for i in items if i.expected["answerable"]]
    assert len(items) == suite.count and 0 < len(answerable) < len(items)
    templates = {i.slices["template"] for i in answerable}
    assert {"heading", "key-value", "table", "cloze", "wh"} <= templates
    for item in answerable:
        (chunk_id,) = item.sources
        assert item.expected["sources"] == [chunk_id]
        chunk = chunks[chunk_id]
        text = str(chunk["text"])
        chunk_marking = M(str(chunk["marking"]))
        answer = item.expected["answer"]
        assert answer and answer in text, (item.input, answer)
        assert item.cluster == chunk["doc_id"]
        if item.slices["template"] in ("heading", "key-value") and chunk["section_path"]:
            # The question quotes the heading: marked with the heading's marking too.
            assert dominates(item.marking, chunk_marking)
        else:
            assert item.marking == chunk_marking, (item.input, item.marking.banner())
        assert item.slices["media_type"] in ("text/plain", "text/markdown")
    # The SECRET heading over an UNCLASSIFIED paragraph: its heading question is SECRET, the
    # paragraph's other questions UNCLASSIFIED.
    headed = [i for i in answerable if HEADING in i.input["question"]]
    assert headed and all(i.marking.banner() == "SECRET" for i in headed)
    kiosk = [i for i in answerable if "kiosk" in i.expected["answer"] and HEADING not in str(i)]
    assert kiosk and all(i.marking.banner() == "UNCLASSIFIED" for i in kiosk)
    by_question = {i.input["question"]: i.expected["answer"] for i in answerable}
    assert by_question.get('What is the Location given in the section "Depot facts"?') == (
        "Harbor Road 5"
    )
    assert by_question.get("What is the Port of Borealis?") == "Oslo"
    # The suite's marking is the join of its items.
    assert suite.marking == join(*(i.marking for i in items))


def test_unanswerable_items_hold_nothing_from_the_corpus(ws: Workspace) -> None:
    suites = Suites(ws.session("eva"))
    suite = suites.generate_from_docs("docs-unans", limit=20, seed=1, unanswerable=0.25)
    items = list(suites.items(suite.ref))
    unanswerable = [i for i in items if not i.expected["answerable"]]
    assert len(unanswerable) == 5
    corpus = " ".join(str(c["text"]) for c in _chunks(ws).values()).lower()
    for item in unanswerable:
        assert item.marking.banner() == "UNCLASSIFIED"
        assert item.expected == {"answer": "", "sources": [], "answerable": False}
        assert item.sources == () and item.cluster == item.id
        invented = set(re.findall(r"[A-Z][a-z]{6,}", item.input["question"])) - {"Operation"}
        assert invented and all(word.lower() not in corpus for word in invented)


def test_generation_is_deterministic_for_a_seed(ws: Workspace) -> None:
    suites = Suites(ws.session("eva"))
    a = suites.generate_from_docs("docs-seed", limit=15, seed=7)
    b = suites.generate_from_docs("docs-seed", limit=15, seed=7)
    assert a.id == b.id and a.version == b.version
    c = suites.generate_from_docs("docs-seed", limit=15, seed=8)
    assert c.id != a.id and c.version == a.version + 1


@pytest.mark.parametrize(("user", "clearance"), sorted(EVALUATORS.items()))
def test_only_what_the_builder_may_read_is_used(ws: Workspace, user: str, clearance: str) -> None:
    suites = Suites(ws.session(user))
    suite = suites.generate_from_docs(f"docs-{user}", limit=80, seed=0)
    text = json.dumps([i.to_dict() for i in suites.items(suite.ref)])
    for word in CANARIES:
        assert (word in text) == (word in READS[clearance]), word
    assert (MEMO_S in text) == (clearance in ("S", "TS"))
    assert (HEADING in text) == (clearance in ("S", "TS"))
    assert dominates(M(clearance), suite.marking)


def test_documents_limit_the_sources(ws: Workspace) -> None:
    docs = {d["filename"]: d["id"] for d in _docs(ws)}
    suites = Suites(ws.session("eva"))
    suite = suites.generate_from_docs(
        "docs-one", documents=[docs["facts.md"]], limit=8, unanswerable=0.0
    )
    items = list(suites.items(suite.ref))
    # Two key-value lines, two table rows and one heading question (asked once for both of
    # its chunks): fewer candidates than the limit give as many items as there are.
    assert len(items) == 5 and {i.cluster for i in items} == {docs["facts.md"]}
    with pytest.raises(NotFound):  # a document above the builder answers like a missing one
        Suites(ws.session("evu")).generate_from_docs("x", documents=[docs["narwhalglow.txt"]])
    with pytest.raises(NotFound):
        suites.generate_from_docs("x", documents=["0" * 64])
    with pytest.raises(InvalidInput):
        suites.generate_from_docs("x", limit=0)
    with pytest.raises(InvalidInput):
        suites.generate_from_docs("x", unanswerable=1.0)
    with pytest.raises(NotPermitted):
        Suites(ws.session("vic")).generate_from_docs("x")


def _docs(ws: Workspace) -> list[dict[str, str]]:
    from garrison.store.documents import Documents

    return Documents(ws.session()).list()


def test_templates() -> None:
    found = template_questions("Location: Harbor Road 5\n\nShip | Port\nAlbatross | Kiel", "Depot")
    assert ("heading", 'What does the section "Depot" say?') in {(t, q) for t, q, _ in found}
    assert ("key-value", 'What is the Location given in the section "Depot"?', "Harbor Road 5") in (
        found
    )
    assert ("table", "What is the Port of Albatross?", "Kiel") in found
    prose = template_questions("The ferry leaves the north pier at dawn every Monday.", None)
    assert {t for t, _, _ in prose} == {"cloze", "wh"}
    cloze = next(q for t, q, _ in prose if t == "cloze")
    assert "____" in cloze
    assert template_questions("Too short.", None) == []


class Recording:
    """A generator test double accredited CONFIDENTIAL: records what it receives."""

    name = "recording"
    accredited = M("CONFIDENTIAL")
    marking = M("UNCLASSIFIED//FOUO")
    context_tokens = 4096
    max_new_tokens = 256

    def __init__(self) -> None:
        self.sent: list[tuple[str, Marking]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(
        self, messages: Sequence[dict[str, str]], *, content_marking: Marking
    ) -> Generation:
        passage = messages[-1]["content"]
        self.sent.append((passage, content_marking))
        first = passage.split(".")[0].strip()
        reply = {"question": f"(S) What does this say: {first[:40]}?", "answer": first}
        return Generation(f"SECRET\n{json.dumps(reply)}", content_marking)


def test_a_generator_never_receives_a_chunk_above_its_accreditation(ws: Workspace) -> None:
    gen = Recording()
    suites = Suites(ws.session("eva"))
    suite = suites.generate_from_docs("docs-gen", limit=40, generator=gen, seed=2)
    assert gen.sent
    for passage, marking in gen.sent:
        assert dominates(gen.accredited, marking)
        assert not any(word in passage for word in CANARIES if word not in READS["C"])
        assert MEMO_S not in passage
    items = list(suites.items(suite.ref))
    made = [i for i in items if i.slices["template"] == "generator"]
    assert len(made) == len(gen.sent)
    for item in made:
        # Marked with the chunk, the generator's weights and its output; portion marks and
        # banners the model wrote are removed from its text.
        assert dominates(item.marking, M("UNCLASSIFIED//FOUO"))
        assert not item.input["question"].startswith("(S)")
        assert "SECRET" not in item.input["question"]
    # Chunks above the accreditation still give template items.
    assert any("walruspeak" in i.input["question"] + i.expected["answer"] for i in items), (
        "chunks above the generator get template items"
    )


def test_a_registered_endpoint_generates_within_its_accreditation(
    ws: Workspace, tmp_path: Path
) -> None:
    def reply(messages: list[dict[str, str]]) -> str:
        first = messages[-1]["content"].split(".")[0]
        return json.dumps({"question": f"Which line reads: {first[:30]}?", "answer": first})

    with serve(reply=reply) as server:
        register_endpoint(
            ws.session("ada"),
            "gen-u",
            base_url=server.base_url,
            model="tiny",
            accredited=M("UNCLASSIFIED"),
            marking=M("UNCLASSIFIED"),
        )
        suites = Suites(ws.session("eva"))
        suite = suites.generate_from_docs("docs-ep", limit=30, generator="gen-u", seed=4)
        sent = "\n".join(
            str(m.get("content", "")) for r in server.chat_requests for m in r.body["messages"]
        )
    assert server.chat_requests
    for word in {*CANARIES} - READS["U"] | {MEMO_S}:
        assert word not in sent
    items = list(suites.items(suite.ref))
    assert any(i.slices["template"] == "generator" for i in items)
    assert suite.source["generator"]
