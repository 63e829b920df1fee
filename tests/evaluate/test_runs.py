"""Runs of the assistant, a test generator and a classifier on suites from a marked corpus."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.evaluate import ItemResult, Runs, SystemSpec, parse_system
from garrison.evaluate._suite_items import NewItem
from garrison.evaluate._suites import Suites
from garrison.models import register_endpoint
from garrison.security.markings import parse_marking
from garrison.store.models import EvalRunItemRow
from garrison.store.workspace import Workspace
from tests.evaluate.run_fixtures import canary_chunks, qa_suite, ws  # noqa: F401
from tests.models.openai_server import ChatServer, serve

M = parse_marking


@pytest.fixture(scope="module")
def suite(ws: Workspace) -> str:  # noqa: F811
    return qa_suite(ws).ref


@pytest.fixture(scope="module")
def server() -> Iterator[ChatServer]:
    def reply(messages: list[dict[str, str]]) -> str:
        question = messages[-1]["content"]
        word = question.split("ferry ")[-1].split(" ")[0]
        return f"The harbor ferry {word} leaves the north pier at dawn."

    with serve(reply=reply) as running:
        yield running


@pytest.fixture(scope="module")
def endpoints(ws: Workspace, server: ChatServer) -> dict[str, str]:  # noqa: F811
    admin = ws.session("ada")
    out = {}
    for name, accredited in (("gen-c", "CONFIDENTIAL"), ("gen-ts", "TOP SECRET")):
        version = register_endpoint(
            admin, name, base_url=server.base_url, model="tiny", accredited=M(accredited)
        )
        out[name] = version.ref
    return out


# -- the assistant ------------------------------------------------------------------------------


def test_assistant_run_marks_items_and_scores_them(ws: Workspace, suite: str) -> None:  # noqa: F811
    runs = Runs(ws.session("ted"))
    summary = runs.start(suite, parse_system("assistant:k=4"), concurrency=2)
    assert summary.status == "complete"
    assert summary.counts["items"] == 4 and summary.counts["scored"] == 4
    assert summary.marking == M("TOP SECRET")
    for name in ("token-f1", "citation-recall", "normalized"):
        metric = summary.metrics[name]
        assert metric["low"] <= metric["value"] <= metric["high"] and metric["n"] == 4
    # The extractive assistant quotes the gold chunk for every ferry.
    assert summary.metrics["citation-recall"]["value"] == 1.0
    results = {r.item_id: r for r in runs.items(summary.ref, transcripts=True)}
    assert len(results) == 4
    for result in results.values():
        item = result.transcript["item"]
        assert result.marking == M(item["marking"]) or M(item["marking"]) != result.marking
        response_marking = M(result.transcript["response_marking"])
        from garrison.security.markings import dominates

        assert dominates(result.marking, response_marking)
        assert dominates(result.marking, M(item["marking"]))
        assert result.latency_ms > 0


def test_assistant_acts_as_the_named_subject(ws: Workspace, suite: str) -> None:  # noqa: F811
    runs = Runs(ws.session("ted"))
    summary = runs.start(suite, parse_system("assistant:k=4", subject="uma"))
    # uma (U) may read only the U item: the others are not eligible, never asked.
    assert summary.counts["scored"] == 1
    assert summary.counts["not-eligible"] == 3
    assert summary.marking == M("TOP SECRET")  # the items themselves are still marked
    scored = [r for r in runs.items(summary.ref) if r.status == "scored"]
    assert [r.marking for r in scored] == [M("UNCLASSIFIED")]


def test_run_marking_and_access(ws: Workspace, suite: str) -> None:  # noqa: F811
    ted = Runs(ws.session("ted"))
    summary = ted.start(suite, parse_system("assistant:k=4"))
    # A SECRET evaluator does not dominate the run (TS): it looks missing, everywhere.
    eve = Runs(ws.session("eve"))
    assert summary.id not in {s.id for s in eve.list()}
    for call in (
        lambda: eve.get(summary.ref),
        lambda: list(eve.items(summary.ref)),
        lambda: eve.report(summary.ref),
        lambda: eve.transcript(summary.ref, "x" * 64),
    ):
        with pytest.raises(NotFound):
            call()
    assert summary.id in {s.id for s in ted.list()}


def test_item_results_are_read_under_their_own_marking(ws: Workspace) -> None:  # noqa: F811
    # Items at U and C; acting as eve (S), the answers' context reaches S: the responses are
    # marked higher than their items, and so is the run.
    version = qa_suite(ws, "ferries-low", words=("zebrafox", "quokkamoon"))
    eve = Runs(ws.session("eve"))
    higher = eve.start(version.ref, parse_system("assistant:k=4"))
    assert higher.marking == M("SECRET")
    assert {r.marking for r in eve.items(higher.ref)} == {M("SECRET")}
    # Under a CONFIDENTIAL ceiling the run is C: sam (S viewer) reads it all, uma nothing.
    summary = eve.start(version.ref, parse_system("assistant:k=4,max_marking=CONFIDENTIAL"))
    assert summary.marking == M("CONFIDENTIAL")
    sam = Runs(ws.session("sam"))
    assert len(list(sam.items(summary.ref))) == 2
    with pytest.raises(NotFound):
        Runs(ws.session("uma")).get(summary.ref)
    item_id = next(iter(sam.items(summary.ref))).item_id
    transcript = sam.transcript(summary.ref, item_id)
    assert transcript["item"]["id"] == item_id and "response" in transcript


def test_only_evaluators_run(ws: Workspace, suite: str) -> None:  # noqa: F811
    with pytest.raises(NotPermitted):
        Runs(ws.session("sam")).start(suite, parse_system("assistant"))
    with pytest.raises(NotPermitted):
        Runs(ws.session("sam")).begin_external("redteam", SystemSpec("assistant", "assistant"), {})


def test_transcripts_are_sealed_and_bound(ws: Workspace, suite: str) -> None:  # noqa: F811
    from sqlalchemy import select

    summary = Runs(ws.session("ted")).start(suite, parse_system("assistant:k=2"))
    with ws.catalog.transaction() as orm:
        rows = list(orm.scalars(select(EvalRunItemRow).where(EvalRunItemRow.run_id == summary.id)))
        assert rows
        for row in rows:
            assert "harbor" not in row.transcript and "ferry" not in row.transcript
        # A transcript moved to another item's row no longer opens (nor verifies).
        a, b = rows[0], rows[1]
        orm.execute(
            EvalRunItemRow.__table__.update()
            .where(EvalRunItemRow.id == a.id)
            .values(transcript=b.transcript)
        )
    with pytest.raises(Exception):  # noqa: B017 - a dropped row or a failed seal, both closed
        Runs(ws.session("ted")).transcript(summary.ref, a.item_id)


# -- a generator --------------------------------------------------------------------------------


def test_generator_never_receives_items_above_its_accreditation(
    ws: Workspace,  # noqa: F811
    suite: str,
    server: ChatServer,
    endpoints: dict[str, str],
) -> None:
    server.requests.clear()
    runs = Runs(ws.session("ted"))
    summary = runs.start(suite, SystemSpec("generator", endpoints["gen-c"]), concurrency=2)
    assert summary.counts["scored"] == 2  # U and C
    assert summary.counts["not-eligible"] == 2  # S and TS: never sent
    sent = json.dumps([r.body for r in server.chat_requests])
    assert len(server.chat_requests) == 2
    assert "walruspeak" not in sent and "narwhalglow" not in sent
    assert summary.metrics["normalized"]["value"] == 1.0


def test_cache_means_a_rerun_never_asks_again(
    ws: Workspace,  # noqa: F811
    suite: str,
    server: ChatServer,
    endpoints: dict[str, str],
) -> None:
    runs = Runs(ws.session("ted"))
    spec = SystemSpec("generator", endpoints["gen-ts"])
    runs.start(suite, spec)
    server.requests.clear()
    again = runs.start(suite, spec)
    assert again.counts["scored"] == 4
    assert server.chat_requests == []
    # Other parameters are another cache entry: asked again.
    runs.start(suite, SystemSpec("generator", endpoints["gen-ts"], {"max_tokens": 32}))
    assert len(server.chat_requests) == 4


# -- classifiers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> str:  # noqa: F811
    from garrison.models import Models
    from tests.models.registered import classifier_folder
    from tests.models.tiny import tiny_sentence_transformer

    root = tmp_path_factory.mktemp("models")
    models = Models(ws.session("ted"))
    embedder = models.register(
        kind="embedder", name="tiny", folder=tiny_sentence_transformer(root / "t")
    )
    version = models.register(
        kind="classifier",
        name="topic",
        folder=classifier_folder(root, embedder.id, "topic"),
        base=embedder.id,
    )
    return version.ref


def test_classifier_run(ws: Workspace, classifier: str) -> None:  # noqa: F811
    session = ws.session("ted")
    items = [
        NewItem(
            input={"text": f"Convoy report {i}: the road is {'blocked' if i % 3 else 'clear'}."},
            expected={"label": "urgent" if i % 3 else "routine"},
            marking=M("SECRET" if i % 2 else "UNCLASSIFIED"),
        )
        for i in range(9)
    ]
    version = Suites(session).create("triage", "classification", items)
    summary = Runs(session).start(version.ref, SystemSpec("classifier", classifier))
    assert summary.counts["scored"] == 9
    # The test classifier says "urgent" for every text: right on the 6 urgent items.
    assert summary.metrics["accuracy"]["value"] == pytest.approx(6 / 9)
    assert summary.metrics["accuracy"]["low"] < 6 / 9 < summary.metrics["accuracy"]["high"]
    assert summary.marking == M("SECRET")
    with pytest.raises(InvalidInput):  # a classifier does not answer QA suites
        Runs(session).start(qa_suite(ws).ref, SystemSpec("classifier", classifier))


# -- external runs ------------------------------------------------------------------------------


def test_external_run_records_items(ws: Workspace) -> None:  # noqa: F811
    runs = Runs(ws.session("ted"))
    writer = runs.begin_external("redteam", SystemSpec("assistant", "assistant"), {"probes": 2})
    writer.record(
        ItemResult("p1", "scored", M("SECRET"), {"leak": 0.0}, {"leak": True}, cluster="d1")
    )
    writer.record(
        ItemResult("p2", "scored", M("UNCLASSIFIED"), {"leak": 1.0}, {"leak": True}, cluster="d2")
    )
    summary = writer.finish()
    assert summary.kind == "redteam" and summary.status == "complete"
    assert summary.marking == M("SECRET")
    assert summary.metrics["leak"]["n"] == 2
    with pytest.raises(InvalidInput):
        writer.record(ItemResult("p3", "scored", M("UNCLASSIFIED")))
    with pytest.raises(InvalidInput):
        runs.resume(summary.ref)


def test_parse_system() -> None:
    spec = parse_system("assistant:k=2,generator=gen@1", subject="uma")
    assert (spec.kind, spec.parameters, spec.subject) == (
        "assistant",
        {"k": 2, "generator": "gen@1"},
        "uma",
    )
    assert parse_system("embedder:tiny,k=5").parameters == {"k": 5}
    assert parse_system("classifier:topic@1").ref == "topic@1"
    for bad in (
        "robot:x",
        "generator",
        "assistant:k=zero",
        "assistant:temperature=1",
        "assistant:k",
    ):
        with pytest.raises(InvalidInput):
            parse_system(bad)


def test_report_is_marked_and_has_intervals(ws: Workspace, suite: str, tmp_path: Path) -> None:  # noqa: F811
    from garrison.evaluate.report import render_html, report_json

    runs = Runs(ws.session("ted"))
    summary = runs.start(suite, parse_system("assistant:k=4"))
    report = runs.report(summary.ref)
    assert report.marking == M("TOP SECRET")
    assert report.power and report.metrics
    for metric in report.metrics:
        assert metric.estimate.low <= metric.estimate.value <= metric.estimate.high
        assert "marking" in metric.slices
    html = render_html(report)
    assert "TOP SECRET" in html
    assert report_json(report)["marking"] == "TOP SECRET" or "TOP SECRET" in json.dumps(
        report_json(report)
    )
    samples = runs.samples(summary.ref)
    assert len(samples) == 4


def test_model_card_shows_its_latest_evaluation(
    ws: Workspace,  # noqa: F811
    classifier: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from garrison.cli.main import main
    from garrison.models import Models

    session = ws.session("ted")
    version = Models(session).get(classifier)
    items = [
        NewItem(input={"text": f"Road {i} is open."}, expected={"label": "routine"}, marking=M("U"))
        for i in range(5)
    ]
    suite = Suites(session).create("triage-u", "classification", items)
    runs = Runs(session)
    low = runs.start(suite.ref, SystemSpec("classifier", classifier))
    card = runs.latest_for_model(version.id, version.marking)
    assert card is not None and card["run"] == low.ref
    assert card["metrics"]["accuracy"]["value"] == 0.0 and card["metrics"]["accuracy"]["n"] == 5
    code = main(["model", "card", classifier, "--as", "ted", "-w", str(ws.root)])
    out = capsys.readouterr().out
    assert code == 0 and "## Latest evaluation" in out and low.ref in out and "accuracy" in out
    # A newer run marked above the card (SECRET items): the card only names it.
    secret = [NewItem(input={"text": "Bridge out."}, expected={"label": "urgent"}, marking=M("S"))]
    high_suite = Suites(session).create("triage-s", "classification", secret)
    high = runs.start(high_suite.ref, SystemSpec("classifier", classifier))
    assert runs.latest_for_model(version.id, version.marking) == {"run": high.ref}
    code = main(["model", "card", classifier, "--as", "ted", "-w", str(ws.root)])
    out = capsys.readouterr().out
    assert code == 0 and f"garrison eval show {high.ref}" in out and "Bridge" not in out


def test_embedder_run_on_a_retrieval_suite(ws: Workspace, classifier: str) -> None:  # noqa: F811
    session = ws.session("ted")
    chunks = canary_chunks(ws)
    items = [
        NewItem(
            input={"query": f"cargo manifest {word} crates"},
            expected={"relevant": [chunk_id]},
            marking=session.parse_marking(banner),
            sources=(chunk_id,),
            cluster=doc_id,
        )
        for word, (chunk_id, doc_id, banner) in sorted(chunks.items())
    ]
    version = Suites(session).create("find-ferries", "retrieval", items)
    runs = Runs(session)
    summary = runs.start(version.ref, parse_system("embedder:tiny,k=3"))
    assert summary.counts["scored"] == 4
    for name in ("recall@10", "mrr", "ndcg@10"):
        metric = summary.metrics[name]
        assert 0.0 <= metric["low"] <= metric["value"] <= metric["high"] <= 1.0
    results = list(runs.items(summary.ref, transcripts=True))
    for result in results:
        retrieved = result.transcript["response"]["retrieved"]
        assert 1 <= len(retrieved) <= 3
    # Acting as eve (S): the TS document is not a candidate, and the TS item not eligible.
    eve = Runs(ws.session("ted")).start(version.ref, parse_system("embedder:tiny", subject="eve"))
    assert eve.counts["not-eligible"] == 1 and eve.counts["scored"] == 3
    ts_chunk = chunks["narwhalglow"][0]
    for result in Runs(ws.session("ted")).items(eve.ref, transcripts=True):
        assert ts_chunk not in result.transcript.get("response", {}).get("retrieved", [])


def test_holdout_runs_show_items_to_evaluators_only(ws: Workspace) -> None:  # noqa: F811
    from tests.evaluate.run_fixtures import qa_items

    session = ws.session("ted")
    items = qa_items(ws, words=("zebrafox",))
    version = Suites(session).create("hidden", "qa", items, holdout=True)
    summary = Runs(session).start(version.ref, parse_system("assistant:k=2,max_marking=U"))
    assert summary.marking == M("UNCLASSIFIED")
    uma = Runs(ws.session("uma"))
    assert uma.get(summary.ref).counts["scored"] == 1  # the figures, not the items
    with pytest.raises(NotPermitted):
        list(uma.items(summary.ref))
    (held,) = Runs(session).items(summary.ref, transcripts=True)
    with pytest.raises(NotPermitted):
        uma.transcript(summary.ref, held.item_id)
    assert "zebrafox" in json.dumps(held.transcript)


def test_items_above_the_ceiling_are_not_eligible(ws: Workspace, suite: str) -> None:  # noqa: F811
    summary = Runs(ws.session("ted")).start(suite, parse_system("assistant:k=4,max_marking=C"))
    assert summary.counts["scored"] == 2 and summary.counts["not-eligible"] == 2
