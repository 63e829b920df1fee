"""Using registered models: files stored encrypted and verified on every use, embedders and
classifiers opened by reference, outputs marked with the join, manifests that must hash to
their id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from garrison.core.errors import CheckFailed, NotFound
from garrison.models import Models, open_classifier, open_embedder, write_classifier
from garrison.models._files import CACHE_DIR
from garrison.security.markings import parse_marking
from garrison.store.models import ModelVersionRow
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.models.tiny import tiny_sentence_transformer


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_sentence_transformer(tmp_path_factory.mktemp("tiny") / "st")


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN")
    system = workspace.session()
    system.add_user("ursula", SubjectSpec(clearance="U"))
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    yield workspace
    workspace.close()


def _embedder(ws: Workspace, tiny: Path, marking: str = "UNCLASSIFIED") -> str:
    version = Models(ws.session("stew")).register(
        kind="embedder", name="tiny", folder=tiny, marking=parse_marking(marking)
    )
    return version.id


def test_registered_files_are_stored_and_the_source_folder_may_go(
    ws: Workspace, tiny: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny, copy)
    version_id = Models(ws.session("stew")).register(kind="embedder", name="tiny", folder=copy).id
    shutil.rmtree(copy)
    version, model = open_embedder(ws.session("ursula"), "tiny")
    assert version.id == version_id and model.name == f"tiny@{version_id[:12]}"
    vectors = model.encode(["convoy fuel report"])
    assert vectors.shape == (1, 32)
    assert np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-5)
    # Nothing of the weights is kept in the clear outside the cache folder.
    weights = (tiny / "model.safetensors").read_bytes()[-4096:]
    blobs = [p for p in (ws.root / "blobs").rglob("*") if p.is_file()]
    assert blobs and all(weights not in p.read_bytes() for p in blobs)


def test_a_changed_cached_file_is_never_loaded(ws: Workspace, tiny: Path) -> None:
    version_id = _embedder(ws, tiny)
    models = Models(ws.session("stew"))
    folder = models.folder(models.resolve("tiny"))
    assert folder == ws.root / CACHE_DIR / version_id
    (folder / "config.json").write_text("{}")
    again = models.folder(models.resolve("tiny"))  # re-materialized from the blobs
    assert (again / "config.json").read_text() != "{}"
    (again / "extra.bin").write_bytes(b"x")
    assert not (models.folder(models.resolve("tiny")) / "extra.bin").exists()


def test_a_missing_blob_makes_the_version_unusable(ws: Workspace, tiny: Path) -> None:
    version_id = _embedder(ws, tiny)
    models = Models(ws.session("stew"))
    version = models.resolve(version_id)
    digest = next(f["sha256"] for f in version.manifest["files"] if f["path"] == "config.json")
    ws.blobs.delete(digest)
    with pytest.raises(CheckFailed, match="missing"):
        models.folder(version)


def test_an_edited_manifest_hides_the_version(ws: Workspace, tiny: Path) -> None:
    version_id = _embedder(ws, tiny)
    with ws.catalog.transaction() as orm:
        row = orm.scalars(select(ModelVersionRow).where(ModelVersionRow.id == version_id)).one()
        row.manifest = {**row.manifest, "parameters": {"format": "onnx"}}
    with pytest.raises(NotFound):
        Models(ws.session("stew")).get(version_id)


def test_a_classifier_predicts_and_its_outputs_carry_the_join(ws: Workspace, tiny: Path) -> None:
    embedder_id = _embedder(ws, tiny)
    head = Path(ws.root.parent / "head")
    rng = np.random.default_rng(0)
    write_classifier(
        head,
        trainer="logreg",
        labels=["a", "b", "c"],
        weight=rng.normal(size=(3, 32)).astype(np.float32),
        bias=np.zeros(3, dtype=np.float32),
        embedder={"id": embedder_id},
    )
    stew = ws.session("stew")
    clf = Models(stew).register(
        kind="classifier",
        name="topic",
        folder=head,
        base=embedder_id,
        marking=parse_marking("SECRET"),
    )
    assert clf.marking.banner() == "SECRET"
    loaded = open_classifier(stew, "topic")
    predictions = loaded.predict(
        ["convoy fuel", "radar signal"], [parse_marking("U"), parse_marking("CONFIDENTIAL")]
    )
    assert [p.marking.banner() for p in predictions] == ["SECRET", "SECRET"]
    for p in predictions:
        assert p.label in {"a", "b", "c"}
        assert abs(sum(p.probabilities.values()) - 1.0) < 1e-6
        assert p.probability == max(p.probabilities.values())
    # An UNCLASSIFIED reader may not use the SECRET classifier at all.
    with pytest.raises(NotFound):
        open_classifier(ws.session("ursula"), "topic")


def test_an_unreadable_embedder_cannot_be_opened(ws: Workspace, tiny: Path) -> None:
    _embedder(ws, tiny, "SECRET")
    with pytest.raises(NotFound):
        open_embedder(ws.session("ursula"), "tiny")
    version, _ = open_embedder(ws.session("stew"), "tiny")
    assert version.marking.banner() == "SECRET"
