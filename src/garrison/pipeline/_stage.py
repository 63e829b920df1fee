"""What flows through a pipeline, and what a stage is.

A stage is a pure function over a batch: it gets a list of :class:`Item` (one per element, or
one per chunk after ``chunk``) and returns the list it produces, with no I/O of its own.
Resources a stage needs (a loaded model, the pseudonymization key) are opened once per worker by
the executor (:meth:`Stage.open_resources`) and handed in; writing results is the executor's
sink. Every stage has a name, a version and declared parameters (a pydantic model, validated
before anything runs); the parameters' hash and the version go into each record's lineage, so
changing either reprocesses exactly what it affects.

Markings travel with the items: a stage never lowers one. A stage that combines items (``chunk``)
marks the result with the join of its inputs.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from garrison.security.markings import Marking

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


class StageParams(BaseModel):
    """Base of every stage's parameters: unknown keys are errors (typos fail early)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def params_hash(params: BaseModel) -> str:
    """Stable short hash of a stage's parameters (part of lineage)."""
    text = json.dumps(params.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LineageStep:
    """One stage that touched a record: what ran, with which parameters, from which parents."""

    stage: str
    version: str
    params_hash: str
    parents: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "version": self.version,
            "params_hash": self.params_hash,
            "parents": list(self.parents),
        }


@dataclass(frozen=True)
class PiiFinding:
    """Personal data found in a text (CLI.md field names)."""

    type: str  # email, phone, ssn, credit_card, iban, ip_address, mac_address, url_credentials,
    #            date_of_birth, edipi, passport, mgrs, lat_lon, person
    start: int
    end: int
    text: str
    confidence: float
    detector: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "confidence": self.confidence,
            "detector": self.detector,
        }


@dataclass
class Item:
    """One record in flight: an element (``kind="element"``) or a chunk (``kind="chunk"``).

    ``text`` is the current text (stages may rewrite it: normalize, mask); ``original_text``
    never changes. ``element_ids`` lists the source elements (one for an element; several for a
    chunk). ``marking`` is the join of everything the text came from.
    """

    id: str
    doc_id: str
    kind: Literal["element", "chunk"]
    text: str
    original_text: str
    marking: Marking
    element_ids: tuple[str, ...]
    seq: int = 0
    type: str = "NarrativeText"
    section_path: tuple[str, ...] = ()
    #: The interned marking id of each ``section_path`` heading, in the same order; ``None``
    #: where it is not known, which the sink writes as the document's marking (fail closed).
    section_marking_ids: tuple[int | None, ...] = ()
    page: int | None = None
    language: str | None = None
    language_confidence: float | None = None
    pii: list[PiiFinding] = field(default_factory=list)
    quality: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    #: Why the item was dropped (``pii``, ``quality``...) -- dropped items are kept for lineage
    #: but produce nothing downstream.
    dropped: str | None = None
    #: Canonical item of this item's duplicate cluster (same marking only), when not itself.
    dup_of: str | None = None
    dup_kind: str | None = None  # exact | near
    token_count: int | None = None
    embedding: list[float] | None = None
    embedding_model: str | None = None
    #: The embedding's own marking: the join of the chunk's and the embedder's (a vector of
    #: a SECRET-trained model is SECRET even for an UNCLASSIFIED chunk). ``None``: the chunk's.
    embedding_marking: Marking | None = None
    #: A stage that failed on this item says why (the run goes on).
    failed: str | None = None
    lineage: list[LineageStep] = field(default_factory=list)
    #: Free-form values stages attach for later stages (e.g. MinHash signatures).
    extra: dict[str, Any] = field(default_factory=dict)


P = TypeVar("P", bound=StageParams)


class Stage(ABC, Generic[P]):
    """Base class of pipeline stages.

    Subclasses set ``name``, ``version`` and ``Params`` and implement :meth:`process`. A stage
    whose work needs the whole corpus at once (``dedup``) sets ``scope = "corpus"``: the
    executor then hands it every item in one call instead of batches.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    Params: ClassVar[type[StageParams]]
    scope: ClassVar[Literal["batch", "corpus"]] = "batch"

    def __init__(self, params: P) -> None:
        self.params = params

    def open_resources(self, resources: dict[str, Any]) -> Any:
        """Open what :meth:`process` needs (a model, a key); called once per worker.

        ``resources`` holds what the executor provides: ``"pseudonym_key"`` (bytes),
        ``"workspace_root"`` (Path). Returns whatever :meth:`process` receives.
        """
        return None

    @abstractmethod
    def process(self, items: list[Item], resource: Any) -> list[Item]:
        """Transform a batch; must not do I/O."""

    def lineage(self, parents: tuple[str, ...] = ()) -> LineageStep:
        """The lineage step this stage adds to what it produces."""
        digest = self.__dict__.get("_params_hash")
        if digest is None:  # parameters are frozen: hash them once per stage object
            digest = self.__dict__["_params_hash"] = params_hash(self.params)
        return LineageStep(self.name, self.version, digest, parents)


STAGES: dict[str, type[Stage[Any]]] = {}

S = TypeVar("S", bound=type[Stage[Any]])


def register_stage(cls: S) -> S:
    """Class decorator: make a stage available to pipeline files by its ``name``."""
    STAGES[cls.name] = cls
    return cls
