"""Pipelines: parsed elements -> clean, deduplicated, chunked and embedded records.

Stages register by name (:func:`register_stage`); a pipeline file lists stages and their
parameters; an executor runs them and a sink writes the results with their lineage.
"""

from garrison.pipeline._stage import (
    STAGES,
    Item,
    LineageStep,
    PiiFinding,
    Stage,
    StageParams,
    params_hash,
    register_stage,
)

__all__ = [
    "STAGES",
    "Item",
    "LineageStep",
    "PiiFinding",
    "Stage",
    "StageParams",
    "params_hash",
    "register_stage",
]
