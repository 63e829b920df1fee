"""Label Studio's JSON tasks, both ways, for teams moving over.

A task is ``{"id", "data": {...}, "meta": {"kind"}, "annotations": [{"result": [...]}]}``; the
replicas of one record are the annotations of one task. ``data`` holds what is labeled
(``text``; ``image``; ``prompt``, ``left``, ``right`` for a pairwise preference, the chosen text
on the left) and Garrison's ``record_id`` and ``marking``. Results by kind: ``choices``
(classification, multi-label), ``labels`` (spans: ``start``, ``end``, ``text``, ``labels``),
``rectanglelabels`` (boxes, in percent of ``original_width``/``original_height``), ``textarea``
(free text), ``pairwise`` (``selected``: ``left`` or ``right``).

On import every task needs a marking (``data.marking``, or the ``default_marking`` the caller
vouches for): labels are marked data, and an unmarked task is refused rather than guessed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from garrison.core.errors import InvalidInput
from garrison.label._label_record import LabelRecord, Parse
from garrison.security.markings import parse_marking

__all__ = ["label_studio_tasks", "read_label_studio", "read_label_studio_tasks"]

_TO = {"boxes": "image", "preference": "comparison"}


def _result(record: LabelRecord, selected: str = "left") -> list[dict[str, Any]]:
    to_name = _TO.get(record.kind, "text")
    base = {"from_name": "label", "to_name": to_name}
    kind, value = record.kind, record.value
    if kind in ("classification", "multilabel"):
        choices = [value] if kind == "classification" else list(value)
        return [{**base, "type": "choices", "value": {"choices": choices}}]
    if kind == "spans":
        text = record.text or ""
        return [
            {
                **base,
                "id": f"s{i}",
                "type": "labels",
                "value": {"start": s, "end": e, "text": text[s:e], "labels": [label]},
            }
            for i, (s, e, label) in enumerate(value)
        ]
    if kind == "boxes":
        width, height = record.width or 0, record.height or 0
        if not width or not height:
            raise InvalidInput(f"The image of record {record.record_id!r} has no width and height.")
        return [
            {
                **base,
                "id": f"b{i}",
                "type": "rectanglelabels",
                "original_width": width,
                "original_height": height,
                "image_rotation": 0,
                "value": {
                    "x": 100 * x / width,
                    "y": 100 * y / height,
                    "width": 100 * w / width,
                    "height": 100 * h / height,
                    "rotation": 0,
                    "rectanglelabels": [label],
                },
            }
            for i, (x, y, w, h, label) in enumerate(value)
        ]
    if kind == "text":
        return [{**base, "from_name": "answer", "type": "textarea", "value": {"text": [value]}}]
    return [
        {**base, "from_name": "comparison", "type": "pairwise", "value": {"selected": selected}}
    ]


def _data(record: LabelRecord) -> dict[str, Any]:
    data: dict[str, Any]
    if record.kind == "boxes":
        data = {"image": record.image}
    elif record.kind == "preference":
        data = {
            "prompt": record.text,
            "left": record.value["chosen"],
            "right": record.value["rejected"],
        }
    else:
        data = {"text": record.text}
    return {**data, "record_id": record.record_id, "marking": record.marking}


def _shown(data: dict[str, Any]) -> Any:
    """What a task shows, whichever side a preference's chosen text is on."""
    if "left" in data:
        return {**data, "left": None, "right": None, "pair": {data["left"], data["right"]}}
    return data


def label_studio_tasks(records: Sequence[LabelRecord]) -> list[dict[str, Any]]:
    """Label Studio tasks, one per record id (in first-seen order), one annotation per replica.

    The replicas of one record must agree on what it shows (text, image) and its marking."""
    tasks: dict[str, dict[str, Any]] = {}
    for record in records:
        data = _data(record)
        task = tasks.get(record.record_id)
        if task is None:
            task = {
                "id": len(tasks) + 1,
                "data": data,
                "meta": {"kind": record.kind},
                "annotations": [],
            }
            tasks[record.record_id] = task
        elif task["meta"]["kind"] != record.kind or _shown(task["data"]) != _shown(data):
            raise InvalidInput(
                f"The labels of record {record.record_id!r} disagree on what it shows, its "
                "kind or its marking."
            )
        selected = "left"
        if record.kind == "preference":
            pair = (record.value["chosen"], record.value["rejected"])
            if pair == (task["data"]["right"], task["data"]["left"]):
                selected = "right"
        annotation: dict[str, Any] = {
            "id": sum(len(t["annotations"]) for t in tasks.values()) + 1,
            "completed_by": record.annotator,
            "result": _result(record, selected),
            "was_cancelled": False,
            "ground_truth": False,
            "meta": {"schema_version": record.schema_version},
        }
        if record.labeled_at is not None:
            annotation["created_at"] = record.labeled_at
        task["annotations"].append(annotation)
    return list(tasks.values())


# -- import --------------------------------------------------------------------------------------


def _annotator(annotation: dict[str, Any]) -> str | None:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return None if who is None else str(who)


def _kind(task: dict[str, Any], results: list[dict[str, Any]], where: str) -> str:
    meta = task.get("meta")
    if isinstance(meta, dict) and meta.get("kind") is not None:
        return str(meta["kind"])
    types = {r.get("type") for r in results}
    if types <= {"choices"}:
        many = any(len(r.get("value", {}).get("choices", [])) > 1 for r in results)
        return "multilabel" if many else "classification"
    kinds = {
        "labels": "spans",
        "rectanglelabels": "boxes",
        "textarea": "text",
        "pairwise": "preference",
    }
    found = {kinds.get(str(t)) for t in types}
    if len(found) != 1 or None in found:
        raise InvalidInput(
            f"{where} mixes or has unsupported result types: {sorted(map(str, types))}."
        )
    return str(found.pop())


def _value(kind: str, results: list[dict[str, Any]], data: dict[str, Any], where: str) -> Any:
    try:
        if kind in ("classification", "multilabel"):
            choices = [c for r in results for c in r["value"]["choices"]]
            if kind == "classification":
                if len(choices) != 1:
                    raise InvalidInput(f"{where} has {len(choices)} choices for a single class.")
                return choices[0]
            return tuple(choices)
        if kind == "spans":
            return tuple(
                (int(r["value"]["start"]), int(r["value"]["end"]), str(label))
                for r in results
                for label in r["value"]["labels"]
            )
        if kind == "boxes":
            boxes = []
            for r in results:
                width, height = float(r["original_width"]), float(r["original_height"])
                v = r["value"]
                for label in v["rectanglelabels"]:
                    boxes.append(
                        (
                            round(v["x"] * width / 100, 6),
                            round(v["y"] * height / 100, 6),
                            round(v["width"] * width / 100, 6),
                            round(v["height"] * height / 100, 6),
                            str(label),
                        )
                    )
            return tuple(boxes)
        if kind == "text":
            return "\n".join(t for r in results for t in r["value"]["text"])
        if kind == "preference":
            selected = results[0]["value"]["selected"]
            other = {"left": "right", "right": "left"}[selected]
            return {"chosen": data[selected], "rejected": data[other]}
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InvalidInput(f"{where} has a {kind} result Label Studio would not write.") from exc
    raise InvalidInput(f"{where} has an unknown kind {kind!r}.")


def _size(kind: str, results: list[dict[str, Any]]) -> tuple[int | None, int | None]:
    if kind != "boxes" or not results:
        return None, None
    sizes = {(int(r["original_width"]), int(r["original_height"])) for r in results}
    if len(sizes) != 1:
        raise InvalidInput("A Label Studio image's boxes disagree on its size.")
    return sizes.pop()


def read_label_studio_tasks(
    tasks: Sequence[dict[str, Any]],
    *,
    default_marking: str | None = None,
    parse: Parse = parse_marking,
) -> list[LabelRecord]:
    """The label records of Label Studio tasks: one per annotation that was not cancelled.

    A task without ``data.marking`` takes ``default_marking``; without either it is refused
    (:class:`InvalidInput`), as is a marking ``parse`` rejects.
    """
    if not isinstance(tasks, list):
        raise InvalidInput("A Label Studio export is a JSON list of tasks.")
    records: list[LabelRecord] = []
    for position, task in enumerate(tasks, start=1):
        where = (
            f"Label Studio task {task.get('id', position) if isinstance(task, dict) else position}"
        )
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise InvalidInput(f"{where} has no data.")
        data = task["data"]
        marking = data.get("marking") or default_marking
        if not marking:
            raise InvalidInput(f"{where} has no marking; give a default marking to import it.")
        banner = parse(str(marking)).banner()
        record_id = str(data.get("record_id") or task.get("id") or position)
        for annotation in task.get("annotations") or []:
            if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
                continue
            results = [r for r in annotation.get("result") or [] if isinstance(r, dict)]
            if not results:
                continue
            kind = _kind(task, results, where)
            value = _value(kind, results, data, where)
            width, height = _size(kind, results)
            meta = annotation.get("meta") if isinstance(annotation.get("meta"), dict) else {}
            version = meta.get("schema_version") if meta else None
            records.append(
                LabelRecord(
                    record_id=record_id,
                    marking=banner,
                    kind=kind,
                    value=value,
                    text=data.get("prompt") if kind == "preference" else data.get("text"),
                    image=data.get("image"),
                    width=width,
                    height=height,
                    annotator=_annotator(annotation),
                    schema_version=int(version) if version is not None else None,
                    labeled_at=annotation.get("created_at"),
                )
            )
    return records


def read_label_studio(
    path: str | Path, *, default_marking: str | None = None, parse: Parse = parse_marking
) -> list[LabelRecord]:
    """The label records of a Label Studio JSON export file."""
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path} is not a readable Label Studio JSON export.") from exc
    return read_label_studio_tasks(tasks, default_marking=default_marking, parse=parse)
