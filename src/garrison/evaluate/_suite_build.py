"""Suite items from a dataset version and from a JSONL file.

From a dataset, each record is one item marked with the record's own marking (frozen in the
version), clustered by its source document, and remembering the record's id (``record``), so
the items a run gets wrong can be traced back to their records (and labeled again). From JSONL,
each line is one item; its marking is the line's ``marking`` joined with the default given for
the file (``--marking``), and a line with neither fails the whole file (fail closed, never a
guess). A line may not claim less than a leading portion mark in its text: ``(S) ...`` in a
line marked UNCLASSIFIED is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from garrison.core.errors import InvalidInput, MarkingError
from garrison.datasets import Datasets
from garrison.evaluate._suite_export import HEADER_KEYS
from garrison.evaluate._suite_items import NewItem, split_flat, text_fields
from garrison.security.markings import Marking, dominates, find_portion_mark, join
from garrison.store.datasets import current_markings
from garrison.store.session import Session

__all__ = ["check_portions", "dataset_items", "jsonl_items", "lines_items", "text_lines"]

#: The longest JSONL line read (bytes).
_MAX_LINE = 4 * 1024 * 1024


def dataset_items(
    session: Session,
    ref: str,
    *,
    kind: str,
    text_field: str,
    label_field: str,
) -> tuple[list[NewItem], dict[str, Any]]:
    """Classification items from the records of dataset version ``ref`` and the source
    recorded in the suite's manifest."""
    if kind != "classification":
        raise InvalidInput(
            "A suite from a dataset is a classification suite (--kind classification)."
        )
    if not text_field or not label_field:
        raise InvalidInput("A suite from a dataset needs --text-field and --label-field.")
    datasets = Datasets(session)
    version = datasets.get(ref)
    if version.stale:
        raise InvalidInput(
            f"The dataset version {version.name}@{version.id[:12]} is stale-marking (a source's "
            "marking rose since it was made); a steward re-creates it first."
        )
    items: list[NewItem] = []
    records = datasets.records(version)
    # Today's marking of each record's document governs the document id an item shows; a
    # document that is gone is treated as system high (fail closed).
    documents = current_markings(
        session, doc_ids={r.doc_id for r in records if r.doc_id}, chunk_ids=[], element_ids=[]
    ).documents
    for record in records:
        where = f"record {record.id}"
        marking = record.detail
        text = record.text if text_field == "text" else record.fields.get(text_field)
        if text_field != "text" and text_field not in record.fields:
            raise InvalidInput(f"{where} has no field {text_field!r}.")
        if label_field not in record.fields or record.fields[label_field] in (None, ""):
            raise InvalidInput(f"{where} has no label in field {label_field!r}.")
        label = record.fields[label_field]
        slices = {"source": f"dataset:{version.name}", "split": record.split}
        for key in ("media_type", "language"):
            value = record.fields.get(key)
            if isinstance(value, str) and value:
                slices[key] = value
        items.append(
            NewItem(
                input={"text": text},
                expected={"label": label},
                marking=marking,
                sources=(record.id,) if record.kind == "chunk" else (),
                cluster=record.doc_id or None,
                slices=slices,
                where=where,
                source_marking=documents.get(record.doc_id, session.workspace.system_high),
                record=record.id,
            )
        )
    source = {
        "type": "dataset",
        "dataset": version.id,
        "name": version.name,
        "text_field": text_field,
        "label_field": label_field,
    }
    return items, source


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    with handle:
        for number, raw in enumerate(handle, start=1):
            if len(raw) > _MAX_LINE:
                raise InvalidInput(
                    f"line {number} of {path.name} is longer than {_MAX_LINE} bytes."
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"line {number} of {path.name} is not UTF-8.") from exc
            if text.strip():
                yield number, text


def check_portions(session: Session, marking: Marking, texts: list[str], where: str) -> None:
    """InvalidInput unless ``marking`` dominates every leading portion mark in ``texts``."""
    for text in texts:
        found = find_portion_mark(text)
        if found is None:
            continue
        try:
            portion = session.parse_marking(found[0])
        except MarkingError as exc:
            raise InvalidInput(
                f"{where}: its text starts with the invalid portion mark {found[0]}."
            ) from exc
        if not dominates(marking, portion):
            raise InvalidInput(
                f"{where} is marked {marking.banner()} but its text starts with the portion "
                f"mark {found[0]}; mark the line at least {portion.banner()}."
            )


def jsonl_items(
    session: Session, path: Path, *, kind: str, marking: str | None = None
) -> tuple[list[NewItem], dict[str, Any]]:
    """Items from a JSONL file (one object a line; an export's header line is skipped)."""
    return lines_items(
        session, _lines(Path(path)), kind=kind, marking=marking, name=Path(path).name
    )


def text_lines(text: str) -> Iterator[tuple[int, str]]:
    """The numbered non-blank lines of JSONL text (as given in an API request)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > _MAX_LINE:
            raise InvalidInput(f"line {number} is longer than {_MAX_LINE} characters.")
        if line.strip():
            yield number, line


def lines_items(
    session: Session,
    lines: Iterable[tuple[int, str]],
    *,
    kind: str,
    marking: str | None = None,
    name: str | None = None,
) -> tuple[list[NewItem], dict[str, Any]]:
    """Items from numbered JSONL lines, and the source recorded in the suite's manifest."""
    default: Marking | None = None
    if marking is not None:
        try:
            default = session.parse_marking(marking)
        except MarkingError as exc:
            raise InvalidInput(f"--marking {marking!r} is not a valid marking: {exc}") from exc
    items: list[NewItem] = []
    for number, text in lines:
        where = f"line {number}"
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"{where} is not valid JSON.") from exc
        if not isinstance(obj, Mapping):
            raise InvalidInput(f"{where} is not a JSON object.")
        if not items and set(obj) == HEADER_KEYS:
            continue
        items.append(_line_item(session, kind, obj, default, where))
    source: dict[str, Any] = {
        "type": "jsonl",
        "file": name,
        "marking": default.banner() if default is not None else None,
    }
    return items, source


def _line_item(
    session: Session, kind: str, obj: Mapping[str, Any], default: Marking | None, where: str
) -> NewItem:
    raw = obj.get("marking")
    if raw is None and default is None:
        raise InvalidInput(f'{where} has no marking; give each line a "marking" or use --marking.')
    markings = [default] if default is not None else []
    if raw is not None:
        if not isinstance(raw, str) or not raw.strip():
            raise InvalidInput(f"{where}: its marking must be a marking string.")
        try:
            markings.append(session.parse_marking(raw))
        except MarkingError as exc:
            raise InvalidInput(f"{where}: its marking {raw!r} is not valid: {exc}") from exc
    marking = join(*markings)
    inp, exp = split_flat(kind, obj)
    if isinstance(inp, Mapping) and isinstance(exp, Mapping):
        check_portions(session, marking, text_fields(kind, inp, exp), where)
    sources = obj.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise InvalidInput(f"{where}: sources must be a list of chunk ids.")
    cluster = obj.get("cluster")
    if cluster is not None and (not isinstance(cluster, str) or not 0 < len(cluster) <= 64):
        raise InvalidInput(f"{where}: cluster must be a string of at most 64 characters.")
    slices = obj.get("slices", {})
    if not isinstance(slices, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in slices.items()
    ):
        raise InvalidInput(f"{where}: slices must map names to strings.")
    # The marking slice is always the item's own; a line without slices is sliced as jsonl.
    given = {k: v for k, v in slices.items() if k != "marking"} if "slices" in obj else {}
    if "slices" not in obj:
        given["source"] = "jsonl"
    return NewItem(
        input=inp,
        expected=exp,
        marking=marking,
        sources=tuple(sources),
        cluster=cluster,
        slices=given,
        where=where,
    )
