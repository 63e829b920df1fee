"""Scorers of structured outputs: JSON validity against a schema (``jsonschema``), field
accuracy against the expected JSON, and classification accuracy."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from garrison.core.errors import InvalidInput, MissingExtra
from garrison.evaluate.scorers._base import NotApplicable, Score, Scored, register
from garrison.evaluate.scorers._text import normalize_answer

__all__ = ["leaves", "response_json", "show_path"]

_FENCE = re.compile(r"^```(?:json)?\s*\n(?P<body>.*)\n```$", re.DOTALL)
_MISSING = object()


def response_json(response: Mapping[str, Any]) -> tuple[Any, str | None]:
    """The response's JSON: its ``json`` when set, else its text parsed (inside a single
    ```json fence at most); ``(None, why)`` when there is none."""
    if response.get("json") is not None:
        return response["json"], None
    text = response.get("text")
    if not isinstance(text, str):
        return None, "the response has neither JSON nor text"
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced is not None:
        text = fenced["body"]
    try:
        return json.loads(text), None
    except ValueError as exc:
        return None, f"not JSON: {exc}"


Path = tuple[str | int, ...]


def leaves(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """The leaf values of a JSON value with their paths (keys and list indices)."""
    if isinstance(value, Mapping) and value:
        for key, child in value.items():
            yield from leaves(child, (*path, str(key)))
    elif isinstance(value, list) and value:
        for i, child in enumerate(value):
            yield from leaves(child, (*path, i))
    else:
        yield path, value


def show_path(path: Path) -> str:
    """``cargo.kind``, ``ports[1]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(root)"


def _lookup(value: Any, path: Path) -> Any:
    for part in path:
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                return _MISSING
            value = value[part]
        else:
            if not isinstance(value, Mapping) or part not in value:
                return _MISSING
            value = value[part]
    return value


class _JsonValid:
    name = "json-valid"
    version = "1"
    binary = True
    kinds = frozenset({"extraction", "generation"})

    def __init__(self, schema: Mapping[str, Any] | None) -> None:
        self._schema = schema

    def score(self, item: Scored) -> Score:
        schema = self._schema if self._schema is not None else item.expected.get("schema")
        value, why = response_json(item.response)
        if why is not None:
            return Score(self.name, 0.0, True, {"error": why})
        if schema is None:
            return Score(self.name, 1.0, True, {})
        if not isinstance(schema, Mapping):
            raise InvalidInput("A JSON schema must be a JSON object.")
        try:
            import jsonschema  # type: ignore[import-untyped]
            from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]
        except ImportError as exc:
            raise MissingExtra("evaluate", "jsonschema") from exc
        validator_class = jsonschema.validators.validator_for(schema)
        try:
            validator_class.check_schema(schema)
        except SchemaError as exc:
            raise InvalidInput(f"The JSON schema is not valid: {exc.message}.") from exc
        errors = sorted(validator_class(schema).iter_errors(value), key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.path) or "(root)"
            return Score(
                self.name, 0.0, True, {"error": f"{where}: {first.message}", "errors": len(errors)}
            )
        return Score(self.name, 1.0, True, {})


@register("json-valid")
def _json_valid(*, schema: Mapping[str, Any] | None = None) -> _JsonValid:
    return _JsonValid(schema)


class _JsonFields:
    name = "json-fields"
    version = "1"
    binary = False
    kinds = frozenset({"extraction"})

    def __init__(self, normalize: bool) -> None:
        self._normalize = normalize

    def _same(self, got: Any, want: Any) -> bool:
        if self._normalize and isinstance(got, str) and isinstance(want, str):
            return normalize_answer(got) == normalize_answer(want)
        if isinstance(got, bool) or isinstance(want, bool):
            return got is want
        return bool(got == want)

    def score(self, item: Scored) -> Score:
        expected = item.expected.get("json")
        if not isinstance(expected, Mapping) or not expected:
            raise NotApplicable("The item has no expected JSON object (expected 'json').")
        fields = list(leaves(expected))
        value, why = response_json(item.response)
        if why is not None:
            return Score(self.name, 0.0, False, {"error": why, "fields": len(fields)})
        wrong = [show_path(p) for p, want in fields if not self._same(_lookup(value, p), want)]
        detail = {"fields": len(fields), "correct": len(fields) - len(wrong), "wrong": wrong[:20]}
        return Score(self.name, (len(fields) - len(wrong)) / len(fields), False, detail)


@register("json-fields")
def _json_fields(*, normalize: bool = True) -> _JsonFields:
    return _JsonFields(normalize)


class _Accuracy:
    name = "accuracy"
    version = "1"
    binary = True
    kinds = frozenset({"classification"})

    def score(self, item: Scored) -> Score:
        label = item.expected.get("label")
        if label is None:
            raise NotApplicable("The item has no expected label.")
        predicted = item.response.get("label")
        correct = predicted is not None and str(predicted) == str(label)
        return Score(self.name, float(correct), True, {"label": label, "predicted": predicted})


@register("accuracy")
def _accuracy() -> _Accuracy:
    return _Accuracy()
