"""A blob altered on disk: found by its check on read, the document marked damaged (audited),
nothing of it served by search or the documents API, reported by ``garrison doctor``, and
restored by ingesting the file again."""

from __future__ import annotations

from pathlib import Path

import pytest

from garrison.cli.main import main
from garrison.core.errors import CheckFailed
from garrison.search import search
from garrison.store.documents import Documents, original_bytes
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.faults.faults import PIPELINE, full_state, write_corpus
from tests.pipeline.test_incremental import DEFAULT, SYSTEM_HIGH, assert_index_matches_catalog


def corrupt(ws: Workspace, doc_id: str) -> None:
    path = ws.blobs.path(doc_id)
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0x01  # one bit of the ciphertext: the AES-GCM tag no longer matches
    path.write_bytes(bytes(raw))


def hits_of(ws: Workspace, doc_id: str) -> list[str]:
    found = search(ws.session(), "crate counted at depot", k=200)
    return [h.chunk_id for h in found.hits if h.doc_id == doc_id]


def test_corrupted_blob_is_detected_marked_damaged_never_served_and_repaired(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_corpus(tmp_path / "corpus", files=6)
    pipeline = tmp_path / "fast.yaml"
    pipeline.write_text(PIPELINE)
    root = tmp_path / "ws"
    Workspace.init(root, system_high=SYSTEM_HIGH).close()
    args = ["-w", str(root)]
    assert main(["ingest", str(corpus), *args, "--default-marking", DEFAULT]) == 0
    assert main(["run", str(pipeline), *args]) == 0
    ws = Workspace.open(root)
    try:
        before = full_state(ws)
        secret = [d for d in Documents(ws.session()).list() if d["marking"].startswith("SECRET")]
        victim = secret[0]["id"]
        ws.session().add_user("ustew", SubjectSpec(clearance="U", roles=("steward",)))
        assert hits_of(ws, victim)
        corrupt(ws, victim)

        with pytest.raises(CheckFailed, match="damaged"):
            original_bytes(ws.session(), victim)
        shown = Documents(ws.session()).show(victim)
        assert shown["status"] == "damaged" and shown["reason"] == "blob-corrupt"
        # A steward who may not read its marking does not learn of it, damaged or not.
        low = Documents(ws.session("ustew"))
        assert victim not in {d["id"] for d in low.list()}
        assert low.list(status="damaged") == []
        assert hits_of(ws, victim) == []  # search serves nothing of it
        state = full_state(ws)
        assert victim not in state["live"]
        assert all(c[1] != victim for c in state["chunks"])
        assert_index_matches_catalog(state)
        events = [e for e in ws.audit.tail(20) if e.action == "doc.damaged"]
        assert [e.object_id for e in events] == [victim]
        # The other documents are untouched.
        assert {c for c in state["chunks"]} == {c for c in before["chunks"] if c[1] != victim}
    finally:
        ws.close()

    capsys.readouterr()
    corrupt_other = Workspace.open(root)
    try:
        second = full_state(corrupt_other)["live"][0]
        corrupt(corrupt_other, second)
    finally:
        corrupt_other.close()
    # doctor finds one nobody has read yet, marks it damaged and fails (exit 5).
    assert main(["doctor", *args, "--json"]) != 0
    out = capsys.readouterr().out
    assert '"originals"' in out and second in out

    # Ingesting the files again restores both; the next run derives them again.
    assert main(["ingest", str(corpus), *args, "--default-marking", DEFAULT]) == 0
    assert main(["run", str(pipeline), *args]) == 0
    ws = Workspace.open(root)
    try:
        assert original_bytes(ws.session(), victim)[1]
        assert full_state(ws) == before
    finally:
        ws.close()
