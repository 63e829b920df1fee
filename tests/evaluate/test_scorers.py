"""Each scorer on items it passes and fails, the text metrics against their libraries, the
registry, corpus-level classification metrics against scikit-learn, and the model-graded judge
against a loopback OpenAI-compatible endpoint: strict JSON, one retry, a recorded error, and no
item ever sent above the judge's accreditation."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from rouge_score import rouge_scorer
from sacrebleu.metrics import CHRF
from sklearn.metrics import f1_score, ndcg_score, precision_score, recall_score

from garrison.assist import Generation, registered_generator
from garrison.core.errors import InvalidInput, MarkingError, ServiceUnavailable
from garrison.evaluate.scorers import (
    KINDS,
    JudgeScorer,
    NotApplicable,
    Score,
    Scored,
    Scorer,
    classification_report,
    default_scorers,
    get_scorer,
    normalize_answer,
    parse_verdict,
    score_all,
    scorer_names,
    token_f1,
)
from garrison.evaluate.stats import wilson
from garrison.models import register_endpoint
from garrison.security.markings import (
    Marking,
    dominates,
    join,
    parse_marking,
    system_high_dominates,
)
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.models.openai_server import ChatServer, serve
from tests.security.markings.test_markings_properties import markings

M = parse_marking


def qa(response: Mapping[str, Any], **expected: Any) -> Scored:
    expected.setdefault("answer", "The ferry leaves the north pier at dawn.")
    return Scored("qa", {"question": "When does the ferry leave?"}, expected, response)


def score(name: str, item: Scored, **params: Any) -> Score:
    return get_scorer(name, **params).score(item)


# -- the registry ------------------------------------------------------------------------------


def test_the_registry_lists_and_builds_every_scorer() -> None:
    names = scorer_names()
    assert names == sorted(names)
    assert {
        "exact", "normalized", "token-f1", "rouge-l", "chrf", "regex", "includes", "json-valid",
        "json-fields", "accuracy", "recall@k", "mrr", "ndcg@k", "citation-precision",
        "citation-recall", "supported", "refusal", "judge",
    } <= set(names)  # fmt: skip
    for name in names:
        if name == "judge":
            continue
        scorer = get_scorer(name)
        assert isinstance(scorer, Scorer)
        assert scorer.version and scorer.kinds <= KINDS and isinstance(scorer.binary, bool)
    assert get_scorer("recall@5").name == "recall@5"
    assert get_scorer("recall@k", k=3).name == "recall@3"
    assert get_scorer("ndcg@k").name == "ndcg@10"


def test_the_registry_fails_closed_on_unknown_names_and_parameters() -> None:
    with pytest.raises(InvalidInput, match="exact, includes"):
        get_scorer("bleu")
    with pytest.raises(InvalidInput):
        get_scorer("exact", strict=True)
    with pytest.raises(InvalidInput):
        get_scorer("recall@5", k=3)
    with pytest.raises(InvalidInput):
        get_scorer("recall@k", k=0)
    with pytest.raises(InvalidInput):
        get_scorer("judge")  # a judge needs a generator
    with pytest.raises(InvalidInput):
        default_scorers("essay")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_default_scorers_exist_and_apply_to_their_kind(kind: str) -> None:
    names = default_scorers(kind)
    assert names
    for name in names:
        assert kind in get_scorer(name).kinds


# -- text --------------------------------------------------------------------------------------


def test_exact_and_normalized_match() -> None:
    right = qa({"text": "The ferry leaves the north pier at dawn."})
    loose = qa({"text": "  ferry leaves north pier, at DAWN "})
    wrong = qa({"text": "The ferry leaves the south pier at dawn."})
    assert score("exact", right).value == 1.0 and score("exact", loose).value == 0.0
    assert score("normalized", loose).value == 1.0 and score("normalized", wrong).value == 0.0
    assert score("exact", right).binary
    assert normalize_answer("The  Ferry's, an arrival!") == "ferrys arrival"


def test_the_best_of_several_references_counts() -> None:
    item = qa({"text": "at dawn"}, answers=["In the evening.", "At dawn."])
    got = score("normalized", item)
    assert got.value == 1.0 and got.detail["reference"] == 1


def test_token_f1() -> None:
    assert token_f1("north pier at dawn", "the north pier") == pytest.approx(
        2 * (2 / 4 * 2 / 2) / (2 / 4 + 1)
    )
    assert token_f1("", "") == 1.0 and token_f1("pier", "") == 0.0
    item = qa({"text": "It leaves the north pier."})
    got = score("token-f1", item)
    assert 0 < got.value < 1 and not got.binary
    assert score("token-f1", qa({"text": "Tomatoes need water."})).value == 0.0


def test_rouge_l_and_chrf_match_their_libraries() -> None:
    reference = "The ferry leaves the north pier at dawn."
    for text in ("The ferry leaves at dawn from the north pier.", "Cargo crates of engine parts."):
        item = qa({"text": text})
        rouge = rouge_scorer.RougeScorer(["rougeL"]).score(reference, text)["rougeL"].fmeasure
        assert score("rouge-l", item).value == pytest.approx(rouge)
        chrf = CHRF().sentence_score(text, [reference]).score / 100
        assert score("chrf", item).value == pytest.approx(chrf)
    assert score("rouge-l", qa({"text": reference})).value == pytest.approx(1.0)
    assert score("chrf", qa({"text": "zzz qqq"})).value < 0.1


def test_regex_and_includes() -> None:
    item = qa({"text": "Departure 06:30 from pier 4."}, regex=r"\b\d{2}:\d{2}\b")
    assert score("regex", item).value == 1.0
    assert score("regex", qa({"text": "At dawn."}, regex=r"\d{2}:\d{2}")).value == 0.0
    assert score("regex", qa({"text": "AT DAWN"}), pattern="at dawn", ignore_case=True).value == 1.0
    with pytest.raises(InvalidInput):
        get_scorer("regex", pattern="(unclosed")
    with pytest.raises(NotApplicable):
        score("regex", qa({"text": "x"}))
    got = score(
        "includes", qa({"text": "It leaves the NORTH PIER."}, includes=["north pier", "pier"])
    )
    assert got.value == 1.0
    missing = score("includes", qa({"text": "It leaves the pier."}, includes=["north pier"]))
    assert missing.value == 0.0 and missing.detail["missing"] == ["north pier"]
    assert score("includes", qa({"text": "x"}, answer="dawn"), text="x").value == 1.0
    # Without targets: one of the references is in the text.
    assert (
        score("includes", qa({"text": "They said: at dawn, usually."}, answer="at dawn")).value
        == 1.0
    )
    assert (
        score("includes", qa({"text": "Case matters."}, answer="case"), ignore_case=False).value
        == 0.0
    )


@pytest.mark.parametrize(
    "name",
    [
        "exact",
        "normalized",
        "token-f1",
        "rouge-l",
        "chrf",
        "includes",
        "citation-precision",
        "citation-recall",
    ],
)
def test_answer_scorers_credit_only_a_refusal_on_an_unanswerable_item(name: str) -> None:
    refused = qa(
        {"text": "The sources do not say.", "refused": True, "citations": []}, answerable=False
    )
    answered = qa(
        {
            "text": "The ferry leaves the north pier at dawn.",
            "refused": False,
            "citations": [{"chunk_id": "c1"}],
        },
        answerable=False,
        sources=["c1"],
    )
    assert score(name, refused).value == 1.0
    assert score(name, answered).value == 0.0


@pytest.mark.parametrize("name", ["exact", "normalized", "token-f1", "rouge-l", "chrf"])
def test_text_scorers_need_a_text_and_a_reference(name: str) -> None:
    with pytest.raises(NotApplicable):
        score(name, qa({"label": "x"}))
    with pytest.raises(NotApplicable):
        score(name, Scored("generation", {"prompt": "p"}, {}, {"text": "t"}))
    generation = Scored(
        "generation", {"prompt": "p"}, {"reference": "a short note"}, {"text": "a short note"}
    )
    assert score(name, generation).value == pytest.approx(1.0)


# -- structured --------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"vessel": {"type": "string"}, "crates": {"type": "integer"}},
    "required": ["vessel", "crates"],
}


def extraction(response: Mapping[str, Any], **expected: Any) -> Scored:
    return Scored("extraction", {"text": "The ferry carries 12 crates."}, expected, response)


def test_json_valid_against_a_schema() -> None:
    good = extraction({"json": {"vessel": "ferry", "crates": 12}}, schema=SCHEMA)
    assert score("json-valid", good).value == 1.0
    from_text = extraction(
        {"text": '```json\n{"vessel": "ferry", "crates": 12}\n```'}, schema=SCHEMA
    )
    assert score("json-valid", from_text).value == 1.0
    wrong_type = score(
        "json-valid", extraction({"json": {"vessel": "ferry", "crates": "12"}}, schema=SCHEMA)
    )
    assert wrong_type.value == 0.0 and "crates" in wrong_type.detail["error"]
    missing = score("json-valid", extraction({"json": {"vessel": "ferry"}}, schema=SCHEMA))
    assert missing.value == 0.0
    prose = score("json-valid", extraction({"text": 'Here it is: {"vessel": 1}'}, schema=SCHEMA))
    assert prose.value == 0.0 and prose.detail["error"].startswith("not JSON")
    # Without a schema: any JSON; with the scorer's own schema.
    assert score("json-valid", extraction({"text": "[1, 2]"})).value == 1.0
    assert score("json-valid", extraction({"json": {"vessel": "x"}}), schema=SCHEMA).value == 0.0
    with pytest.raises(InvalidInput):
        score("json-valid", extraction({"json": {}}, schema={"type": "nonsense"}))


def test_json_fields_accuracy() -> None:
    expected = {
        "vessel": "Ferry",
        "cargo": {"crates": 12, "kind": "engine parts"},
        "ports": ["A", "B"],
    }
    answer = {
        "vessel": "ferry",
        "cargo": {"crates": 12, "kind": "Engine parts."},
        "ports": ["A", "B"],
    }
    right = extraction({"json": answer}, json=expected)
    assert score("json-fields", right).value == 1.0
    half = extraction(
        {"json": {"vessel": "barge", "cargo": {"crates": 12}, "ports": ["A", "C"]}}, json=expected
    )
    got = score("json-fields", half)
    assert got.value == pytest.approx(2 / 5)
    assert set(got.detail["wrong"]) == {"vessel", "cargo.kind", "ports[1]"}
    strict = score("json-fields", right, normalize=False)
    assert strict.value == pytest.approx(3 / 5)
    assert score("json-fields", extraction({"text": "no json"}, json=expected)).value == 0.0
    # Keys with dots or brackets are keys, not paths.
    dotted = {"a.b": 1, "c[0]": 2}
    assert score("json-fields", extraction({"json": dict(dotted)}, json=dotted)).value == 1.0
    nested = {"a": {"b": 1}, "c": [2]}
    assert score("json-fields", extraction({"json": nested}, json=dotted)).value == 0.0
    # True is not 1.
    assert score("json-fields", extraction({"json": {"ok": 1}}, json={"ok": True})).value == 0.0
    with pytest.raises(NotApplicable):
        score("json-fields", extraction({"json": {}}))


def test_classification_accuracy() -> None:
    item = Scored("classification", {"text": "t"}, {"label": "urgent"}, {"label": "urgent"})
    assert score("accuracy", item).value == 1.0
    wrong = Scored("classification", {"text": "t"}, {"label": "urgent"}, {"label": "routine"})
    assert score("accuracy", wrong).value == 0.0
    none = Scored("classification", {"text": "t"}, {"label": "urgent"}, {"label": None})
    assert score("accuracy", none).value == 0.0
    with pytest.raises(NotApplicable):
        score("accuracy", Scored("classification", {"text": "t"}, {}, {"label": "x"}))


# -- retrieval ---------------------------------------------------------------------------------


def retrieval(retrieved: list[str], relevant: Any) -> Scored:
    return Scored("retrieval", {"query": "q"}, {"relevant": relevant}, {"retrieved": retrieved})


def test_recall_and_mrr() -> None:
    item = retrieval(["c9", "c2", "c9", "c5", "c1"], ["c1", "c2"])
    assert score("recall@2", item).value == 0.5
    assert score("recall@4", item).value == 1.0  # c9 repeated counts once
    assert score("mrr", item).value == 0.5
    assert score("mrr", retrieval(["c7"], ["c1"])).value == 0.0
    assert score("recall@10", retrieval([], ["c1"])).value == 0.0
    with pytest.raises(NotApplicable):
        score("mrr", retrieval(["c1"], []))
    for bad in ({"c1": "high"}, {"c1": -1.0}, {"c1": float("nan")}):
        with pytest.raises(InvalidInput):
            score("mrr", retrieval(["c1"], bad))
    with pytest.raises(NotApplicable):
        score("mrr", Scored("retrieval", {}, {"relevant": ["c1"]}, {"text": "no ranking"}))
    # A QA item's gold sources serve as its relevant chunks.
    assert score("recall@1", qa({"retrieved": ["c1"]}, sources=["c1"])).value == 1.0


@pytest.mark.parametrize("k", [1, 3, 5])
def test_ndcg_matches_scikit_learn(k: int) -> None:
    docs = ["c1", "c2", "c3", "c4", "c5", "c6"]
    grades = {"c2": 3.0, "c4": 1.0, "c5": 2.0}
    ranked = ["c4", "c1", "c5", "c2", "c6", "c3"]
    got = score("ndcg@k", retrieval(ranked, grades), k=k).value
    y_true = [[grades.get(d, 0.0) for d in docs]]
    y_score = [[len(ranked) - ranked.index(d) for d in docs]]
    assert got == pytest.approx(ndcg_score(y_true, y_score, k=k))
    assert score("ndcg@3", retrieval(["c2", "c5", "c4"], grades)).value == pytest.approx(1.0)


# -- grounding ---------------------------------------------------------------------------------


def test_citation_precision_and_recall() -> None:
    response = {
        "text": "t",
        "citations": [
            {"chunk_id": "c1", "document_id": "d1"},
            {"chunk_id": "c7", "document_id": "d2"},
        ],
    }
    item = qa(response, sources=["c1", "c2", "c3"], documents=["d1"])
    assert score("citation-precision", item).value == 0.5
    assert score("citation-recall", item).value == pytest.approx(1 / 3)
    assert score("citation-precision", item, level="document").value == 0.5
    assert score("citation-recall", item, level="document").value == 1.0
    uncited = qa({"text": "t", "citations": []}, sources=["c1"])
    assert score("citation-precision", uncited).value == 0.0
    assert score("citation-recall", uncited).value == 0.0
    # Citations from the sentences when the response has no citation list.
    sentences = qa(
        {"text": "t", "sentences": [{"text": "t", "supported": True, "citations": ["c2"]}]},
        sources=["c2"],
    )
    assert score("citation-precision", sentences).value == 1.0
    with pytest.raises(NotApplicable):
        score("citation-recall", qa({"text": "t", "citations": []}))
    with pytest.raises(NotApplicable):
        score("citation-recall", qa({"text": "t"}, sources=["c1"]))
    with pytest.raises(InvalidInput):
        get_scorer("citation-recall", level="page")


def test_supported_needs_every_sentence_backed_by_a_citation() -> None:
    backed = {"text": "t", "supported": True, "citations": ["c1"]}
    assert score("supported", qa({"sentences": [backed, backed]})).value == 1.0
    unsupported = {"text": "made up", "supported": False, "citations": ["c1"]}
    got = score("supported", qa({"sentences": [backed, unsupported]}))
    assert got.value == 0.0 and got.detail["unsupported"] == [1]
    uncited = {"text": "t", "supported": True, "citations": []}
    assert score("supported", qa({"sentences": [uncited]})).value == 0.0
    assert score("supported", qa({"sentences": [], "refused": True})).value == 1.0
    with pytest.raises(NotApplicable):
        score("supported", qa({"text": "no sentences"}))


def test_refusal_correctness() -> None:
    assert score("refusal", qa({"refused": True}, answerable=False)).value == 1.0
    assert score("refusal", qa({"refused": False}, answerable=False)).value == 0.0
    assert score("refusal", qa({"refused": False})).value == 1.0  # answerable by default
    assert score("refusal", qa({"refused": True}, answerable=True)).value == 0.0
    with pytest.raises(InvalidInput):
        score("refusal", qa({"refused": True}, answerable="no"))


# -- corpus-level classification ---------------------------------------------------------------


def test_classification_report_matches_scikit_learn() -> None:
    labels = ["a", "b", "a", "c", "b", "a", "c", "c", "a", "b"] * 4
    predicted = ["a", "b", "b", "c", "b", "a", "a", "c", "a", "c"] * 4
    probs = [{p: 0.9 if i % 3 else 0.6} for i, p in enumerate(predicted)]
    got = classification_report(labels, predicted, probs)
    assert got["accuracy"] == wilson(28, 40)
    macro = f1_score(labels, predicted, average="macro")
    assert got["macro-f1"].value == pytest.approx(macro, abs=1e-6)
    assert got["macro-f1"].low <= got["macro-f1"].value <= got["macro-f1"].high
    for c in "abc":
        p = precision_score(labels, predicted, labels=[c], average="macro")
        r = recall_score(labels, predicted, labels=[c], average="macro")
        f = f1_score(labels, predicted, labels=[c], average="macro")
        assert got[f"precision/{c}"].value == pytest.approx(p)
        assert got[f"recall/{c}"].value == pytest.approx(r)
        assert got[f"f1/{c}"].value == pytest.approx(f, abs=1e-6)
    # ECE by hand: bins of 0.6 (14 items) and 0.9 (26 items).
    correct = [lab == pre for lab, pre in zip(labels, predicted, strict=True)]
    low = [c for i, c in enumerate(correct) if i % 3 == 0]
    high = [c for i, c in enumerate(correct) if i % 3]
    ece = len(low) / 40 * abs(sum(low) / len(low) - 0.6) + len(high) / 40 * abs(
        sum(high) / len(high) - 0.9
    )
    assert got["ece"].value == pytest.approx(ece, abs=1e-6)
    assert got["ece"].low <= got["ece"].value <= got["ece"].high


def test_classification_report_edges() -> None:
    got = classification_report(["a", "b"], ["a", None])
    assert got["accuracy"].value == 0.5 and "precision/b" not in got and "ece" not in got
    with pytest.raises(InvalidInput):
        classification_report([], [])
    with pytest.raises(InvalidInput):
        classification_report(["a"], ["a", "b"])


# -- the judge ---------------------------------------------------------------------------------


def test_parse_verdict_is_strict() -> None:
    assert parse_verdict('{"score": 0.5, "reason": "half"}', "0-1") == (0.5, "half")
    assert parse_verdict('```json\n{"score": 1, "reason": "ok"}\n```', "0-1") == (1.0, "ok")
    assert parse_verdict('{"score": "pass", "reason": "ok"}', "pass-fail") == (1.0, "ok")
    for bad, scale in (
        ('Sure! {"score": 1, "reason": "x"}', "0-1"),
        ('{"score": 1.5, "reason": "x"}', "0-1"),
        ('{"score": true, "reason": "x"}', "0-1"),
        ('{"score": "pass", "reason": "x"}', "0-1"),
        ('{"score": 1, "reason": "x"}', "pass-fail"),
        ('{"score": 1}', "0-1"),
        ('{"score": 1, "reason": "x", "marking": "U"}', "0-1"),
        ('{"score": 1, "reason": 3}', "0-1"),
        ("[1]", "0-1"),
        ("", "0-1"),
    ):
        with pytest.raises(InvalidInput):
            parse_verdict(bad, scale)


@dataclass
class Judges:
    server: ChatServer
    open_u: str  # accredited UNCLASSIFIED
    open_s: str  # accredited SECRET
    secret_weights: str  # accredited SECRET, weights marked SECRET
    ws: Workspace


@pytest.fixture(scope="module")
def judges(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Judges]:
    root = tmp_path_factory.mktemp("judge")
    ws = Workspace.init(root / "ws", system_high="TOP SECRET")
    ws.session().add_user("ada", SubjectSpec(clearance="TS", roles=("admin",)))
    admin = ws.session("ada")
    with serve(reply=lambda _: '{"score": 1, "reason": "ok"}') as server:
        url = server.base_url

        def endpoint(name: str, accredited: str, marking: str = "UNCLASSIFIED") -> str:
            return register_endpoint(
                admin,
                name,
                base_url=url,
                model="tiny",
                accredited=M(accredited),
                marking=M(marking),
            ).name

        yield Judges(
            server,
            endpoint("judge-u", "U"),
            endpoint("judge-s", "S"),
            endpoint("judge-sw", "S", "S"),
            ws,
        )


@pytest.fixture
def server(judges: Judges) -> Iterator[ChatServer]:
    judges.server.requests.clear()
    yield judges.server
    judges.server.reply = lambda _: '{"score": 1, "reason": "ok"}'


def _judge(judges: Judges, name: str, **params: Any) -> Scorer:
    return get_scorer(
        "judge", generator=registered_generator(judges.ws.session("ada"), name), **params
    )


def _marked(item: Scored, marking: str) -> Scored:
    return Scored(item.kind, item.input, item.expected, item.response, M(marking))


ITEM = qa({"text": "It leaves the north pier at dawn."})


def test_the_judge_grades_with_the_rubric(judges: Judges, server: ChatServer) -> None:
    server.reply = lambda _: '{"score": 0.75, "reason": "close to the reference"}'
    judge = _judge(judges, judges.open_u, rubric="Grade factual agreement.")
    got = judge.score(_marked(ITEM, "UNCLASSIFIED"))
    assert got.value == 0.75 and not got.binary and got.name == "judge"
    assert got.detail["judge"].startswith(judges.open_u + "@")
    assert got.detail["attempts"] == 1 and got.detail["reason"] == "close to the reference"
    (request,) = server.chat_requests
    sent = json.dumps(request.body["messages"])
    assert "Grade factual agreement." in sent and "north pier at dawn" in sent
    assert "<reference>" in sent and "<response>" in sent and "<question>" in sent


def test_the_judge_pass_fail_scale(judges: Judges, server: ChatServer) -> None:
    server.reply = lambda _: '{"score": "fail", "reason": "wrong pier"}'
    got = _judge(judges, judges.open_u, scale="pass-fail").score(_marked(ITEM, "U"))
    assert got.value == 0.0 and got.binary


def test_the_judge_retries_once_on_bad_json(judges: Judges, server: ChatServer) -> None:
    answers = iter(["I think it is right!", '{"score": 1, "reason": "matches"}'])
    server.reply = lambda _: next(answers)
    got = _judge(judges, judges.open_u).score(_marked(ITEM, "U"))
    assert got.value == 1.0 and got.detail["attempts"] == 2
    retry = server.chat_requests[1].body["messages"]
    assert retry[-2] == {"role": "assistant", "content": "I think it is right!"}
    assert "not valid" in retry[-1]["content"]


def test_a_judge_that_never_answers_in_json_is_an_error_never_a_pass(
    judges: Judges, server: ChatServer
) -> None:
    server.reply = lambda _: "PASS"
    with pytest.raises(ServiceUnavailable) as raised:
        _judge(judges, judges.open_u).score(_marked(ITEM, "U"))
    assert raised.value.reason == "bad-answer"
    assert len(server.chat_requests) == 2  # one retry, then the error


@pytest.mark.parametrize(
    ("judge", "marking"),
    [("open_u", "CONFIDENTIAL"), ("open_u", "SECRET//NOFORN"), ("open_s", "TOP SECRET")],
)
def test_the_judge_never_receives_an_item_above_its_accreditation(
    judges: Judges, server: ChatServer, judge: str, marking: str
) -> None:
    scorer = _judge(judges, getattr(judges, judge))
    with pytest.raises(MarkingError) as raised:
        scorer.score(_marked(ITEM, marking))
    assert raised.value.rule == "judge-accreditation"
    assert server.requests == []  # nothing went over the wire


def test_the_judge_refuses_an_unmarked_item(judges: Judges, server: ChatServer) -> None:
    with pytest.raises(MarkingError):
        _judge(judges, judges.open_s).score(ITEM)
    assert server.requests == []


def test_the_judge_within_its_accreditation(judges: Judges, server: ChatServer) -> None:
    got = _judge(judges, judges.open_s).score(_marked(ITEM, "SECRET"))
    assert got.value == 1.0 and got.detail["reason"] == "ok"


def test_a_judge_with_higher_marked_weights_cannot_write_its_reason_down(
    judges: Judges, server: ChatServer
) -> None:
    server.reply = lambda _: '{"score": 1, "reason": "a secret-weighted remark"}'
    got = _judge(judges, judges.secret_weights).score(_marked(ITEM, "UNCLASSIFIED"))
    assert got.value == 1.0
    assert "reason" not in got.detail and "SECRET" in got.detail["reason_withheld"]


def test_a_retry_is_marked_with_the_judges_first_answer() -> None:
    """The retry carries the judge's first answer back to it: the content marking of the
    second call joins that answer's marking in."""

    class Stammering(_FakeGenerator):
        answers = iter(["not json", '{"score": 1, "reason": "ok"}'])

        def generate(self, messages: Any, *, content_marking: Marking) -> Generation:
            self.calls.append(content_marking)
            return Generation(next(self.answers), join(content_marking, M("CONFIDENTIAL")))

    fake = Stammering()
    got = JudgeScorer(fake).score(_marked(ITEM, "UNCLASSIFIED"))
    assert got.detail["attempts"] == 2
    assert fake.calls == [M("UNCLASSIFIED"), M("CONFIDENTIAL")]


class _FakeGenerator:
    """A test double of the Generator protocol (no endpoint needed)."""

    name = "fake@1"
    accredited: Marking = M("SECRET")
    marking: Marking = M("UNCLASSIFIED")
    context_tokens = 4096
    max_new_tokens = 256

    def __init__(self) -> None:
        self.calls: list[Marking] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, messages: Any, *, content_marking: Marking) -> Generation:
        self.calls.append(content_marking)
        return Generation('{"score": 0.25, "reason": "thin"}', content_marking)


def test_the_judge_sends_the_item_marking_as_the_content_marking() -> None:
    fake = _FakeGenerator()
    judge = JudgeScorer(fake)
    assert judge.score(_marked(ITEM, "CONFIDENTIAL")).value == 0.25
    assert fake.calls == [M("CONFIDENTIAL")]
    with pytest.raises(InvalidInput):
        JudgeScorer(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        JudgeScorer(fake, scale="1-10")


def test_every_scorer_is_documented() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs"
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(docs.glob("evaluation*.md")))
    for name in scorer_names():
        assert f"`{name}`" in text, f"scorer {name!r} is not documented"


def test_score_all_skips_what_does_not_apply_and_keeps_errors() -> None:
    scorers = [get_scorer(n) for n in ("normalized", "accuracy", "supported", "citation-recall")]
    item = qa({"text": "The ferry leaves the north pier at dawn.", "citations": []}, sources=["c1"])
    got = score_all(scorers, item)
    assert set(got) == {"normalized", "citation-recall"}  # accuracy: not a qa scorer
    assert got["normalized"].value == 1.0  # supported: the response has no sentences
    judge = JudgeScorer(_FakeGenerator())
    with pytest.raises(MarkingError):
        score_all([judge], item)  # an unmarked item is an error, not a skip


@settings(max_examples=150, deadline=None)
@given(accredited=markings(), item_marking=markings(), weights=markings())
def test_the_judge_never_sends_above_its_accreditation_nor_writes_down(
    accredited: Marking, item_marking: Marking, weights: Marking
) -> None:
    """For any accreditation, item marking and weights' marking: the judge is called exactly
    when its accreditation dominates the item, with the item's marking as the content marking,
    and keeps its reason only when the item's marking dominates what the judge wrote."""

    class Marked(_FakeGenerator):
        def generate(self, messages: Any, *, content_marking: Marking) -> Generation:
            self.calls.append(content_marking)
            return Generation('{"score": 1, "reason": "r"}', join(content_marking, weights))

    fake = Marked()
    fake.accredited = accredited
    fake.marking = weights
    item = Scored(ITEM.kind, ITEM.input, ITEM.expected, ITEM.response, item_marking)
    if system_high_dominates(accredited, item_marking):
        got = JudgeScorer(fake).score(item)
        assert fake.calls == [item.marking]
        assert ("reason" in got.detail) == dominates(item_marking, join(item_marking, weights))
    else:
        with pytest.raises(MarkingError):
            JudgeScorer(fake).score(item)
        assert fake.calls == []
