"""Dataset cards and export files of a dataset holding NATO, atomic energy and foreign markings:
the banners written in full, in the US-equivalent level's colour, and no access term lost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.datasets import Datasets, DatasetVersion, Selection
from garrison.datasets.card import banner_colors
from garrison.datasets.export import export_version
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.security.markings import access_expression, dominates, parse_marking
from garrison.store.workspace import Workspace

FAST = """
name: fast
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 32, overlap_tokens: 4}
"""
SYSTEM_HIGH = "TOP SECRET//RD-CNWDI-SIGMA 14 18/ATOMAL//FGI NATO//NOFORN"
FILES = {
    "nato.txt": "//NATO SECRET//ATOMAL\n\n(//NS//ATOMAL) The alliance depot plan is set.\n\n"
    "(//NU) The alliance newsletter is out.\n\n//NATO SECRET//ATOMAL\n",
    "rd.txt": "(S//RD-SG 14//NF) The weapon design note.\n\n"
    "(S//FRD-SG 18//NF) The stockpile note.\n",
    "ucni.txt": "(U//DCNI) The site security plan.\n\n(U) The site visitor hours.\n",
    "deu.txt": "(//DEU S//REL TO USA, DEU) The partner report.\n",
}
#: The dataset's marking: every record's join (DOD UCNI stays in the marking, off the line).
BANNER = "SECRET//RD-SIGMA 14 18/ATOMAL//FGI DEU NATO//NOFORN"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("register-export")
    workspace = Workspace.init(root / "ws", system_high=SYSTEM_HIGH)
    (root / "in").mkdir()
    for name, text in FILES.items():
        (root / "in" / name).write_text(text)
    system = workspace.session()
    ingest_paths(system, [str(root / "in")], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    Datasets(system).create("register", Selection(fields=("doc_id", "source")))
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def version(ws: Workspace) -> DatasetVersion:
    return Datasets(ws.session()).get("register")


def test_the_dataset_is_the_join_of_its_records(ws: Workspace, version: DatasetVersion) -> None:
    assert version.marking.banner() == BANNER
    assert version.manifest["marking"] == BANNER
    records = Datasets(ws.session()).records(version)
    markings = {r.marking for r in records}
    assert "//NATO SECRET//ATOMAL" in markings and "UNCLASSIFIED//DOD UCNI" in markings
    assert "//DEU SECRET//REL TO USA, DEU" in markings
    # The dataset keeps what its line does not show: reading it needs every record's terms.
    for record in records:
        assert dominates(version.marking, parse_marking(record.marking)), record.marking
    expression = access_expression(version.marking)
    for term in ("NATO:ATOMAL", "AEA:RD", "AEA:SIGMA-14", "AEA:SIGMA-18", "AEA:DCNI"):
        assert term in expression, term


def test_card_and_export_files_carry_the_banner_in_full(
    ws: Workspace, version: DatasetVersion, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    export_version(ws.session(), "register", "jsonl", out)
    assert (out / "BANNER.txt").read_text().strip() == BANNER
    md = (out / "card.md").read_text().strip().splitlines()
    assert md[0] == md[-1] == f"**{BANNER}**"
    html = (out / "card.html").read_text()
    assert html.count(BANNER) >= 2
    assert html.count("background:#C8102E;color:#FFFFFF") == 2  # SECRET's red
    card = json.loads((out / "card.json").read_text())
    assert card["banner"]["text"] == BANNER and card["banner"]["background"] == "#C8102E"
    rows = [
        json.loads(line)
        for path in sorted((out / "data").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    assert {r["marking"] for r in rows} >= {"//NATO SECRET//ATOMAL", "UNCLASSIFIED//DOD UCNI"}


@pytest.mark.parametrize(
    ("banner", "colors"),
    [
        ("//NATO SECRET//ATOMAL", ("#C8102E", "#FFFFFF")),
        ("//COSMIC TOP SECRET//BOHEMIA", ("#FF8C00", "#000000")),
        ("//NATO RESTRICTED", ("#0033A0", "#FFFFFF")),
        ("//JOINT SECRET CAN USA//REL TO USA, CAN", ("#C8102E", "#FFFFFF")),
        ("(//DEU C)", ("#0033A0", "#FFFFFF")),
        ("TOP SECRET//RD-CNWDI//NOFORN", ("#FF8C00", "#000000")),
    ],
)
def test_card_colours_follow_the_us_equivalent_level(banner: str, colors: tuple[str, str]) -> None:
    assert banner_colors(parse_marking(banner)) == colors
