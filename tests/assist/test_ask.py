"""The assistant end to end on a small marked corpus: answers, citations, markings, refusals."""

from __future__ import annotations

import json

import pytest

import garrison.assist
from garrison.assist import REFUSAL, Answer, ask
from garrison.assist._text import content_terms, split_sentences
from garrison.core.errors import GarrisonError, InvalidInput, MarkingError, NotPermitted
from garrison.security.markings import dominates, join, parse_marking
from garrison.store.workspace import Workspace
from tests.assist.conftest import CANARIES, HEADING, MEMO_S, MEMO_U, READS, USERS

QUESTIONS = [f"Where does the {word} ferry leave from?" for word in CANARIES] + [
    "What cargo does the harbor ferry carry?",
    f"When does the {MEMO_U} timetable change?",
    f"Where does the {MEMO_S} cache move?",
    "harbor ferry north pier",
]


def _shown(answer: Answer) -> str:
    return json.dumps(answer.to_dict()) + answer.text


def _m(banner: str) -> object:
    return parse_marking(banner)


def test_exports() -> None:
    assert {"ask", "Answer", "Citation", "Generator", "Generation", "Conversations"} <= set(
        garrison.assist.__all__
    )


def test_answer_quotes_cites_and_marks_each_sentence(ws: Workspace) -> None:
    answer = ask(ws.session("sam"), "Where does the walruspeak ferry leave from?")
    assert not answer.refused and answer.generator == "extractive"
    first = answer.sentences[0]
    assert "walruspeak" in first.text and first.portion == "(S)" and first.marking == "SECRET"
    cited = answer.citations[first.citations[0] - 1]
    assert cited.quote == "The harbor ferry walruspeak leaves the north pier at dawn."
    assert cited.doc_id is not None and cited.locator  # sam may read the document
    assert cited.marking == "SECRET" and cited.portion == "(S)"
    # The numbered citations follow the order of the sentences; the shown text carries both.
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    assert answer.text.splitlines()[0] == f"(S) {first.text} [1]"
    data = answer.to_dict()
    assert {"marking", "answer", "citations", "context_marking", "generator", "timings"} <= set(
        data
    )
    assert data["timings"]["total_ms"] >= data["timings"]["retrieval_ms"] >= 0


@pytest.mark.parametrize("user", sorted(USERS))
def test_answer_marking_is_the_join_of_the_context_and_question(ws: Workspace, user: str) -> None:
    session = ws.session(user)
    for question in QUESTIONS:
        answer = ask(session, question)
        if answer.refused:
            assert answer.context == [] and answer.citations == []
            assert answer.marking == answer.question_marking == "UNCLASSIFIED"
            continue
        context = [parse_marking(c.marking) for c in answer.context]
        assert answer.context_marking == join(*context).banner()
        assert answer.marking == join(*context, parse_marking(answer.question_marking)).banner()
        cited = {c.chunk_id for c in answer.citations}
        assert cited <= {c.chunk_id for c in answer.context}  # cited chunks are in the context
        for sentence in answer.sentences:
            assert dominates(parse_marking(answer.marking), parse_marking(sentence.marking))
            assert session.can_read(parse_marking(sentence.marking))
        assert session.can_read(parse_marking(answer.marking))


@pytest.mark.parametrize("user", sorted(USERS))
def test_no_canary_of_an_unreadable_document_appears(ws: Workspace, user: str) -> None:
    session = ws.session(user)
    hidden = set(CANARIES) - READS[USERS[user]]
    if USERS[user] in ("U", "C"):
        hidden.add(MEMO_S)
    for question in [*QUESTIONS, *(f"{w} {w}" for w in CANARIES)]:
        try:
            shown = _shown(ask(session, question))
        except GarrisonError as exc:  # pragma: no cover - none expected, but errors count too
            shown = str(exc)
        for word in hidden:
            if word not in question:
                assert word not in shown, (user, question, word)
            else:
                # Asked about by name, it may only echo in the question itself.
                assert word not in shown.replace(question, "").replace(
                    json.dumps(question)[1:-1], ""
                ), (user, question, word)


def test_refusal_reads_the_same_with_and_without_unreadable_matches(ws: Workspace) -> None:
    session = ws.session("uma")
    unreadable = ask(session, "walruspeak narwhalglow")  # both exist, neither readable to uma
    nothing = ask(session, "xylophonequartz")  # exists nowhere
    assert unreadable.refused and nothing.refused
    assert unreadable.text == nothing.text == f"(U) {REFUSAL}"

    def same(answer: Answer) -> dict[str, object]:
        data = answer.to_dict()
        data.pop("timings")
        data.pop("question")
        return data

    assert same(unreadable) == same(nothing)
    assert unreadable.citations == [] and unreadable.context == []
    # A reader who may read them gets an answer instead.
    assert not ask(ws.session("tess"), "walruspeak narwhalglow").refused


def test_reader_below_the_document_gets_no_document_reference(ws: Workspace) -> None:
    question = f"When does the {MEMO_U} timetable change?"
    low = ask(ws.session("uma"), question)
    assert not low.refused
    cited = low.citations[0]
    assert MEMO_U in cited.quote and cited.marking == "UNCLASSIFIED"
    assert cited.doc_id is None and cited.locator == {}  # the memo is SECRET
    assert "doc_id" not in cited.to_dict()
    high = ask(ws.session("sam"), question)
    assert high.citations[0].doc_id is not None and high.citations[0].locator


def test_ceiling_keeps_the_context_and_answer_under_it(ws: Workspace) -> None:
    session = ws.session("tess")
    answer = ask(session, "harbor ferry north pier cargo", max_marking="CONFIDENTIAL")
    ceiling = parse_marking("CONFIDENTIAL")
    assert answer.context and all(
        dominates(ceiling, parse_marking(c.marking)) for c in answer.context
    )
    assert dominates(ceiling, parse_marking(answer.marking))
    assert "walruspeak" not in _shown(answer) and "narwhalglow" not in _shown(answer)
    # Without the ceiling the same question draws on higher chunks.
    assert not dominates(ceiling, parse_marking(ask(session, "harbor ferry north pier").marking))
    # Asking about a SECRET subject under a CONFIDENTIAL ceiling: nothing under it answers.
    assert ask(session, "walruspeak", max_marking="CONFIDENTIAL").refused
    with pytest.raises(InvalidInput, match="ceiling"):
        ask(session, "harbor ferry", max_marking="CONFIDENTIAL", question_marking="SECRET")
    with pytest.raises(InvalidInput, match="ceiling"):
        ask(session, "(S) harbor ferry", max_marking="UNCLASSIFIED")


def test_question_marking_from_option_and_leading_portion_mark(ws: Workspace) -> None:
    session = ws.session("sam")
    marked = ask(session, "(S) Where do the greenhouse tomatoes get water?")
    assert marked.question == "Where do the greenhouse tomatoes get water?"
    assert marked.question_marking == "SECRET"
    # The answer quotes an UNCLASSIFIED sentence but is marked with the question's marking.
    assert marked.sentences[0].portion == "(U)" and "tomatoes" in marked.sentences[0].text
    assert dominates(parse_marking(marked.marking), parse_marking("SECRET"))
    optioned = ask(
        session, "Where do the greenhouse tomatoes get water?", question_marking="CONFIDENTIAL"
    )
    assert optioned.question_marking == "CONFIDENTIAL"
    both = ask(session, "(C) greenhouse tomatoes", question_marking="SECRET")
    assert both.question_marking == "SECRET"
    # The refusal carries the question's marking too.
    refused = ask(session, "(C) xylophonequartz")
    assert (
        refused.refused and refused.text == f"(C) {REFUSAL}" and refused.marking == "CONFIDENTIAL"
    )


def test_question_marking_the_asker_may_not_use_is_refused(ws: Workspace) -> None:
    with pytest.raises(NotPermitted, match="may not mark a question"):
        ask(ws.session("uma"), "(S) greenhouse tomatoes")
    with pytest.raises(NotPermitted):
        ask(ws.session("cal"), "greenhouse tomatoes", question_marking="TOP SECRET")
    with pytest.raises(InvalidInput, match="system high"):
        ask(ws.session("tess"), "(TS//SI) greenhouse tomatoes")
    with pytest.raises(MarkingError):
        ask(ws.session("sam"), "(S//BOGUS) greenhouse tomatoes")  # an invalid mark: refused
    with pytest.raises(InvalidInput):
        ask(ws.session("sam"), "(S)")
    with pytest.raises(InvalidInput):
        ask(ws.session("sam"), "   ")
    with pytest.raises(InvalidInput):
        ask(ws.session("sam"), "tomatoes", k=0)


def test_every_question_is_audited_with_length_and_marking_not_text(ws: Workspace) -> None:
    question = "(C) Where do the greenhouse tomatoes get water?"
    ask(ws.session("sam"), question)
    events = [e for e in ws.audit.tail(20) if e.action == "ask" and e.actor == "sam"]
    last = events[-1]
    assert last.details["question_length"] == len(question[4:])
    assert last.details["question_marking"] == "CONFIDENTIAL"
    assert last.object_marking is not None
    dumped = json.dumps([e.model_dump(mode="json") for e in ws.audit.tail(20)])
    assert "greenhouse tomatoes get water" not in dumped


def test_sentences_and_terms() -> None:
    text = "First one. Second one!\n\nA third? Yes.\n- item one\n- item two"
    assert [s.text for s in split_sentences(text)] == [
        "First one.",
        "Second one!",
        "A third?",
        "Yes.",
        "- item one",
        "- item two",
    ]
    for span in split_sentences(text):
        assert text[span.start : span.end] == span.text
    assert content_terms("What does the Walruspeak ferry carry?") == [
        "walruspeak",
        "ferry",
        "carry",
    ]


def test_a_citation_shows_no_heading_marked_above_its_chunk(ws: Workspace) -> None:
    for user in ("sam", "tess", "uma"):
        answer = ask(ws.session(user), "Where does the marina kiosk sell tide maps?")
        cited = [c for c in answer.citations if "marina kiosk" in c.quote]
        assert cited and cited[0].marking == "UNCLASSIFIED"
        assert HEADING not in json.dumps([c.to_dict() for c in cited])
        if answer.marking == "UNCLASSIFIED":
            assert HEADING not in _shown(answer)
