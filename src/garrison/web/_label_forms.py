"""The labeling pages' forms: what a posted form says a label is, and how a task is shown.

Every annotation form works as plain HTML (radio buttons, check boxes, number fields and
buttons); the page's script only fills in the same fields from keys, text selection and mouse
drags. Spans and boxes travel as repeated hidden fields (``span`` = ``START,END,TYPE``, ``box`` =
``X,Y,W,H,LABEL``), so adding or removing one without script is a draft saved and the page
shown again. Offsets are character (code point) offsets into the record's text, as the library
keeps them.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup, escape
from starlette.datastructures import FormData

from garrison.core.errors import InvalidInput
from garrison.label import TaskView

__all__ = [
    "ACTIONS",
    "EDITS",
    "MAX_FIELD",
    "one",
    "parse_action",
    "preference_texts",
    "record_text",
    "span_segments",
    "value_from_form",
]

#: What an annotation form's buttons may ask for.
ACTIONS = ("submit", "draft", "skip", "flag", "add_span", "remove_span", "add_box", "remove_box")
#: The actions that edit a span or box list and show the form again.
EDITS = ("add_span", "remove_span", "add_box", "remove_box")
#: The longest single form field read (a free-text answer, a reason).
MAX_FIELD = 20_000
#: The most spans or boxes one label holds.
MAX_ITEMS = 500


def one(form: FormData, name: str, default: str = "") -> str:
    """A single text field of ``form`` (the first when repeated); InvalidInput when too long."""
    value = form.get(name, default)
    if not isinstance(value, str):
        raise InvalidInput(f"The field {name} is text.")
    if len(value) > MAX_FIELD:
        raise InvalidInput(f"The field {name} is longer than {MAX_FIELD} characters.")
    return value


def _many(form: FormData, name: str) -> list[str]:
    values = [v for v in form.getlist(name) if isinstance(v, str)]
    if len(values) > MAX_ITEMS:
        raise InvalidInput(f"A label holds at most {MAX_ITEMS} items.")
    return values


def _int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise InvalidInput(f"The {what} is a whole number.") from None


def _float(text: str, what: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise InvalidInput(f"The {what} is a number.") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidInput(f"The {what} is a number.")
    return value


def _spans(form: FormData) -> list[dict[str, Any]]:
    spans = []
    for item in _many(form, "span"):
        start, _, rest = item.partition(",")
        end, _, kind = rest.partition(",")
        spans.append(
            {"start": _int(start, "span start"), "end": _int(end, "span end"), "type": kind}
        )
    return spans


def _boxes(form: FormData) -> list[dict[str, Any]]:
    boxes = []
    for item in _many(form, "box"):
        parts = item.split(",", 4)
        if len(parts) != 5:
            raise InvalidInput("A box is x, y, width, height and a label.")
        x, y, w, h = (_float(p, "box coordinate") for p in parts[:4])
        boxes.append({"x": x, "y": y, "w": w, "h": h, "label": parts[4]})
    return boxes


def parse_action(text: str, allowed: tuple[str, ...]) -> tuple[str, int | None]:
    """A button's action (``remove_span:3`` names the item to remove) and its index."""
    name, _, index = text.partition(":")
    if name not in allowed:
        raise InvalidInput(f"Unknown action {name!r}.")
    if name in ("remove_span", "remove_box"):
        return name, _int(index, "item to remove")
    return name, None


def value_from_form(
    kind: str, schema: Mapping[str, Any], form: FormData, action: str, index: int | None = None
) -> Any:
    """The label value a posted annotation (or fix) form holds for a task of type ``kind``,
    after ``action``'s edit (a span or box added or removed). The library checks it against
    the schema and the text."""
    if kind == "classification":
        chosen = [v for v in _many(form, "value") if v]
        if schema.get("multi"):
            return chosen
        if len(chosen) != 1:
            raise InvalidInput("Pick one class.")
        return chosen[0]
    if kind == "preference":
        return one(form, "value")
    if kind == "answer":
        return one(form, "answer")
    if kind == "spans":
        spans = _spans(form)
        if action == "add_span":
            start = _int(one(form, "new_start"), "span start")
            end = _int(one(form, "new_end"), "span end")
            spans.append({"start": start, "end": end, "type": one(form, "new_type")})
        elif action == "remove_span" and index is not None and 0 <= index < len(spans):
            spans.pop(index)
        return spans
    boxes = _boxes(form)
    if action == "add_box":
        boxes.append(
            {
                "x": _float(one(form, "new_x"), "box x"),
                "y": _float(one(form, "new_y"), "box y"),
                "w": _float(one(form, "new_w"), "box width"),
                "h": _float(one(form, "new_h"), "box height"),
                "label": one(form, "new_label"),
            }
        )
    elif action == "remove_box" and index is not None and 0 <= index < len(boxes):
        boxes.pop(index)
    return boxes


def record_text(text: str) -> Markup:
    """A record's text as HTML whose text content is exactly ``text``: escaped, with carriage
    returns as character references (the HTML parser would turn a literal one into a newline,
    and the offsets a browser measures would drift)."""
    return Markup(str(escape(text)).replace("\r", "&#13;"))  # noqa: S704


def span_segments(text: str, spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The text cut at every span boundary: ``{"text", "types", "spans"}`` per piece, where
    ``types`` and ``spans`` are the types and indices of the spans covering it."""
    cuts = {0, len(text)}
    for span in spans:
        cuts.update((max(0, min(len(text), span["start"])), max(0, min(len(text), span["end"]))))
    bounds = sorted(cuts)
    pieces = []
    for start, end in itertools.pairwise(bounds):
        covering = [i for i, s in enumerate(spans) if s["start"] <= start and end <= s["end"]]
        pieces.append(
            {
                "text": record_text(text[start:end]),
                "types": sorted({spans[i]["type"] for i in covering}),
                "spans": covering,
            }
        )
    return pieces


def preference_texts(task: TaskView) -> tuple[str, str]:
    """The two texts of a preference task: ``fields.a`` and ``fields.b``, or the record's text
    split at the schema's separator (the whole text and nothing when it has none)."""
    fields = task.fields or {}
    if isinstance(fields.get("a"), str) and isinstance(fields.get("b"), str):
        return fields["a"], fields["b"]
    separator = task.schema.get("separator")
    if separator and separator in task.text:
        a, _, b = task.text.partition(separator)
        return a.strip(), b.strip()
    return task.text, ""
