"""Classification by compilation in the pipeline: a chunk that combines a rule's parts is raised,
with a ``compilation`` finding naming the rule; one part alone is not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.core.errors import CheckFailed
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.plan import plan_run
from garrison.pipeline.spec import parse_pipeline
from garrison.search import search
from garrison.store.derived import Chunks
from garrison.store.documents import Documents
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

PIPELINE = """
name: comp
stages:
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""
WITH_DEDUP = """
name: comp-dedup
stages:
  - normalize: {}
  - dedup: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""


@pytest.fixture
def ws(tmp_path: Path, catalog_url: str | None) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN", db_url=catalog_url)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "both.txt").write_text("(U) Project Falcon takes delivery of uranium in May.\n")
    (folder / "one.txt").write_text("(U) Project Falcon is a logistics study of depots.\n")
    (folder / "other.txt").write_text("(U) The uranium shipment was weighed twice.\n")
    system = workspace.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    system.add_user("uma", SubjectSpec(clearance="U", roles=("viewer",)))
    system.add_user("sam", SubjectSpec(clearance="S", roles=("viewer",)))
    yield workspace
    workspace.close()


def _rule(ws: Workspace, name: str = "falcon-uranium", marking: str = "SECRET//NOFORN") -> None:
    ws.session().registry_add_compilation(
        name, when=["project falcon"], and_=["re:uran(ium)?\\b"], marking=marking,
        reason="The program's material is classified together.",
    )  # fmt: skip


def _run(ws: Workspace, spec: str = PIPELINE) -> dict[str, object]:
    return run_pipeline(ws.session(), parse_pipeline(spec, source="comp.yaml")).to_dict()


def _by_text(ws: Workspace, who: str | None = None) -> dict[str, str]:
    return {c["text"]: c["marking"] for c in Chunks(ws.session(who)).list()}


@pytest.mark.parametrize("spec", [PIPELINE, WITH_DEDUP])
def test_a_chunk_with_both_parts_is_raised_and_one_part_is_not(ws: Workspace, spec: str) -> None:
    _rule(ws)
    _run(ws, spec)
    chunks = _by_text(ws)
    both = next(t for t in chunks if "delivery of uranium" in t)
    assert chunks[both] == "SECRET//NOFORN"
    assert all(m == "UNCLASSIFIED" for t, m in chunks.items() if t != both)
    # The finding names the rule, is marked like the chunk, and never quotes the text.
    findings = Documents(ws.session()).findings(kind="compilation")
    assert len(findings) == 1
    assert "falcon-uranium" in findings[0]["detail"]
    assert "uranium in May" not in findings[0]["detail"]
    assert not Documents(ws.session("uma")).findings(kind="compilation")
    # The raised chunk is out of reach of a reader below the rule's marking, in the
    # catalog and in search; its parts alone stay readable.
    low = _by_text(ws, "uma")
    assert both not in low and len(low) == 2
    hits = search(ws.session("uma"), "uranium falcon", k=10).hits
    assert all("delivery" not in h.snippet for h in hits) and hits
    assert both in _by_text(ws, "sam")
    # The vector of the raised chunk is marked with it too.
    assert any("delivery" in h.snippet for h in search(ws.session("sam"), "uranium", k=10).hits)


def test_a_new_rule_applies_on_the_next_run_and_removal_keeps_nothing_stale(
    ws: Workspace,
) -> None:
    _run(ws)
    assert set(_by_text(ws).values()) == {"UNCLASSIFIED"}
    # Existing data does not change when a rule is added ...
    _rule(ws, marking="CONFIDENTIAL")
    assert set(_by_text(ws).values()) == {"UNCLASSIFIED"}
    # ... the next run redoes what the rule can change (the rule set is part of its key).
    plan = plan_run(ws.session(), parse_pipeline(PIPELINE, source="comp.yaml"))
    assert plan.changed and plan.compilation
    data = _run(ws)
    assert data["written"] == 3
    assert sorted(_by_text(ws).values()) == ["CONFIDENTIAL", "UNCLASSIFIED", "UNCLASSIFIED"]
    assert len(Documents(ws.session()).findings(kind="compilation")) == 1
    # A re-run replaces the finding, never duplicates it.
    _run(ws)
    assert len(Documents(ws.session()).findings(kind="compilation")) == 1
    ws.session().registry_remove("compilation", "falcon-uranium")
    _run(ws)
    assert set(_by_text(ws).values()) == {"UNCLASSIFIED"}
    assert not Documents(ws.session()).findings(kind="compilation")


def test_a_tampered_rule_stops_the_run(ws: Workspace) -> None:
    from sqlalchemy import update

    from garrison.store.models import CompilationRuleRow

    _rule(ws)
    with ws.catalog.engine.begin() as conn:
        conn.execute(update(CompilationRuleRow).values(reason="lowered"))
    with pytest.raises(CheckFailed):
        _run(ws)


def test_the_stage_raises_on_text_and_headings_alone() -> None:
    from garrison.pipeline.stages.chunk import (
        COMPILATION,
        COMPILATION_RULES,
        ChunkParams,
        ChunkStage,
    )
    from garrison.security.compilation import compilation_rule
    from garrison.security.markings import parse_marking
    from tests.pipeline.test_chunk_embed import element

    rule = compilation_rule(
        "r", ["project falcon"], ["uranium"], parse_marking("S//NF"), "together"
    )
    stage = ChunkStage(ChunkParams(model="hashing", max_tokens=64, overlap_tokens=8))
    opened = stage.open_resources({COMPILATION_RULES: (rule,)})
    items = [
        element(0, "The uranium order ships in May.", doc_id="a", section=("Project Falcon",)),
        element(0, "The uranium order ships in May.", doc_id="b", section=("Depot",)),
        element(0, "Project Falcon and uranium.", doc_id="c"),
    ]
    out = {c.doc_id: c for c in stage.process(items, opened)}
    assert out["a"].marking.banner() == "SECRET//NOFORN"
    assert out["a"].extra[COMPILATION][0]["rule"] == "r"
    assert out["b"].marking.banner() == "UNCLASSIFIED" and COMPILATION not in out["b"].extra
    assert out["c"].marking.banner() == "SECRET//NOFORN"
    # Without the rules (a bare model, or no resource), nothing is raised.
    plain = stage.process(items, stage.open_resources({}))
    assert {c.marking.banner() for c in plain} == {"UNCLASSIFIED"}
