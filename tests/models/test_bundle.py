"""Model cards and signed model bundles: export, verified import into another workspace with
the same id, marking, lineage and card; every kind of tampering refused with nothing
registered; spills; who may export and import; cards in three forms with banners, escaped."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from garrison.core.errors import CheckFailed, InvalidInput, KeyFileError, NotFound, NotPermitted
from garrison.datasets import Datasets, Selection
from garrison.datasets.export import export_public_key
from garrison.datasets.signing import file_sha256
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.models import Models, open_embedder
from garrison.models._bundle import export_model, import_model
from garrison.models._card import (
    card_data,
    metric_rows,
    model_card,
    render_html,
    render_json,
    render_markdown,
)
from garrison.models._registry import manifest_id
from garrison.security import crypto
from garrison.security.audit import AuditAction
from garrison.security.markings import parse_marking
from garrison.store.keys import dataset_signing_key
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.models.tiny import tiny_sentence_transformer

HOSTILE = "<script>alert('x')</script>"
METRICS = {
    "test": {
        "accuracy": {"value": 0.875, "low": 0.75, "high": 0.95},
        "per_class": {"alpha": {"precision": {"value": 0.9, "low": 0.8, "high": 1.0}}},
        "n": 24,
    },
    "ece": {"value": None, "low": None, "high": None},
}


def _weights(folder: Path, payload: bytes) -> Path:
    folder.mkdir(parents=True)
    (folder / "head.safetensors").write_bytes(payload)
    (folder / "sub").mkdir()
    (folder / "sub" / "classifier.json").write_text('{"labels": ["alpha", "beta"]}')
    return folder


def _users(ws: Workspace) -> None:
    system = ws.session()
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    system.add_user("eve", SubjectSpec(clearance="S", roles=("evaluator",)))
    system.add_user("ustew", SubjectSpec(clearance="U", roles=("steward",)))
    system.add_user("vic", SubjectSpec(clearance="S", roles=("viewer",)))


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("bundle-src")
    ws = Workspace.init(root / "ws", system_high="SECRET//NOFORN")
    _users(ws)
    notes = root / "notes"
    notes.mkdir()
    for i in range(6):
        body = f"(U) Depot {i} report on fuel convoys and bridges number {i * 3}.\n\n" * 2
        if i % 2:
            body = f"SECRET\n\n{body}(S) Radar intercept {i} near the river.\n\nSECRET\n"
        (notes / f"n{i}.txt").write_text(body)
    (root / "scratch").mkdir()
    (root / "scratch" / "s.txt").write_text("(U) Scratch note on weather and storms.\n")
    system = ws.session()
    ingest_paths(system, [str(notes)], IngestOptions(default_marking="U", source="notes"))
    ingest_paths(system, [str(root / "scratch")], IngestOptions(default_marking="U", source="sc"))
    stew = ws.session("stew")
    Datasets(stew).create(
        "notes",
        Selection(kind="documents", source="notes"),
        ratios={"train": 0.5, "test": 0.5},
        seed=3,
    )
    Datasets(stew).create("scratch", Selection(kind="documents", source="sc"))
    models = Models(stew)
    models.register(kind="embedder", name="base", folder=_weights(root / "base", b"base-w"))
    models.register(
        kind="classifier",
        name="topic",
        folder=_weights(root / "topic", b"topic-weights"),
        marking=parse_marking("SECRET"),
        base="base",
        datasets=["notes"],
        parameters={"trainer": "logreg", "c": 0.5, "note": HOSTILE},
        seeds={"train": 7},
        card={
            "intended_use": f"Sorting notes {HOSTILE}",
            "metrics": METRICS,
            "limitations": ["Trained on two dozen notes."],
            "license": HOSTILE,
        },
    )
    models.register(
        kind="classifier",
        name="scratchy",
        folder=_weights(root / "scratchy", b"scratchy"),
        datasets=["scratch"],
    )
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def trusted(src: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "src.pub"
    export_public_key(src.root, path)
    return path


@pytest.fixture(scope="module")
def bundle(src: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "topic"
    export_model(src.session("stew"), "topic", out)
    return out


@pytest.fixture
def copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(bundle, target)
    return target


@pytest.fixture
def dst(tmp_path: Path) -> Iterator[Workspace]:
    ws = Workspace.init(tmp_path / "dst", system_high="SECRET//NOFORN")
    _users(ws)
    ws.session().add_user("conny", SubjectSpec(clearance="C", roles=("steward",)))
    yield ws
    ws.close()


def _nothing_registered(ws: Workspace) -> None:
    assert Models(ws.session()).list() == []
    blobs = [p for p in (ws.root / "blobs").rglob("*") if p.is_file()]
    assert blobs == []


def _resum(root: Path) -> None:
    """Rewrite SHA256SUMS to match the files as they are now (an attacker's move)."""
    names = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name not in ("SHA256SUMS", "SHA256SUMS.sig")
    )
    (root / "SHA256SUMS").write_text("".join(f"{file_sha256(root / n)}  {n}\n" for n in names))


def _resign(root: Path, ws: Workspace) -> None:
    """Sign SHA256SUMS again with ``ws``'s key (as a holder of the real key could)."""
    key = dataset_signing_key(ws.root)
    sig = json.loads((root / "SHA256SUMS.sig").read_text())
    sig["key_id"] = crypto.fingerprint(key.public_key())
    sig["signature"] = crypto.sign(key, (root / "SHA256SUMS").read_bytes()).hex()
    (root / "SHA256SUMS.sig").write_text(json.dumps(sig))


# -- the bundle -----------------------------------------------------------------------------------


def test_a_bundle_holds_weights_card_manifest_sums_and_a_signature(
    src: Workspace, bundle: Path, trusted: Path
) -> None:
    version = Models(src.session("stew")).resolve("topic")
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert files == [
        "BANNER.txt",
        "SHA256SUMS",
        "SHA256SUMS.sig",
        "card.html",
        "card.json",
        "card.md",
        "manifest.json",
        "weights/head.safetensors",
        "weights/sub/classifier.json",
    ]
    assert (bundle / "BANNER.txt").read_text() == "SECRET\n"
    assert (bundle / "weights/head.safetensors").read_bytes() == b"topic-weights"
    document = json.loads((bundle / "manifest.json").read_text())
    assert document["manifest"] == version.manifest
    assert manifest_id(document["manifest"]) == document["id"] == version.id
    header = document["bundle"]
    assert header["marking"] == "SECRET" and header["name"] == "topic"
    assert header["lineage"] == version.lineage and header["card"]["metrics"]["test"]
    assert header["workspace_id"] == src.config.workspace_id
    assert header["exported_by"] == "stew" and header["format"] == 1
    sums = (bundle / "SHA256SUMS").read_text().splitlines()
    assert [line.split("  ", 1)[1] for line in sums] == [
        f for f in files if f not in ("SHA256SUMS", "SHA256SUMS.sig")
    ]
    for line in sums:
        digest, name = line.split("  ", 1)
        assert file_sha256(bundle / name) == digest
    sig = json.loads((bundle / "SHA256SUMS.sig").read_text())
    public = crypto.load_public_key(trusted.read_bytes())
    assert sig["algorithm"] == "ed25519" and sig["key_id"] == crypto.fingerprint(public)
    assert crypto.verify_signature(
        public, (bundle / "SHA256SUMS").read_bytes(), bytes.fromhex(sig["signature"])
    )
    card = json.loads((bundle / "card.json").read_text())
    assert card["export"]["signed"] and "SHA256SUMS.sig" in card["export"]["files"]
    assert {f["path"]: f["size"] for f in card["files"]} == {
        "head.safetensors": len(b"topic-weights"),
        "sub/classifier.json": len('{"labels": ["alpha", "beta"]}'),
    }
    events = [e for e in src.audit.tail(20) if e.action == AuditAction.MODEL_EXPORT]
    assert events[-1].object_id == version.id and events[-1].object_marking == "SECRET"


def test_import_registers_the_same_id_marking_lineage_and_card(
    src: Workspace, bundle: Path, trusted: Path, dst: Workspace
) -> None:
    source = Models(src.session("stew")).resolve("topic")
    result = import_model(dst.session("stew"), bundle, trusted)
    imported = result.version
    assert imported.id == source.id and imported.marking.banner() == "SECRET"
    assert imported.lineage == source.lineage and imported.card == source.card
    assert imported.manifest == source.manifest and imported.kind == "classifier"
    assert result.base_present is False and not result.already_present
    assert result.source_workspace == src.config.workspace_id
    # The files are stored here: the bundle may go, the version still loads, verified.
    stew = dst.session("stew")
    folder = Models(stew).folder(Models(stew).resolve(source.id))
    assert (folder / "head.safetensors").read_bytes() == b"topic-weights"
    events = [e for e in dst.audit.tail(10) if e.action == AuditAction.MODEL_IMPORT]
    assert events[-1].decision == "allow" and events[-1].object_id == source.id
    # Importing again changes nothing.
    again = import_model(dst.session("eve"), bundle, trusted)
    assert again.already_present and again.version.id == source.id
    assert len(Models(dst.session()).list()) == 1


def test_the_imported_card_withholds_what_is_not_here(
    bundle: Path, trusted: Path, dst: Workspace
) -> None:
    import_model(dst.session("stew"), bundle, trusted)
    data = model_card(dst.session("stew"), "topic")
    [training] = data["training_data"]
    assert training["status"] == "withheld" and set(training) == {"id", "status"}
    assert data["lineage"] == [{"id": data["lineage"][0]["id"], "present": False}]
    assert "(withheld)" in render_markdown(data) and "| notes |" not in render_markdown(data)
    assert any("not in this workspace" in item for item in data["limitations"])


def test_an_embedder_carried_across_encodes_the_same_vectors(
    src: Workspace, trusted: Path, dst: Workspace, tmp_path: Path
) -> None:
    tiny = tiny_sentence_transformer(tmp_path / "tiny")
    Models(src.session("stew")).register(
        kind="embedder", name="tiny-carry", folder=tiny, marking=parse_marking("CONFIDENTIAL")
    )
    out = tmp_path / "tiny-bundle"
    export_model(src.session("eve"), "tiny-carry", out)
    shutil.rmtree(tiny)
    imported = import_model(dst.session("stew"), out, trusted).version
    texts = ["convoy fuel report", "radar signal near the river"]
    before, model_a = open_embedder(src.session("stew"), "tiny-carry", purpose="test")
    after, model_b = open_embedder(dst.session("stew"), imported.ref, purpose="test")
    assert before.id == after.id and after.marking.banner() == "CONFIDENTIAL"
    np.testing.assert_allclose(model_a.encode(texts), model_b.encode(texts), atol=1e-6)


# -- tampering ------------------------------------------------------------------------------------

TAMPERABLE = [
    "weights/head.safetensors",
    "weights/sub/classifier.json",
    "card.md",
    "card.html",
    "card.json",
    "manifest.json",
    "BANNER.txt",
]


@pytest.mark.parametrize("name", TAMPERABLE)
@pytest.mark.parametrize("resum", [False, True], ids=["sums-stale", "sums-rewritten"])
def test_a_modified_file_is_refused_and_nothing_registered(
    copy: Path, trusted: Path, dst: Workspace, name: str, resum: bool
) -> None:
    path = copy / name
    data = path.read_bytes()
    if name == "manifest.json":  # still valid JSON, still SECRET, one byte of content changed
        document = json.loads(data)
        document["manifest"]["seeds"]["train"] = 8
        path.write_text(json.dumps(document))
    else:
        path.write_bytes(data + b" ")
    if resum:
        _resum(copy)
    message = "does not verify" if resum else "does not match its checksum"
    with pytest.raises(CheckFailed, match=message):
        import_model(dst.session("stew"), copy, trusted)
    _nothing_registered(dst)
    denied = [e for e in dst.audit.tail(5) if e.action == AuditAction.MODEL_IMPORT]
    assert denied[-1].decision == "deny"


def test_modified_sums_or_signature_are_refused(copy: Path, trusted: Path, dst: Workspace) -> None:
    sums = (copy / "SHA256SUMS").read_text()
    (copy / "SHA256SUMS").write_text(sums.replace("card.md", "card.md "))
    with pytest.raises(CheckFailed, match="does not verify"):
        import_model(dst.session("stew"), copy, trusted)
    (copy / "SHA256SUMS").write_text(sums)
    sig = json.loads((copy / "SHA256SUMS.sig").read_text())
    flipped = bytearray(bytes.fromhex(sig["signature"]))
    flipped[0] ^= 1
    (copy / "SHA256SUMS.sig").write_text(json.dumps({**sig, "signature": flipped.hex()}))
    with pytest.raises(CheckFailed, match="does not verify"):
        import_model(dst.session("stew"), copy, trusted)
    (copy / "SHA256SUMS.sig").write_text("not json")
    with pytest.raises(CheckFailed, match="unreadable"):
        import_model(dst.session("stew"), copy, trusted)
    (copy / "SHA256SUMS.sig").unlink()
    with pytest.raises(CheckFailed, match="not a signed bundle"):
        import_model(dst.session("stew"), copy, trusted)
    _nothing_registered(dst)


def test_a_wrong_key_is_refused(src: Workspace, copy: Path, dst: Workspace, tmp_path: Path) -> None:
    other = tmp_path / "other.pub"
    export_public_key(dst.root, other)  # another workspace's key
    with pytest.raises(CheckFailed, match="not by the trusted key"):
        import_model(dst.session("stew"), copy, other)
    # Signed by another key that claims the trusted key's id: the signature does not verify.
    trusted_id = json.loads((copy / "SHA256SUMS.sig").read_text())["key_id"]
    _resign(copy, dst)
    sig = json.loads((copy / "SHA256SUMS.sig").read_text())
    (copy / "SHA256SUMS.sig").write_text(json.dumps({**sig, "key_id": trusted_id}))
    trusted = tmp_path / "src.pub"
    export_public_key(src.root, trusted)
    with pytest.raises(CheckFailed, match="does not verify"):
        import_model(dst.session("stew"), copy, trusted)
    with pytest.raises(KeyFileError):
        import_model(dst.session("stew"), copy, tmp_path / "no-such.pub")
    _nothing_registered(dst)


@pytest.mark.parametrize("name", ["weights/head.safetensors", "card.html", "manifest.json"])
@pytest.mark.parametrize("resum", [False, True], ids=["sums-stale", "sums-rewritten"])
def test_a_missing_file_is_refused(
    copy: Path, trusted: Path, dst: Workspace, name: str, resum: bool
) -> None:
    (copy / name).unlink()
    if resum:
        _resum(copy)
    with pytest.raises(CheckFailed, match="does not verify" if resum else "missing"):
        import_model(dst.session("stew"), copy, trusted)
    _nothing_registered(dst)


@pytest.mark.parametrize("name", ["weights/extra.bin", "notes.txt", "weights/sub/x.json"])
@pytest.mark.parametrize("resum", [False, True], ids=["sums-stale", "sums-rewritten"])
def test_an_extra_file_is_refused(
    copy: Path, trusted: Path, dst: Workspace, name: str, resum: bool
) -> None:
    (copy / name).write_bytes(b"extra")
    if resum:
        _resum(copy)
    with pytest.raises(CheckFailed, match="does not verify" if resum else "not listed"):
        import_model(dst.session("stew"), copy, trusted)
    _nothing_registered(dst)


def test_a_resigned_bundle_must_still_agree_with_its_manifest(
    src: Workspace, copy: Path, trusted: Path, dst: Workspace
) -> None:
    """Even with the real key, the manifest must hash to the id and list exactly the weights."""
    original = (copy / "manifest.json").read_text()
    document = json.loads(original)
    document["manifest"]["parameters"]["c"] = 2.0
    (copy / "manifest.json").write_text(json.dumps(document))
    _resum(copy)
    _resign(copy, src)
    with pytest.raises(CheckFailed, match="does not hash to the bundle's id"):
        import_model(dst.session("stew"), copy, trusted)
    # A consistent new manifest, but weights that are not the ones it lists.
    (copy / "manifest.json").write_text(original)
    (copy / "weights" / "head.safetensors").write_bytes(b"other weights")
    _resum(copy)
    _resign(copy, src)
    with pytest.raises(CheckFailed, match="SHA-256 its manifest lists"):
        import_model(dst.session("stew"), copy, trusted)
    # A header whose marking disagrees with the manifest's.
    shutil.copyfile(copy / "manifest.json", copy / "m.json")
    document = json.loads(original)
    document["bundle"]["marking"] = "CONFIDENTIAL"
    (copy / "manifest.json").write_text(json.dumps(document))
    (copy / "m.json").unlink()
    (copy / "weights" / "head.safetensors").write_bytes(b"topic-weights")
    _resum(copy)
    _resign(copy, src)
    with pytest.raises(CheckFailed, match="marking disagrees"):
        import_model(dst.session("stew"), copy, trusted)
    # A banner file that says something else than the manifest.
    (copy / "manifest.json").write_text(original)
    (copy / "BANNER.txt").write_text("UNCLASSIFIED\n")
    _resum(copy)
    _resign(copy, src)
    with pytest.raises(CheckFailed, match=r"BANNER\.txt disagrees"):
        import_model(dst.session("stew"), copy, trusted)
    _nothing_registered(dst)


def test_a_bundle_marked_below_what_it_derives_from_here_is_refused(
    src: Workspace, copy: Path, trusted: Path, dst: Workspace, tmp_path: Path
) -> None:
    """Signed with the real key, but claiming an UNCLASSIFIED model on a SECRET base held here:
    a write-down, refused."""
    secret_base = Models(dst.session("stew")).register(
        kind="embedder",
        name="sbase",
        folder=_weights(tmp_path / "sbase", b"secret-base"),
        marking=parse_marking("SECRET"),
    )
    document = json.loads((copy / "manifest.json").read_text())
    manifest = {**document["manifest"], "base": secret_base.id, "marking": "UNCLASSIFIED"}
    header = {
        **document["bundle"],
        "marking": "UNCLASSIFIED",
        "lineage": [
            {"kind": "base", "id": secret_base.id, "name": "sbase"},
            *(e for e in document["bundle"]["lineage"] if e["kind"] == "dataset"),
        ],
        "id": manifest_id(manifest),
    }
    document = {"id": manifest_id(manifest), "manifest": manifest, "bundle": header}
    (copy / "manifest.json").write_text(json.dumps(document))
    (copy / "BANNER.txt").write_text("UNCLASSIFIED\n")
    _resum(copy)
    _resign(copy, src)
    with pytest.raises(CheckFailed, match="marked below a model or dataset it derives from"):
        import_model(dst.session("stew"), copy, trusted)
    assert [v.name for v in Models(dst.session()).list()] == ["sbase"]


# -- spills and who may ---------------------------------------------------------------------------


@pytest.mark.parametrize("tamper", [False, True])
def test_a_bundle_above_system_high_is_a_spill(
    bundle: Path, copy: Path, trusted: Path, tmp_path: Path, tamper: bool
) -> None:
    conf = Workspace.init(tmp_path / "conf", system_high="CONFIDENTIAL")
    try:
        conf.session().add_user("stew", SubjectSpec(clearance="C", roles=("steward",)))
        target = copy
        if tamper:  # a damaged spill is still a spill
            (copy / "card.md").write_text("changed")
        with pytest.raises(CheckFailed, match="spill") as caught:
            import_model(conf.session("stew"), target, trusted)
        assert "SECRET" not in str(caught.value)
        _nothing_registered(conf)
        events = conf.audit.tail(5)
        [spill] = [e for e in events if e.action == AuditAction.INGEST_SPILL]
        assert spill.decision == "deny" and spill.reason == "spill"
        assert spill.object_marking is None and "SECRET" not in json.dumps(spill.details)
        assert spill.details["kind"] == "model-bundle" and spill.details["size"] > 0
        [denied] = [e for e in events if e.action == AuditAction.MODEL_IMPORT]
        assert denied.decision == "deny" and denied.reason == "spill"
    finally:
        conf.close()


def test_the_importer_must_dominate_the_bundle(bundle: Path, trusted: Path, dst: Workspace) -> None:
    with pytest.raises(NotPermitted, match="above what they may read"):
        import_model(dst.session("conny"), bundle, trusted)
    with pytest.raises(NotPermitted):  # a viewer may not import at all
        import_model(dst.session("vic"), bundle, trusted)
    with pytest.raises(InvalidInput):
        import_model(dst.session("stew"), bundle / "card.md", trusted)
    _nothing_registered(dst)


def test_who_may_export_and_where(src: Workspace, tmp_path: Path) -> None:
    with pytest.raises(NotFound):  # an unreadable model looks missing
        export_model(src.session("ustew"), "topic", tmp_path / "u")
    with pytest.raises(NotFound):
        export_model(src.session("stew"), "no-such-model", tmp_path / "n")
    with pytest.raises(NotPermitted):
        export_model(src.session("vic"), "topic", tmp_path / "v")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(InvalidInput, match="not empty"):
        export_model(src.session("stew"), "topic", busy)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # nothing else written
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export_model(src.session("stew"), "topic", empty).path == empty
    denied = [e for e in src.audit.tail(30) if e.action == AuditAction.MODEL_EXPORT]
    assert [e.decision for e in denied][-4:] == ["deny", "deny", "deny", "allow"]


def test_display_only_access_never_exports(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "do", system_high="SECRET//REL TO USA, GBR")
    try:
        ws.session().add_user(
            "pierre", SubjectSpec(clearance="S", citizenship="FRA", roles=("steward",))
        )
        marking = parse_marking("SECRET//REL TO USA, GBR/DISPLAY ONLY FRA")
        Models(ws.session()).register(
            kind="classifier",
            name="shown",
            folder=_weights(tmp_path / "w", b"shown"),
            marking=marking,
        )
        assert Models(ws.session("pierre")).get("shown").marking == marking  # may read it
        with pytest.raises(NotPermitted, match="DISPLAY ONLY"):
            export_model(ws.session("pierre"), "shown", tmp_path / "out")
        assert not (tmp_path / "out").exists()
    finally:
        ws.close()


def test_show_says_the_base_is_not_present(
    bundle: Path, trusted: Path, dst: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    from garrison.cli.main import main

    import_model(dst.session("stew"), bundle, trusted)
    dst.close()
    assert main(["model", "show", "topic", "-w", str(dst.root)]) == 0
    out = capsys.readouterr().out
    assert "from base base@" in out and "(not present in this workspace)" in out
    assert main(["model", "show", "topic", "-w", str(dst.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["base_present"] is False


# -- cards ----------------------------------------------------------------------------------------


def test_the_card_holds_every_section(src: Workspace) -> None:
    stew = src.session("stew")
    data = model_card(stew, "topic")
    notes = Datasets(stew).get("notes")
    model = data["model"]
    assert model["name"] == "topic" and model["kind"] == "classifier"
    assert model["marking"] == "SECRET" and model["id"] == Models(stew).resolve("topic").id
    assert data["banner"] == {"text": "SECRET", "background": "#C8102E", "foreground": "#FFFFFF"}
    assert data["intended_use"] == f"Sorting notes {HOSTILE}"
    [training] = data["training_data"]
    assert training == {
        "id": notes.id,
        "name": "notes",
        "marking": notes.marking.banner(),
        "records": notes.record_count,
        "by_split": notes.to_dict()["splits"],
        "status": "current",
    }
    assert data["metrics"]["test"]["accuracy"] == {"value": 0.875, "low": 0.75, "high": 0.95}
    assert data["metrics"]["ece"]["value"] is None
    assert data["parameters"]["c"] == 0.5 and data["seeds"] == {"train": 7}
    assert data["limitations"][0] == "Trained on two dozen notes."
    assert [step["name"] for step in data["lineage"]] == ["base"]
    assert data["lineage"][0]["present"] and data["lineage"][0]["marking"] == "UNCLASSIFIED"
    assert [f["path"] for f in data["files"]] == ["head.safetensors", "sub/classifier.json"]
    assert data["details"] == {"license": HOSTILE} and data["export"] is None
    json.loads(render_json(data))  # strict JSON


def test_metrics_of_any_shape_render_as_rows() -> None:
    rows = metric_rows(METRICS)
    assert ["test / accuracy", "0.875", "[0.75, 0.95]"] in rows
    assert ["test / per_class / alpha / precision", "0.9", "[0.8, 1]"] in rows
    assert ["test / n", "24", ""] in rows
    assert metric_rows({"recall@10": [{"value": 0.5}, 0.25]}) == [
        ["recall@10 / 0", "0.5", ""],
        ["recall@10 / 1", "0.25", ""],
    ]
    nested = {"value": {"base": {"value": 0.5, "low": 0.4, "high": 0.6}}, "label": "x"}
    assert metric_rows(nested) == [["value / base", "0.5", "[0.4, 0.6]"], ["label", "x", ""]]


def test_the_card_renders_with_banners_and_escapes_everything(src: Workspace) -> None:
    data = model_card(src.session("stew"), "topic")
    markdown = render_markdown(data).strip().splitlines()
    assert markdown[0] == markdown[-1] == "**SECRET**"
    assert "| test / accuracy | 0.875 | [0.75, 0.95] |" in markdown
    assert HOSTILE not in "\n".join(markdown) and "&lt;script&gt;" in "\n".join(markdown)
    page = render_html(data)
    banner = '<div class="banner" role="note" aria-label="Classification: SECRET" '
    assert page.count(banner) == 2
    assert page.index(banner) < page.index("<h1>") < page.rindex(banner)
    assert "background:#C8102E" in page
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "http" not in page and "src=" not in page and "<link" not in page
    text = render_json(data)
    assert json.loads(text)["banner"]["text"] == "SECRET"
    assert text.index('"banner"') < text.index('"model"')


def test_a_removed_training_dataset_keeps_its_facts(src: Workspace) -> None:
    stew = src.session("stew")
    scratch = Datasets(stew).get("scratch")
    Datasets(stew).delete("scratch")
    version = Models(stew).resolve("scratchy")
    [training] = card_data(stew, version)["training_data"]
    assert training["status"] == "removed" and training["name"] == "scratch"
    assert training["id"] == scratch.id and training["records"] == scratch.record_count
    data = card_data(stew, version)
    assert any("removed" in item for item in data["limitations"])
    assert "No base model." in render_markdown(data)
