"""Dataset records that combine a compilation rule's parts are raised to the rule's marking; a
version made before the rule goes stale."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.core.errors import InvalidInput, NotPermitted
from garrison.datasets import Datasets, Selection
from garrison.datasets.export import export_version
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

FAST = """
name: fast
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 400, overlap_tokens: 0, respect_sections: false}
"""
ONLY_TEXT = ("language",)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "plan.md").write_text(
        "# (U) Project Falcon\n\n(U) The uranium order ships in May.\n\n"
        "(U) The trucks are serviced every week.\n"
    )
    (folder / "other.md").write_text("# (U) Depot hours\n\n(U) The canteen opens at noon.\n")
    system = workspace.session()
    ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    yield workspace
    workspace.close()


def _rule(ws: Workspace) -> None:
    ws.session().registry_add_compilation(
        "falcon-uranium", when=["project falcon"], and_=["uranium"], marking="SECRET//NOFORN",
        reason="The program and its material together.",
    )  # fmt: skip


def _markings(ws: Workspace, **selection: object) -> dict[str, str]:
    version = Datasets(ws.session("stew")).create("d", Selection(**selection))  # type: ignore[arg-type]
    records = Datasets(ws.session("stew")).records(version)
    return {r.text: r.marking for r in records}


@pytest.mark.parametrize("kind", ["chunks", "documents"])
def test_a_record_that_combines_the_parts_is_raised(ws: Workspace, kind: str) -> None:
    _rule(ws)
    version = Datasets(ws.session("stew")).create("d", Selection(kind=kind, fields=ONLY_TEXT))
    records = {r.text: r for r in Datasets(ws.session("stew")).records(version)}
    raised = [r for r in records.values() if r.marking == "SECRET//NOFORN"]
    assert len(raised) == 1 and "uranium" in raised[0].text and "Falcon" in raised[0].text
    assert all(r.marking == "UNCLASSIFIED" for r in records.values() if "canteen" in r.text)
    assert version.marking.banner() == "SECRET//NOFORN"
    [finding] = version.manifest["findings"]
    assert finding["record"] == raised[0].id and finding["rule"] == "falcon-uranium"
    assert finding["kind"] == "compilation"
    # Under a ceiling below the rule, the raised record is not selected.
    low = Datasets(ws.session("stew")).create(
        "low", Selection(kind=kind, fields=ONLY_TEXT, max_marking="UNCLASSIFIED")
    )
    texts = [r.text for r in Datasets(ws.session("stew")).records(low)]
    assert not any("uranium" in t and "Falcon" in t for t in texts)
    assert "findings" not in low.manifest


def test_one_part_alone_is_not_raised_unless_a_shown_field_holds_the_other(
    ws: Workspace,
) -> None:
    _rule(ws)
    plain = _markings(ws, kind="elements", fields=ONLY_TEXT)
    assert set(plain.values()) == {"UNCLASSIFIED"}
    # The section path "Project Falcon" shown beside the uranium paragraph combines them.
    shown = _markings(ws, kind="elements", fields=("section_path",))
    assert shown["The uranium order ships in May."] == "SECRET//NOFORN"
    assert shown["The trucks are serviced every week."] == "UNCLASSIFIED"


def test_a_version_made_before_the_rule_goes_stale(ws: Workspace, tmp_path: Path) -> None:
    datasets = Datasets(ws.session("stew"))
    version = datasets.create("before", Selection(kind="documents", fields=ONLY_TEXT))
    assert version.marking.banner() == "UNCLASSIFIED" and not version.stale
    _rule(ws)
    again = Datasets(ws.session("stew")).get(version.id)
    assert again.stale and again.status == "stale-marking"
    with pytest.raises(NotPermitted):
        export_version(ws.session("stew"), version.id, "jsonl", tmp_path / "out")
    # Re-created, it carries the raised marking.
    redone = Datasets(ws.session("stew")).create(
        "before", Selection(kind="documents", fields=ONLY_TEXT)
    )
    assert redone.marking.banner() == "SECRET//NOFORN" and not redone.stale


def test_an_empty_selection_stays_an_error(ws: Workspace) -> None:
    _rule(ws)
    with pytest.raises(InvalidInput):
        Datasets(ws.session("stew")).create(
            "none", Selection(kind="documents", source="nowhere", fields=ONLY_TEXT)
        )
