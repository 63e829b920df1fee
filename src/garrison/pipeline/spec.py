"""Pipeline files: YAML listing stages and their parameters, validated before anything runs.

::

    name: default
    stages:
      - normalize: {}
      - pii:
          default_action: mask
          actions: {ssn: drop}
      - chunk: {max_tokens: 256}

Each entry is ``stage-name: {parameters}`` (or just ``stage-name``). An unknown stage, an unknown
or invalid parameter, or an impossible order is one error that names the stage and the parameter.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from garrison.core.errors import InvalidInput
from garrison.pipeline._stage import STAGES, Stage, StageParams, params_hash

__all__ = [
    "DEFAULT_PIPELINE",
    "PREDICT_STAGES",
    "PipelineSpec",
    "StageSpec",
    "load_pipeline",
    "parse_pipeline",
]

DEFAULT_PIPELINE = "default"
#: Stages that work on chunks: they must come after ``chunk``.
_CHUNK_STAGES = {"embed"}
#: Stages that only predict (they attach outputs and change nothing): they come last, and may
#: appear more than once (each with its own prediction name).
PREDICT_STAGES = frozenset({"classify"})


def _load_builtin_stages() -> None:
    # Importing the modules registers the stages (like plugins do, through entry points).
    from importlib import import_module
    from importlib.metadata import entry_points

    for name in ("normalize", "language", "pii", "quality", "dedup", "chunk", "embed", "classify"):
        try:
            import_module(f"garrison.pipeline.stages.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"garrison.pipeline.stages.{name}":
                raise
    for ep in entry_points(group="garrison.stages"):
        ep.load()


@dataclass(frozen=True)
class StageSpec:
    """One validated stage of a pipeline.

    ``resolved`` is what the stage's parameters named resolved to before the run -- the id of
    the registered model version ``embed: {model: NAME@VERSION}`` names -- so that a run's keys
    (and the pipeline's digest) change when the name comes to mean another version.
    """

    name: str
    params: StageParams
    resolved: str | None = None

    def build(self) -> Stage[Any]:
        return STAGES[self.name](self.params)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "stage": self.name,
            "version": STAGES[self.name].version,
            "params": self.params.model_dump(mode="json"),
            "params_hash": params_hash(self.params),
        }
        if self.resolved is not None:
            out["resolved"] = self.resolved
        return out


@dataclass(frozen=True)
class PipelineSpec:
    """A validated pipeline."""

    name: str
    stages: tuple[StageSpec, ...]
    source: str

    @property
    def digest(self) -> str:
        """Hash of the stages, versions and parameters: what "the same pipeline" means."""
        text = json.dumps([s.to_dict() for s in self.stages], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "digest": self.digest,
            "stages": [s.to_dict() for s in self.stages],
        }


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(parameters)"


def parse_pipeline(text: str, *, source: str = "<text>") -> PipelineSpec:
    """Validate a pipeline file's text; raises InvalidInput naming the stage and parameter."""
    import yaml

    _load_builtin_stages()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"The pipeline file {source} is not valid YAML: {exc}.") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("stages"), list) or not raw["stages"]:
        raise InvalidInput(f"The pipeline file {source} needs a non-empty 'stages' list.")
    unknown_keys = set(raw) - {"name", "stages", "description"}
    if unknown_keys:
        raise InvalidInput(
            f"The pipeline file {source} has unknown keys: {', '.join(sorted(unknown_keys))}."
        )
    specs: list[StageSpec] = []
    for index, entry in enumerate(raw["stages"], start=1):
        params: Any
        if isinstance(entry, str):
            name, params = entry, {}
        elif isinstance(entry, dict) and len(entry) == 1:
            name, params = next(iter(entry.items()))
            params = params or {}
        else:
            raise InvalidInput(
                f"Stage {index} of {source} must be 'name' or 'name: {{parameters}}'."
            )
        if name not in STAGES:
            raise InvalidInput(
                f"Stage {index} of {source}: unknown stage {name!r}; known stages: "
                f"{', '.join(sorted(STAGES))}."
            )
        if not isinstance(params, dict):
            raise InvalidInput(f"Stage {index} ({name}) of {source}: parameters must be a mapping.")
        try:
            validated = STAGES[name].Params.model_validate(params)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidInput(
                f"Stage {index} ({name}) of {source}: parameter {_where(first['loc'])!r}: "
                f"{first['msg']}."
            ) from exc
        specs.append(StageSpec(name, validated))
    names = [s.name for s in specs]
    others = [n for n in names if n not in PREDICT_STAGES]
    if len(set(others)) != len(others):
        raise InvalidInput(f"The pipeline file {source} lists a stage twice.")
    _check_predict_stages(specs, source)
    chunk_at = names.index("chunk") if "chunk" in names else None
    for position, name in enumerate(names):
        if name in _CHUNK_STAGES and (chunk_at is None or position < chunk_at):
            raise InvalidInput(
                f"Stage {position + 1} ({name}) of {source} works on chunks: put it after 'chunk'."
            )
        if name == "dedup" and chunk_at is not None and position > chunk_at:
            raise InvalidInput(
                f"Stage {position + 1} (dedup) of {source} must come before 'chunk'."
            )
    return PipelineSpec(str(raw.get("name") or Path(source).stem), tuple(specs), source)


def _check_predict_stages(specs: list[StageSpec], source: str) -> None:
    """Predict stages come after every other stage, chunk-level ones need ``chunk``, and no
    two give their predictions the same name."""
    seen: set[str] = set()
    names = [s.name for s in specs]
    for position, spec in enumerate(specs):
        if spec.name not in PREDICT_STAGES:
            continue
        if any(n not in PREDICT_STAGES for n in names[position + 1 :]):
            raise InvalidInput(
                f"Stage {position + 1} ({spec.name}) of {source} reads what the other stages "
                "made: put it after every other stage."
            )
        params: Any = spec.params
        if params.over == "chunks" and "chunk" not in names:
            raise InvalidInput(
                f"Stage {position + 1} ({spec.name}) of {source} classifies chunks: add a "
                "'chunk' stage, or set over: elements."
            )
        if params.prediction_name in seen:
            raise InvalidInput(
                f"Stage {position + 1} ({spec.name}) of {source} names its predictions "
                f"{params.prediction_name!r}, as another classify stage does: give it a name."
            )
        seen.add(params.prediction_name)


def load_pipeline(path: str | Path | None = None) -> PipelineSpec:
    """The pipeline in ``path``, or the default pipeline shipped with Garrison."""
    if path is None:
        text = (resources.files("garrison.pipeline") / "default.yaml").read_text(encoding="utf-8")
        return parse_pipeline(text, source=DEFAULT_PIPELINE)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"No pipeline file at {file}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"The pipeline file {file} cannot be read: {exc}.") from exc
    return parse_pipeline(text, source=str(file))
