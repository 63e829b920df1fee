"""`garrison run` end to end: chunks and embeddings, markings inherited, lineage, access."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.cli.main import main
from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline import Item, Stage, StageParams, register_stage
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import load_pipeline, parse_pipeline
from garrison.store.derived import Chunks, Lineage, dedup_report
from garrison.store.documents import Documents
from garrison.store.index import ChunkIndex
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

FAST = """
name: fast
stages:
  - normalize: {}
  - pii:
      default_action: mask
      actions: {ssn: drop}
  - quality: {}
  - dedup: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""


@pytest.fixture
def ws(tmp_path: Path, catalog_url: str | None) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN", db_url=catalog_url)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "memo.txt").write_text(
        "SECRET//NOFORN\n\n(U) The depot opened on Monday; contact ops@example.mil.\n\n"
        "(S//NF) Reserve fuel moves to depot HARROW on Thursday night.\n\nSECRET//NOFORN\n"
    )
    (folder / "copy.txt").write_text(
        "(U) The quarterly maintenance report covers forty trucks and six trailers in total.\n"
    )
    (folder / "copy2.txt").write_text(
        "(U) The quarterly maintenance report covers forty trucks and six trailers in total!\n"
    )
    (folder / "ssn.txt").write_text("(U) Applicant SSN 123-45-6789 is on file.\n")
    ingest_paths(
        workspace.session(), [str(folder)], IngestOptions(default_marking="CONFIDENTIAL//NOFORN")
    )
    yield workspace
    workspace.close()


def run_fast(ws: Workspace, **kwargs: object) -> dict[str, object]:
    report = run_pipeline(ws.session(), parse_pipeline(FAST, source="fast.yaml"), **kwargs)  # type: ignore[arg-type]
    return report.to_dict()


def test_run_produces_marked_chunks_embeddings_and_lineage(ws: Workspace) -> None:
    data = run_fast(ws)
    assert data["documents"] == 4
    assert data["chunks"] >= 3 and data["embeddings"] == data["chunks"]
    assert data["pii_by_type"].get("email") == 1  # type: ignore[union-attr]
    chunks = Chunks(ws.session()).list()
    markings = {c["marking"] for c in chunks}
    # Chunks never mix markings by default: the U and S//NF portions stay apart.
    assert {"UNCLASSIFIED", "SECRET//NOFORN"} <= markings
    memo_u = next(c for c in chunks if "depot opened" in c["text"])
    assert memo_u["marking"] == "UNCLASSIFIED"
    assert "[EMAIL]" in memo_u["text"] and "ops@example.mil" not in memo_u["text"]
    assert all("123-45-6789" not in c["text"] for c in chunks)  # dropped by the ssn action
    assert ChunkIndex(ws.root / "index").count() == data["embeddings"]
    tree = Lineage(ws.session()).of(memo_u["id"])
    assert tree["kind"] == "chunk" and tree["marking"] == "UNCLASSIFIED"
    element = tree["parents"][0]
    assert element["kind"] == "element"
    assert [s["stage"] for s in element["steps"]][:2] == ["normalize", "pii"]
    document = element["parents"][0]
    assert document["kind"] == "document" and len(document["sha256"]) == 64


def test_mixing_markings_joins_them(ws: Workspace) -> None:
    mixed = FAST.replace("overlap_tokens: 8}", "overlap_tokens: 8, mix_markings: true}")
    run_pipeline(ws.session(), parse_pipeline(mixed, source="mixed.yaml"))
    chunk = next(c for c in Chunks(ws.session()).list() if "HARROW" in c["text"])
    assert "depot opened" in chunk["text"]
    assert chunk["marking"] == "SECRET//NOFORN"


def test_near_duplicates_are_clustered_not_deleted(ws: Workspace) -> None:
    run_fast(ws)
    report = dedup_report(ws.session())
    assert report["duplicates"]["exact"] + report["duplicates"]["near"] >= 1
    [cluster] = report["clusters"]
    assert len(cluster["duplicates"]) == 1


def test_reads_are_filtered(ws: Workspace) -> None:
    run_fast(ws)
    system = ws.session()
    system.add_user("cleo", SubjectSpec(clearance="C", roles=("viewer",)))
    cleo = ws.session("cleo")
    visible = Chunks(cleo).list()
    assert visible and all(
        c["marking"] in ("UNCLASSIFIED", "CONFIDENTIAL//NOFORN") for c in visible
    )
    secret = next(c for c in Chunks(system).list() if c["marking"] == "SECRET//NOFORN")
    with pytest.raises(NotFound):
        Lineage(cleo).of(secret["id"])
    # The memo's UNCLASSIFIED chunk is readable, its SECRET//NOFORN document is not: the
    # lineage stops at the element and never names the document.
    memo_u = next(c for c in visible if "depot opened" in c["text"])
    tree = Lineage(cleo).of(memo_u["id"])
    assert tree["parents"] and all(p["parents"] == [] for p in tree["parents"])
    assert "memo.txt" not in json.dumps(tree)
    with pytest.raises(NotPermitted):
        run_pipeline(cleo, load_pipeline(None))


def test_rerun_redoes_nothing_and_full_rerun_replaces_instead_of_duplicating(
    ws: Workspace,
) -> None:
    first = run_fast(ws)
    chunks = Chunks(ws.session()).list()
    second = run_fast(ws)
    assert (second["processed"], second["written"], second["chunks"]) == (0, 0, 0)
    assert second["reused"] == first["documents"]
    assert Chunks(ws.session()).list() == chunks
    third = run_fast(ws, full=True)
    assert third["processed"] == third["written"] == first["documents"]
    assert third["chunks"] == first["chunks"]
    assert len(Chunks(ws.session()).list()) == third["chunks"]
    assert ChunkIndex(ws.root / "index").count() == third["embeddings"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stages: [{nosuch: {}}]", "unknown stage 'nosuch'"),
        ("stages: [{chunk: {max_tokens: -1}}]", "Stage 1 (chunk)"),
        (
            "stages: [{pii: {actions: {email: shred}}}]",
            "Stage 1 (pii) of bad.yaml: parameter 'actions.email'",
        ),
        ("stages: [{embed: {}}, {chunk: {}}]", "put it after 'chunk'"),
        ("stages: []", "non-empty 'stages'"),
        ("stages: [{normalize: {colour: red}}]", "parameter 'colour'"),
    ],
)
def test_invalid_pipeline_files_name_the_stage_and_parameter(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_pipeline(text, source="bad.yaml")


def test_default_pipeline_is_valid() -> None:
    spec = load_pipeline(None)
    assert [s.name for s in spec.stages] == [
        "normalize",
        "language",
        "pii",
        "quality",
        "dedup",
        "chunk",
        "embed",
    ]


def test_cli(ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = tmp_path / "fast.yaml"
    pipeline.write_text(FAST)
    root = str(ws.root)
    assert main(["run", str(pipeline), "-w", root, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["chunks"] >= 3
    assert main(["chunks", "ls", "-w", root, "--json"]) == 0
    chunks = json.loads(capsys.readouterr().out)
    assert main(["lineage", chunks[0]["id"], "-w", root, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "chunk"
    assert main(["pii", "scan", "Call 555-867-5309 or mail a@example.com", "--json"]) == 0
    assert {f["type"] for f in json.loads(capsys.readouterr().out)} == {"phone", "email"}
    assert main(["pipeline", "show", str(pipeline), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "fast"
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [{nosuch: {}}]")
    assert main(["run", str(bad), "-w", root]) == 2
    assert main(["dedup", "report", "-w", root, "--json"]) == 0
    assert "clusters" in json.loads(capsys.readouterr().out)
    docs = Documents(ws.session()).list()
    assert docs


class _ExplodeParams(StageParams):
    word: str = "HARROW"


@register_stage
class _Explode(Stage[_ExplodeParams]):
    """A stage that fails on records containing a word: the run must go on."""

    name = "test-explode"
    version = "1"
    Params = _ExplodeParams

    def process(self, items: list[Item], resource: object) -> list[Item]:
        for item in items:
            if self.params.word in item.text:
                item.failed = "test-explode: the stage could not handle this record"
        return items


def test_a_stage_failing_on_one_record_fails_only_that_record(ws: Workspace) -> None:
    text = FAST.replace("  - normalize: {}\n", "  - normalize: {}\n  - test-explode: {}\n")
    report = run_pipeline(ws.session(), parse_pipeline(text, source="explode.yaml")).to_dict()
    assert report["failed"] == 1
    assert report["chunks"] >= 3  # everything else went through
    failed = Documents(ws.session()).findings(kind="stage-failed")
    assert len(failed) == 1
    assert "could not handle" in failed[0]["detail"]
    assert failed[0].get("element_id")


def test_workers_give_the_same_result(ws: Workspace) -> None:
    one = run_fast(ws, workers=1, batch_docs=1)
    chunks_one = sorted((c["id"], c["marking"]) for c in Chunks(ws.session()).list())
    two = run_fast(ws, workers=2, batch_docs=1, full=True)
    chunks_two = sorted((c["id"], c["marking"]) for c in Chunks(ws.session()).list())
    assert one["chunks"] == two["chunks"]
    assert chunks_one == chunks_two


class _CrashParams(StageParams):
    word: str = "HARROW"


@register_stage
class _Crash(Stage[_CrashParams]):
    """A stage that kills its worker process on records containing a word."""

    name = "test-crash"
    version = "1"
    Params = _CrashParams

    def process(self, items: list[Item], resource: object) -> list[Item]:
        import os

        if any(self.params.word in item.text for item in items):
            os._exit(3)
        return items


def test_worker_processes_run_stages_registered_here_and_a_crash_fails_only_its_batch(
    ws: Workspace,
) -> None:
    # Workers come from a fork server: stages registered in this process (like these test
    # stages) must travel to them; a worker that dies fails its own batch only.
    text = FAST.replace(
        "  - normalize: {}\n", "  - normalize: {}\n  - test-explode: {}\n  - test-crash: {}\n"
    )
    report = run_pipeline(
        ws.session(), parse_pipeline(text, source="crash.yaml"), workers=2, batch_docs=1
    ).to_dict()
    failed = Documents(ws.session()).findings(kind="stage-failed")
    memo = [f for f in failed if "crashed" in f["detail"]]
    assert memo and {f["doc_id"] for f in memo} == {memo[0]["doc_id"]}
    assert report["failed"] == len(memo)
    assert report["chunks"] >= 2  # the other documents went through
