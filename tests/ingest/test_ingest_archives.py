"""Archives end to end: members become child documents, and hostile ones never stop a run."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.store.documents import Documents
from garrison.store.models import DocumentRow, ElementRow, FindingRow
from garrison.store.workspace import Workspace

SYSTEM_HIGH = "SECRET//NOFORN"
DEFAULT = "CONFIDENTIAL//NOFORN"
SPILL_CANARY = "Collection shows the tanker BLUEHERON 4417 turned north at dawn."
MIB = 1024 * 1024


@pytest.fixture
def ws(tmp_path: Path, catalog_url: str | None) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high=SYSTEM_HIGH, db_url=catalog_url)
    yield workspace
    workspace.close()


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def ingest_one(ws: Workspace, tmp_path: Path, name: str, data: bytes, max_depth: int = 5) -> str:
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)
    report = ingest_paths(
        ws.session(), [str(folder)], IngestOptions(default_marking=DEFAULT, max_depth=max_depth)
    )
    [result] = [r for r in report.results if r.uri.endswith(name)]
    assert result.doc_id is not None
    return result.doc_id


def rows(ws: Workspace) -> dict[str, tuple[str, str | None, str | None]]:
    """uri fragment after the file name -> (status, reason, parent id)."""
    with ws.catalog.transaction() as orm:
        return {
            r.uri.split("/")[-1]: (r.status, r.reason, r.parent_id)
            for r in orm.scalars(select(DocumentRow))
        }


def finding_kinds(ws: Workspace, doc_id: str) -> set[str]:
    with ws.catalog.transaction() as orm:
        return set(orm.scalars(select(FindingRow.kind).where(FindingRow.doc_id == doc_id)))


def test_zip_members_become_marked_child_documents(ws: Workspace, tmp_path: Path) -> None:
    data = zip_of(
        {
            "ops/roster.txt": b"(S//NF) Night shift names.\n",
            "ops/menu.txt": b"(U) Soup on Tuesday.\n",
        }
    )
    zip_id = ingest_one(ws, tmp_path, "bundle.zip", data)
    docs = {d["id"]: d for d in Documents(ws.session()).list()}
    children = {d["uri"].split("#", 1)[1]: d for d in docs.values() if d["parent_id"] == zip_id}
    assert set(children) == {"ops/roster.txt", "ops/menu.txt"}
    assert children["ops/roster.txt"]["marking"] == "SECRET//NOFORN"
    assert children["ops/menu.txt"]["marking"] == "UNCLASSIFIED"
    assert docs[zip_id]["marking"] == "SECRET//NOFORN"
    assert docs[zip_id]["status"] == "parsed"


def test_archives_nested_past_max_depth_are_quarantined(ws: Workspace, tmp_path: Path) -> None:
    data = zip_of({"leaf.txt": b"(U) The bottom.\n"})
    for level in (3, 2, 1):
        data = zip_of({f"z{level}.zip": data})
    top = ingest_one(ws, tmp_path, "z0.zip", data, max_depth=2)
    found = rows(ws)
    assert found["z0.zip"][:2] == ("parsed", None)
    assert found["z0.zip#z1.zip"][:2] == ("parsed", None)
    assert found["z0.zip#z1.zip#z2.zip"][:2] == ("parsed", None)
    assert found["z0.zip#z1.zip#z2.zip#z3.zip"][:2] == ("quarantined", "archive-limit")
    holder = found["z0.zip#z1.zip#z2.zip#z3.zip"][2]
    assert holder is not None and "attachment-quarantined" in finding_kinds(ws, holder)
    assert top


def test_hostile_xml_inside_a_zip_is_quarantined(ws: Workspace, tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("ENTITY-CANARY-7731", encoding="utf-8")
    xxe = (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE r [<!ENTITY x SYSTEM "file://{canary}">]>\n'
        "<r><p>&x;</p></r>\n"
    )
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    laughs = f'<?xml version="1.0"?>\n<!DOCTYPE lolz [{"".join(entities)}]>\n<lolz>&lol9;</lolz>\n'
    zip_id = ingest_one(
        ws,
        tmp_path,
        "xml.zip",
        zip_of({"xxe.xml": xxe.encode(), "laughs.xml": laughs.encode(), "ok.txt": b"(U) ok\n"}),
    )
    found = rows(ws)
    assert found["xml.zip"][:2] == ("parsed", None)
    assert found["xml.zip#xxe.xml"][:2] == ("quarantined", "hostile-content")
    assert found["xml.zip#laughs.xml"][:2] == ("quarantined", "hostile-content")
    assert "attachment-quarantined" in finding_kinds(ws, zip_id)
    with ws.catalog.transaction() as orm:
        texts = list(orm.scalars(select(ElementRow.text)))
    assert not any("ENTITY-CANARY" in t or "lollol" in t for t in texts)


def test_a_spill_inside_a_zip_spills_the_zip(ws: Workspace, tmp_path: Path) -> None:
    data = zip_of({"a.txt": b"(U) Harmless.\n", "b.txt": f"(TS//SI//NF) {SPILL_CANARY}\n".encode()})
    zip_id = ingest_one(ws, tmp_path, "spill.zip", data)
    with ws.catalog.transaction() as orm:
        row = orm.get(DocumentRow, zip_id)
        assert row is not None and (row.status, row.blob) == ("spilled", False)
        assert set(orm.scalars(select(DocumentRow.status))) == {"spilled"}
        assert orm.scalar(select(func.count()).select_from(ElementRow)) == 0
    assert not ws.blobs.exists(zip_id)
    assert not any(p.is_file() for p in (ws.root / "blobs").rglob("*"))
    for path in ws.root.rglob("*"):
        if path.is_file():
            assert SPILL_CANARY.encode() not in path.read_bytes(), path


def test_a_zip_bomb_is_quarantined_and_the_run_goes_on(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    buf = io.BytesIO()
    with (
        zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open("zeros.bin", "w") as fh,
    ):
        for _ in range(20):
            fh.write(bytes(MIB))
    (folder / "bomb.zip").write_bytes(buf.getvalue())
    (folder / "note.txt").write_text("(U) Still ingested.\n")
    report = ingest_paths(ws.session(), [str(folder)], IngestOptions(default_marking=DEFAULT))
    outcomes = {Path(r.uri).name: (r.outcome, r.reason) for r in report.results}
    assert outcomes == {
        "bomb.zip": ("quarantined", "archive-limit"),
        "note.txt": ("parsed", None),
    }
