"""Classifiers resolved by a session and loaded later without one (pipeline workers).

The subject running a pipeline resolves each classifier once, before anything runs
(:func:`resolve_classifier`): it must dominate the classifier (and the embedder it names), the
use is audited as ``model.use``, and the version's files are materialized into the workspace's
model cache, each verified against the manifest. What comes back is a plain, picklable
:class:`ResolvedClassifier` -- the versions and their folders -- that a worker process turns
into a :class:`~garrison.models.Classifier` with :meth:`ResolvedClassifier.load`, checking
every file against the manifest again first (a cache edited in between is never loaded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.core.errors import CheckFailed, InvalidInput, NotFound
from garrison.models._registry import Models, ModelVersion
from garrison.models._use import CLASSIFIER_FILE, HEAD_FILE, Classifier, load_embedder_folder
from garrison.models.embedding import file_sha256
from garrison.security.markings import Marking, join
from garrison.store.session import Session

__all__ = ["ResolvedClassifier", "resolve_classifier"]


@dataclass(frozen=True)
class ResolvedClassifier:
    """A classifier version (and the embedder version it names, if any) with their verified
    folders: everything a worker needs to load it, no session."""

    version: ModelVersion
    folder: Path
    embedder_version: ModelVersion | None = None
    embedder_folder: Path | None = None

    @property
    def id(self) -> str:
        return self.version.id

    @property
    def marking(self) -> Marking:
        """What the classifier's outputs are marked at least (its and its embedder's)."""
        if self.embedder_version is None:
            return self.version.marking
        return join(self.version.marking, self.embedder_version.marking)

    def load(self) -> Classifier:
        """The loaded classifier; CheckFailed when a file no longer matches its manifest."""
        from safetensors.numpy import load_file

        _verify(self.version, self.folder)
        if self.embedder_version is not None and self.embedder_folder is not None:
            _verify(self.embedder_version, self.embedder_folder)
        ref = self.version.ref
        try:
            spec = json.loads((self.folder / CLASSIFIER_FILE).read_text())
            head = load_file(str(self.folder / HEAD_FILE))
            labels = [str(label) for label in spec["labels"]]
            weight, bias = head["weight"], head["bias"]
        except (OSError, ValueError, KeyError) as exc:
            raise CheckFailed(f"Classifier {ref} is not a readable classifier: {exc}.") from exc
        embedder_spec = spec.get("embedder", {})
        if self.embedder_version is not None and self.embedder_folder is not None:
            embedder = load_embedder_folder(
                self.embedder_version.ref,
                self.embedder_folder,
                dict(self.embedder_version.manifest.get("parameters", {})),
            )
        elif "path" in embedder_spec:
            body = self.folder / str(embedder_spec["path"])
            if not body.resolve().is_relative_to(self.folder.resolve()):
                raise CheckFailed(f"Classifier {ref} names a body outside its folder.")
            embedder = load_embedder_folder(ref, body, dict(embedder_spec))
        else:
            raise CheckFailed(f"Classifier {ref} names no embedder.")
        if weight.ndim != 2 or weight.shape[0] != len(labels) or weight.shape[1] != embedder.dim:
            raise CheckFailed(f"Classifier {ref}'s head does not fit its embedder.")
        return Classifier(self.version, embedder, labels, weight, bias, spec, self.embedder_version)


def _verify(version: ModelVersion, folder: Path) -> None:
    for entry in version.manifest.get("files", []):
        path = folder / str(entry["path"])
        if not path.is_file() or file_sha256(path) != entry["sha256"]:
            raise CheckFailed(
                f"The cached files of model {version.ref} do not match its manifest; "
                "run again to restore them."
            )


def resolve_classifier(
    session: Session, ref: str, *, purpose: str = "classify"
) -> ResolvedClassifier:
    """The readable classifier ``ref`` names, its use audited and its files (and its
    embedder's) materialized and verified. NotFound when the subject may not read it."""
    models = Models(session)
    version = models.use(ref, purpose)
    if version.kind != "classifier":
        raise InvalidInput(f"Model {version.ref} is not a classifier but {version.kind}.")
    folder = models.folder(version)
    try:
        spec: dict[str, Any] = json.loads((folder / CLASSIFIER_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise CheckFailed(f"Classifier {version.ref} is not a readable classifier: {exc}.") from exc
    embedder_spec = spec.get("embedder", {}) if isinstance(spec, dict) else {}
    if isinstance(embedder_spec, dict) and "id" in embedder_spec:
        if str(embedder_spec["id"]) != version.manifest.get("base"):
            # The embedder must be the registered base: that is what the marking joined in.
            raise CheckFailed(f"Classifier {version.ref} names an embedder that is not its base.")
        try:
            embedder_version = models.use(str(embedder_spec["id"]), purpose)
        except NotFound:
            raise NotFound(f"No model version {ref}.") from None
        if embedder_version.kind != "embedder":
            raise CheckFailed(f"Classifier {version.ref} names a model that is not an embedder.")
        embedder_folder = models.folder(embedder_version)
        return ResolvedClassifier(version, folder, embedder_version, embedder_folder)
    return ResolvedClassifier(version, folder)
