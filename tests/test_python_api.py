"""The Python API (``garrison.open``, ``ws.session(...)``): the same checks as every other door."""

from __future__ import annotations

from pathlib import Path

import pytest

import garrison


def test_a_workspace_and_its_sessions(tmp_path: Path) -> None:
    with garrison.init(tmp_path / "ws", system_high="SECRET//NOFORN") as ws:
        assert ws.system_high == garrison.parse_marking("S//NF")
        ws.session().add_user("val", clearance="C", roles=["viewer"])
    with garrison.open(tmp_path / "ws") as ws:
        with ws.session("val") as val:
            assert val.user == "val" and val.subject.clearance.name == "C"
            assert val.documents() == [] and val.datasets() == [] and val.chunks() == []
            with pytest.raises(garrison.NotFound):
                val.document("0" * 64)
            with pytest.raises(garrison.NotPermitted):
                val.ingest(tmp_path, default_marking="UNCLASSIFIED")
        with pytest.raises(garrison.InvalidInput, match="session is closed"):
            val.documents()
        with pytest.raises(garrison.NotFound):
            ws.session("nobody")


def test_open_without_a_workspace_fails_with_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(garrison.WorkspaceError, match="No Garrison workspace"):
        garrison.open(tmp_path / "none")


def test_parse_file_without_a_workspace(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("(S//NF) Depot ALDER holds the spares.\n", encoding="utf-8")
    result = garrison.parse_file(note)
    assert isinstance(result, garrison.Preview)
    assert (result.verdict, result.marking) == ("accept", garrison.parse_marking("S//NF"))
    assert garrison.parse_file(note, system_high="CONFIDENTIAL").verdict == "spill"
    with pytest.raises(garrison.NotFound):
        garrison.parse_file(tmp_path / "missing.txt")
