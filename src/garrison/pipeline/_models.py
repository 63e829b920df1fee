"""Registered models a pipeline names: resolved once, before the run, by the session running it.

``embed: {model: NAME@VERSION}`` (or ``NAME`` for its latest readable version, or a full id)
names a version of the marked model registry; the names Garrison has always known --
``all-MiniLM-L6-v2``, ``hashing``, ``local:<path>`` -- keep loading as before
(:func:`garrison.models.get_model`), recorded under the same names.

A registry reference is resolved by the runner's session before anything runs:
:meth:`garrison.models.Models.use` checks that the runner dominates the version (a version they
may not read fails the run exactly as a missing one: not found) and audits ``model.use``; the
version's files are materialized, each checked against its manifest. Workers never see a
session: they get a :class:`ResolvedEmbedder` -- the verified folder, the manifest's file
hashes and parameters, the version id and marking -- and check every file against those
hashes again before loading it (:meth:`ResolvedEmbedder.load`), so nothing unverified is ever
loaded, wherever the worker runs.

The resolved version id becomes part of the stage's spec (:attr:`StageSpec.resolved`), hence
of the run keys: naming another version re-embeds, and only the stages from ``embed`` on redo.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from garrison.core.errors import InvalidInput, NotFound
from garrison.models import HASHING, MODELS, EmbeddingModel, Models
from garrison.models._files import manifest_files, verify_folder
from garrison.models._use import load_embedder_folder
from garrison.models.embedding import LOCAL_PREFIX
from garrison.pipeline.spec import PipelineSpec, StageSpec
from garrison.security.markings import Marking
from garrison.store.session import Session

__all__ = [
    "RESOURCE",
    "ResolvedEmbedder",
    "is_registry_ref",
    "prepare_search",
    "resolve_models",
    "resolved",
    "shipped_embedders",
]

_log = logging.getLogger(__name__)

#: The engine resource holding the run's resolved embedders, by the reference as written.
RESOURCE = "embedders"
#: Stages whose ``model`` parameter may name a registered embedder.
_MODEL_STAGES = ("embed",)


def is_registry_ref(name: str) -> bool:
    """Whether a stage's ``model`` names the registry (not a shipped, hashing or local model)."""
    return not (name in MODELS or name == HASHING or name.startswith(LOCAL_PREFIX))


def _named_ref(stage: StageSpec) -> str | None:
    """The registry reference ``stage`` names as its model, if any."""
    ref = getattr(stage.params, "model", None)
    if stage.name in _MODEL_STAGES and isinstance(ref, str) and is_registry_ref(ref):
        return ref
    return None


def shipped_embedders(spec: PipelineSpec) -> list[str]:
    """The shipped models (:data:`~garrison.models.MODELS`) ``spec``'s embed stages use."""
    names = {getattr(s.params, "model", None) for s in spec.stages if s.name in _MODEL_STAGES}
    return sorted(n for n in names if isinstance(n, str) and n in MODELS)


def prepare_search(session: Session, spec: PipelineSpec) -> list[str]:
    """Make the workspace's torch-free query export of each shipped model ``spec`` embeds
    with (:func:`garrison.models.prepare_query_model`), so a search starts in well under a
    second; the models whose export is ready.

    Best effort: a failed export is logged and leaves search on sentence-transformers (the
    same vectors, slower); it never fails the run. ``GARRISON_QUERY_EXPORT=0`` skips it.
    """
    if os.environ.get("GARRISON_QUERY_EXPORT", "1").strip() == "0":
        return []
    from garrison.models import prepare_query_model

    ready = []
    for name in shipped_embedders(spec):
        try:
            if prepare_query_model(session.workspace.root, name) is not None:
                ready.append(name)
        except Exception as exc:  # the torch exporter raises many kinds; none may fail a run
            _log.warning("No query export of %s: %s", name, exc)
    return ready


def resolved(spec: PipelineSpec) -> bool:
    """Whether every registered model ``spec``'s stages name is resolved to a version."""
    return all(s.resolved is not None for s in spec.stages if _named_ref(s) is not None)


@dataclass(frozen=True)
class ResolvedEmbedder:
    """What a worker needs to load a registered embedder without a session."""

    #: The reference as the pipeline file wrote it.
    ref: str
    #: The version id, and ``NAME@ID12``: what vectors and lineage record as their model.
    id: str
    name: str
    marking: Marking
    #: The materialized, verified folder and the manifest's files (relative path -> SHA-256).
    folder: str
    files: Mapping[str, str] = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> EmbeddingModel:
        """The model, every file checked against the manifest's hash first (CheckFailed)."""
        folder = Path(self.folder)
        verify_folder(folder, dict(self.files))
        return load_embedder_folder(self.name, folder, dict(self.parameters))


def resolve_models(
    session: Session, spec: PipelineSpec, *, use: bool = True
) -> tuple[PipelineSpec, dict[str, ResolvedEmbedder]]:
    """``spec`` with each registry reference resolved to its version id, and the embedders.

    ``use=True`` (a run) audits each as ``model.use`` and materializes its files; ``use=False``
    (a dry run's plan) only resolves. Raises NotFound for a reference that names no embedder
    the subject may read, and InvalidInput for one that names another kind of model.
    """
    models = Models(session)
    stages: list[StageSpec] = []
    resolved: dict[str, ResolvedEmbedder] = {}
    for stage in spec.stages:
        ref = _named_ref(stage)
        if ref is None:
            stages.append(stage)
            continue
        if ref not in resolved:
            resolved[ref] = _resolve(models, stage.name, ref, use=use)
        stages.append(replace(stage, resolved=resolved[ref].id))
    return replace(spec, stages=tuple(stages)), resolved


def _resolve(models: Models, stage: str, ref: str, *, use: bool) -> ResolvedEmbedder:
    try:
        version = models.use(ref, "embed") if use else models.resolve(ref)
    except NotFound:
        raise NotFound(
            f"The {stage} stage names model {ref!r}, which is not a registered model you may "
            "read (garrison model ls lists those you may)."
        ) from None
    if version.kind != "embedder":
        raise InvalidInput(
            f"The {stage} stage names model {version.ref}, a {version.kind}, not an embedder."
        )
    parameters = dict(version.manifest.get("parameters", {}))
    files = manifest_files(version.manifest)
    folder = models.folder(version) if use else Path()
    return ResolvedEmbedder(
        ref=ref,
        id=version.id,
        name=version.ref,
        marking=version.marking,
        folder=str(folder),
        files=files,
        parameters=parameters,
    )
