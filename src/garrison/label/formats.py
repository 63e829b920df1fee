"""Label export formats: CoNLL, spaCy JSON, COCO, YOLO, preference JSONL and Label Studio.

The input is plain :class:`LabelRecord` values (one per label replica: a record, its marking,
what it shows, the value an annotator gave); the labeling store turns its rows into these.
Values by task ``kind``:

==================  ==========================================================================
``classification``  a class name
``multilabel``      a tuple of class names
``spans``           a tuple of ``(start, end, label)`` character spans of ``text``
``boxes``           a tuple of ``(x, y, width, height, label)`` pixel boxes on ``image``
``preference``      ``{"chosen": text, "rejected": text}``; ``text`` is the prompt
``text``            the free-text answer
==================  ==========================================================================

Markings: every file written carries the marking of what it holds (the join of its records'
markings) in a sidecar ``<file>.marking`` (one banner line), and inside the file wherever the
format has a place for it:

- CoNLL: a ``# marking = ...`` comment first, and ``# record_id``/``# marking``/``# annotator``
  comments before each document (the CoNLL-U comment convention);
- spaCy JSON: each document's ``_`` (extension attributes): ``record_id``, ``marking``...;
- COCO: ``info.marking``, and ``marking`` on each image and annotation;
- YOLO: ``data.yaml`` carries ``marking``; label files have no place (``class cx cy w h`` lines
  only), so each ``labels/<image>.txt`` has its sidecar;
- preference JSONL: ``marking`` on every line;
- Label Studio: ``data.marking`` of every task (read back on import, required there).

Nothing is written unless every record's marking parses (``parse`` is the workspace's marking
parser; by default the built-in one).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from garrison.core.errors import InvalidInput
from garrison.label._label_record import KINDS, LabelRecord, Parse, file_marking, record_meta
from garrison.label._label_studio import (
    label_studio_tasks,
    read_label_studio,
    read_label_studio_tasks,
)
from garrison.label._project_rows import records_from_rows
from garrison.label.agreement import tokenize
from garrison.security.markings import parse_marking

__all__ = [
    "EXPORTERS",
    "KINDS",
    "LabelRecord",
    "coco_dataset",
    "conll_text",
    "export_records",
    "file_marking",
    "label_studio_tasks",
    "preference_lines",
    "read_label_studio",
    "read_label_studio_tasks",
    "records_from_rows",
    "spacy_docs",
    "write_labels",
    "yolo_files",
]


def _of_kind(records: Sequence[LabelRecord], kinds: tuple[str, ...], fmt: str) -> None:
    for r in records:
        if r.kind not in kinds:
            raise InvalidInput(
                f"{fmt} holds {' or '.join(kinds)} labels; record {r.record_id!r} is {r.kind}."
            )


# -- CoNLL ---------------------------------------------------------------------------------------


def conll_text(records: Sequence[LabelRecord], *, parse: Parse = parse_marking) -> str:
    """Span labels as CoNLL: one ``token<TAB>tag`` line per token (BIO tags: ``B-LABEL`` on a
    span's first token, ``I-LABEL`` on the next, ``O`` outside), a blank line between documents.

    Tokens are :func:`garrison.label.agreement.tokenize`'s; a token a span touches is inside it.
    """
    _of_kind(records, ("spans",), "CoNLL")
    lines = [f"# marking = {file_marking(records, parse=parse)}", ""]
    for record in records:
        text = record.text or ""
        for key, value in record_meta(record).items():
            lines.append(f"# {key} = {value}")
        tags = ["O"] * len(tokens := tokenize(text))
        for start, end, label in record.value:
            inside = [t for t, (ts, te) in enumerate(tokens) if ts < end and start < te]
            for position, t in enumerate(inside):
                tags[t] = f"{'B' if position == 0 else 'I'}-{label}"
        lines += [f"{text[s:e]}\t{tag}" for (s, e), tag in zip(tokens, tags, strict=True)]
        lines.append("")
    return "\n".join(lines)


# -- spaCy ---------------------------------------------------------------------------------------


def spacy_docs(records: Sequence[LabelRecord]) -> list[dict[str, Any]]:
    """Spans and classes as spaCy's ``Doc.to_json`` form: ``text``, ``ents`` (``start``/``end``
    character offsets, ``label``), ``cats`` for classes, ``tokens`` (``id``, ``start``,
    ``end``), and the record's identity and marking under ``_``."""
    _of_kind(records, ("spans", "classification", "multilabel"), "spaCy JSON")
    docs = []
    for record in records:
        if record.text is None:
            raise InvalidInput(f"The label of record {record.record_id!r} has no text.")
        doc: dict[str, Any] = {"text": record.text, "ents": [], "cats": {}}
        if record.kind == "spans":
            doc["ents"] = [{"start": s, "end": e, "label": lab} for s, e, lab in record.value]
        elif record.kind == "classification":
            doc["cats"] = {record.value: 1.0}
        else:
            doc["cats"] = dict.fromkeys(record.value, 1.0)
        doc["tokens"] = [
            {"id": i, "start": s, "end": e} for i, (s, e) in enumerate(tokenize(record.text))
        ]
        doc["_"] = record_meta(record)
        docs.append(doc)
    return docs


# -- COCO and YOLO -------------------------------------------------------------------------------


def _categories(records: Sequence[LabelRecord], classes: Sequence[str] | None) -> list[str]:
    seen = {b[4] for r in records for b in r.value}
    names = list(classes) if classes is not None else sorted(seen)
    missing = seen - set(names)
    if missing:
        raise InvalidInput(f"A box label is not among the classes: {sorted(missing)[0]!r}.")
    return names


def _sized(record: LabelRecord) -> tuple[int, int]:
    if not record.width or not record.height:
        raise InvalidInput(f"The image of record {record.record_id!r} has no width and height.")
    return record.width, record.height


def coco_dataset(
    records: Sequence[LabelRecord],
    *,
    classes: Sequence[str] | None = None,
    parse: Parse = parse_marking,
) -> dict[str, Any]:
    """Boxes as a COCO detection dataset: ``images`` (one per record id), ``annotations``
    (``bbox`` ``[x, y, width, height]`` in pixels, one per box of each replica, with its
    annotator) and ``categories`` (ids from 1, in ``classes`` order, default sorted)."""
    _of_kind(records, ("boxes",), "COCO")
    names = _categories(records, classes)
    category = {name: i for i, name in enumerate(names, start=1)}
    images: dict[str, dict[str, Any]] = {}
    annotations: list[dict[str, Any]] = []
    for record in records:
        width, height = _sized(record)
        if record.record_id not in images:
            images[record.record_id] = {
                "id": len(images) + 1,
                "file_name": record.image,
                "width": width,
                "height": height,
                "record_id": record.record_id,
                "marking": record.marking,
            }
        image = images[record.record_id]
        for x, y, w, h, label in record.value:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image["id"],
                    "category_id": category[label],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    **{k: v for k, v in record_meta(record).items() if k != "record_id"},
                }
            )
    return {
        "info": {
            "description": "Garrison labels",
            "marking": file_marking(records, parse=parse),
        },
        "images": list(images.values()),
        "annotations": annotations,
        "categories": [{"id": i, "name": n, "supercategory": ""} for n, i in category.items()],
    }


def yolo_files(
    records: Sequence[LabelRecord],
    *,
    classes: Sequence[str] | None = None,
    parse: Parse = parse_marking,
) -> dict[str, tuple[str, str]]:
    """Boxes as YOLO: relative path -> (content, marking). ``labels/<image>.txt`` holds one
    ``class cx cy w h`` line per box (normalized to the image size, 6 decimals), ``data.yaml``
    the class names and the marking of the whole. One replica per image: aggregate first."""
    _of_kind(records, ("boxes",), "YOLO")
    names = _categories(records, classes)
    index = {name: i for i, name in enumerate(names)}
    out: dict[str, tuple[str, str]] = {}
    for record in records:
        width, height = _sized(record)
        path = f"labels/{record.file_stem}.txt"
        if path in out:
            raise InvalidInput(
                f"YOLO holds one set of boxes per image and {record.file_stem!r} has several: "
                "aggregate the replicas first."
            )
        lines = [
            f"{index[label]} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} "
            f"{w / width:.6f} {h / height:.6f}"
            for x, y, w, h, label in record.value
        ]
        out[path] = ("".join(line + "\n" for line in lines), record.marking)
    marking = file_marking(records, parse=parse)
    data = {"nc": len(names), "names": names, "marking": marking}
    out["data.yaml"] = (yaml.safe_dump(data, sort_keys=False), marking)
    return out


# -- preference JSONL ----------------------------------------------------------------------------


def preference_lines(records: Sequence[LabelRecord]) -> str:
    """Preferences as JSONL: ``prompt``, ``chosen``, ``rejected`` (the DPO form), with the
    record's id, marking, annotator and schema version on each line."""
    _of_kind(records, ("preference",), "Preference JSONL")
    rows = [
        {
            "prompt": r.text,
            "chosen": r.value["chosen"],
            "rejected": r.value["rejected"],
            **record_meta(r),
        }
        for r in records
    ]
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


# -- writing files -------------------------------------------------------------------------------


def _write(path: Path, content: str, marking: str) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    sidecar = path.with_name(path.name + ".marking")
    sidecar.write_text(marking + "\n", encoding="utf-8")
    return [path, sidecar]


def _json(content: Any) -> str:
    return json.dumps(content, ensure_ascii=False, indent=1) + "\n"


def _export_conll(records: Sequence[LabelRecord], out: Path, parse: Parse) -> list[Path]:
    return _write(out, conll_text(records, parse=parse), file_marking(records, parse=parse))


def _export_spacy(records: Sequence[LabelRecord], out: Path, parse: Parse) -> list[Path]:
    return _write(out, _json(spacy_docs(records)), file_marking(records, parse=parse))


def _export_coco(records: Sequence[LabelRecord], out: Path, parse: Parse) -> list[Path]:
    dataset = coco_dataset(records, parse=parse)
    return _write(out, _json(dataset), dataset["info"]["marking"])


def _export_yolo(records: Sequence[LabelRecord], out: Path, parse: Parse) -> list[Path]:
    written: list[Path] = []
    for relative, (content, marking) in yolo_files(records, parse=parse).items():
        written += _write(out / relative, content, marking)
    return written


def _export_preference(records: Sequence[LabelRecord], out: Path, parse: Parse) -> list[Path]:
    return _write(out, preference_lines(records), file_marking(records, parse=parse))


def _export_label_studio(records: Sequence[LabelRecord], out: Path, parse: Parse) -> list[Path]:
    return _write(out, _json(label_studio_tasks(records)), file_marking(records, parse=parse))


#: Export format name -> writer ``(records, destination, parse) -> files written``. The
#: destination is a file, except for ``yolo`` (a folder).
EXPORTERS: dict[str, Callable[[Sequence[LabelRecord], Path, Parse], list[Path]]] = {
    "conll": _export_conll,
    "spacy": _export_spacy,
    "coco": _export_coco,
    "yolo": _export_yolo,
    "preference": _export_preference,
    "label-studio": _export_label_studio,
}


def write_labels(
    records: Sequence[LabelRecord],
    fmt: str,
    destination: str | Path,
    *,
    parse: Parse = parse_marking,
) -> list[Path]:
    """Write ``records`` in format ``fmt`` (a key of :data:`EXPORTERS`) at ``destination``,
    each file with its ``.marking`` sidecar; returns the paths written. Every marking is parsed
    before anything is written."""
    if fmt not in EXPORTERS:
        raise InvalidInput(f"Unknown label format {fmt!r}: use one of {', '.join(EXPORTERS)}.")
    records = list(records)
    file_marking(records, parse=parse)
    return EXPORTERS[fmt](records, Path(destination), parse)


def export_records(
    fmt: str,
    task_type: str,
    rows: Sequence[Mapping[str, Any]],
    destination: str | Path,
    *,
    schema: Mapping[str, Any] | None = None,
    parse: Parse = parse_marking,
) -> list[Path]:
    """Write a labeling project's exported rows (see :func:`records_from_rows`) in ``fmt``.

    Label Studio gets every replica (one annotation each); the other formats get each record's
    aggregate label. Returns the paths written, sidecars included.
    """
    if fmt not in EXPORTERS:
        raise InvalidInput(f"Unknown label format {fmt!r}: use one of {', '.join(EXPORTERS)}.")
    records = records_from_rows(task_type, rows, schema=schema, replicas=fmt == "label-studio")
    return write_labels(records, fmt, destination, parse=parse)
