"""Suite items: the kinds, their fields, validation and content ids.

An item is ``input`` (what a system under test is given) and ``expected`` (what a scorer checks
its response against), marked with the join of its sources. Its id is the SHA-256 of its
canonical content -- kind, input, expected, marking, sources, cluster, slices and the marking
of its source document -- so the same item always has the same id, wherever it came from.

What an item says of its source document -- its cluster (the document's id) and the
document-level slices (``source``, ``media_type``) -- is document-level data: a reader who may
read the item but not its document (an UNCLASSIFIED paragraph of a SECRET memo) gets the item
as its own cluster and without those slices (:data:`DOCUMENT_SLICES`), so no document id or
source reaches someone who may not read the document.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from garrison.core.errors import InvalidInput
from garrison.security.markings import Marking

__all__ = [
    "DOCUMENT_SLICES",
    "KINDS",
    "NewItem",
    "SuiteItem",
    "canonical",
    "item_content",
    "item_id",
    "split_flat",
    "text_fields",
    "validate_item",
]

#: Kind -> (required input fields, required expected fields, optional expected fields).
_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "qa": (("question",), (), ("answer", "sources", "answerable")),
    "classification": (("text",), ("label",), ()),
    "retrieval": (("query",), ("relevant",), ()),
    "extraction": (("text",), ("json",), ("schema",)),
    "generation": (("prompt",), ("reference",), ()),
}
#: The kinds of suite.
KINDS: tuple[str, ...] = tuple(_FIELDS)
#: Slices that describe an item's source document, shown only with its cluster.
DOCUMENT_SLICES = frozenset({"source", "media_type"})
#: The longest text an item field may hold (characters).
_MAX_TEXT = 200_000


def canonical(value: Any) -> bytes:
    """Canonical JSON bytes (what content ids hash)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


@dataclass(frozen=True)
class NewItem:
    """An item to put in a new suite (raw fields, validated by :func:`validate_item`).

    ``sources`` are the chunk ids it was made from; ``cluster`` what it is not independent of
    (its source document's id; the item id when None); ``slices`` what results are broken
    down by (the marking slice is always set from ``marking``); ``where`` names it in errors
    (``line 3``, ``record 1a2b...``); ``source_marking`` the marking of the source document.
    """

    input: Mapping[str, Any]
    expected: Mapping[str, Any]
    marking: Marking
    sources: tuple[str, ...] = ()
    cluster: str | None = None
    slices: Mapping[str, str] = field(default_factory=dict)
    where: str = "an item"
    #: The marking of its source document (governs ``cluster`` and the document-level
    #: slices); None: the item's own marking.
    source_marking: Marking | None = None
    #: The id of the dataset record it was built from (suites from a dataset version); None
    #: for items from anywhere else. Part of its content, so of its id.
    record: str | None = None


@dataclass(frozen=True)
class SuiteItem:
    """One item of a suite version, as a reader who may read it sees it."""

    id: str
    position: int
    kind: str
    input: dict[str, Any]
    expected: dict[str, Any]
    marking: Marking
    #: The chunk ids it was made from.
    sources: tuple[str, ...]
    #: Its source document's id, else the item id: items of one cluster are not independent.
    cluster: str
    #: ``marking``, ``source``, ``media_type``, ``language`` (those known).
    slices: dict[str, str]
    #: The marking of its source document, when the reader may read it (else None, and
    #: ``cluster`` and the document-level slices are withheld).
    source_marking: Marking | None = field(default=None, repr=False, compare=False)
    #: The dataset record it was built from (suites from a dataset version), else None.
    record: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "position": self.position,
            "kind": self.kind,
            "input": self.input,
            "expected": self.expected,
            "marking": self.marking.banner(),
            "sources": list(self.sources),
            "cluster": self.cluster,
            "slices": dict(self.slices),
        }
        if self.record is not None:
            out["record"] = self.record
        return out


def _text(value: Any, what: str, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise InvalidInput(f"{where}: {what} must be a non-empty string.")
    if len(value) > _MAX_TEXT:
        raise InvalidInput(f"{where}: {what} is longer than {_MAX_TEXT} characters.")
    return value


def _ids(value: Any, what: str, where: str, *, empty: bool) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidInput(f"{where}: {what} must be a list of chunk ids (strings).")
    if not empty and not value:
        raise InvalidInput(f"{where}: {what} must name at least one chunk id.")
    return [v.strip() for v in value]


def _schema_check(schema: Any, value: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise InvalidInput(f"{where}: expected.schema must be a JSON Schema object.")
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:  # the schema is kept; it is checked where jsonschema is installed
        return
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidInput(f"{where}: expected.schema is not a valid JSON Schema.") from exc
    errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(value))
    if errors:
        raise InvalidInput(f"{where}: expected.json does not match expected.schema.")


def validate_item(kind: str, item: NewItem) -> tuple[dict[str, Any], dict[str, Any]]:
    """The item's ``(input, expected)``, checked and normalized for ``kind``; InvalidInput
    naming ``item.where`` and the field otherwise."""
    if kind not in _FIELDS:
        raise InvalidInput(f"Unknown suite kind {kind!r}: use {', '.join(KINDS)}.")
    where = item.where
    needed, wanted, optional = _FIELDS[kind]
    if not isinstance(item.input, Mapping) or not isinstance(item.expected, Mapping):
        raise InvalidInput(f"{where}: input and expected must be JSON objects.")
    unknown_in = sorted(set(item.input) - set(needed))
    unknown_ex = sorted(set(item.expected) - set(wanted) - set(optional))
    if unknown_in or unknown_ex:
        names = [f"input.{k}" for k in unknown_in] + [f"expected.{k}" for k in unknown_ex]
        raise InvalidInput(f"{where}: a {kind} item has no field {', '.join(names)}.")
    for name in needed:
        if name not in item.input:
            raise InvalidInput(f"{where}: a {kind} item needs input.{name}.")
    for name in wanted:
        if name not in item.expected:
            raise InvalidInput(f"{where}: a {kind} item needs expected.{name}.")
    inp: dict[str, Any] = {}
    exp: dict[str, Any] = {}
    if kind == "qa":
        inp["question"] = _text(item.input["question"], "input.question", where)
        answerable = item.expected.get("answerable", True)
        if not isinstance(answerable, bool):
            raise InvalidInput(f"{where}: expected.answerable must be true or false.")
        answer = item.expected.get("answer", "")
        exp["answer"] = _text(answer, "expected.answer", where, empty=not answerable)
        exp["sources"] = _ids(
            item.expected.get("sources", []), "expected.sources", where, empty=True
        )
        if not answerable and exp["sources"]:
            raise InvalidInput(f"{where}: an unanswerable question cites no gold sources.")
        exp["answerable"] = answerable
    elif kind == "classification":
        inp["text"] = _text(item.input["text"], "input.text", where)
        label = item.expected["label"]
        if isinstance(label, bool) or not isinstance(label, str | int):
            raise InvalidInput(f"{where}: expected.label must be a string.")
        exp["label"] = _text(str(label), "expected.label", where)
    elif kind == "retrieval":
        inp["query"] = _text(item.input["query"], "input.query", where)
        exp["relevant"] = _ids(item.expected["relevant"], "expected.relevant", where, empty=False)
    elif kind == "extraction":
        inp["text"] = _text(item.input["text"], "input.text", where)
        value = item.expected["json"]
        try:
            canonical(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{where}: expected.json must be JSON.") from exc
        exp["json"] = value
        if "schema" in item.expected:
            _schema_check(item.expected["schema"], value, where)
            exp["schema"] = item.expected["schema"]
    else:
        inp["prompt"] = _text(item.input["prompt"], "input.prompt", where)
        exp["reference"] = _text(item.expected["reference"], "expected.reference", where)
    return inp, exp


def text_fields(kind: str, inp: Mapping[str, Any], exp: Mapping[str, Any]) -> list[str]:
    """The item's free text (what a leading portion mark may sit in)."""
    out = [str(v) for v in inp.values() if isinstance(v, str)]
    for name in ("answer", "reference"):
        if isinstance(exp.get(name), str):
            out.append(str(exp[name]))
    return out


def item_content(
    kind: str,
    inp: Mapping[str, Any],
    exp: Mapping[str, Any],
    marking: Marking,
    sources: tuple[str, ...],
    cluster: str | None,
    slices: Mapping[str, str],
    source_marking: Marking | None = None,
    record: str | None = None,
) -> dict[str, Any]:
    """What an item's id hashes (``cluster`` None: the item is its own cluster; ``record``,
    the dataset record it came from, only when there is one, so other items keep their ids)."""
    content: dict[str, Any] = {
        "source_marking": (source_marking or marking).banner(),
        "kind": kind,
        "input": dict(inp),
        "expected": dict(exp),
        "marking": marking.banner(),
        "sources": list(sources),
        "cluster": cluster,
        "slices": dict(sorted(slices.items())),
    }
    if record is not None:
        content["record"] = record
    return content


def item_id(content: Mapping[str, Any]) -> str:
    """The SHA-256 of an item's canonical content."""
    return hashlib.sha256(canonical(dict(content))).hexdigest()


def split_flat(kind: str, obj: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(input, expected)`` from a line that gives them as objects, or flat: the kind's input
    fields and expected fields at the top level (``{"question": ..., "answer": ...}``)."""
    if "input" in obj or "expected" in obj:
        inp, exp = obj.get("input", {}), obj.get("expected", {})
        return (
            dict(inp) if isinstance(inp, Mapping) else inp,
            dict(exp) if isinstance(exp, Mapping) else exp,
        )
    needed, wanted, optional = _FIELDS.get(kind, ((), (), ()))
    return (
        {k: obj[k] for k in needed if k in obj},
        {k: obj[k] for k in (*wanted, *optional) if k in obj},
    )
