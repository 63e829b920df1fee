"""Hugging Face conventions in exports: the card as ``README.md`` with YAML metadata, and the
chat format's prompt template.

``README.md`` starts with the YAML block the Hub and ``datasets`` read (``pretty_name``,
``license``, ``tags``, ``configs`` with each split's ``data_files``, ``dataset_info`` with the
``features`` and each split's ``num_examples`` and ``num_bytes``), plus the marking
(``marking`` and ``garrison.marking``); the card text follows with the banner as its first and
last line. ``datasets.load_dataset(<export directory>)`` reads the export through it, offline.

A prompt template (``--prompt-template FILE``, YAML or JSON) says how a record becomes chat
messages: a mapping with ``system``, ``user`` and ``assistant`` strings (any may be left out:
the defaults are the built-in chat export's), or ``messages``, a list of ``{role, content}``.
Strings use ``$name`` / ``${name}`` placeholders (:class:`string.Template`, no attribute
access): ``text``, ``marking``, ``id``, ``split``, ``title``, ``section`` (the section path
joined with `` > ``) and every field the version selected; an unknown name is an error.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.core.errors import InvalidInput

__all__ = ["PromptTemplate", "SplitInfo", "features_of", "load_prompt_template", "readme"]

_ROLES = ("system", "user", "assistant")
DEFAULT_MESSAGES: tuple[tuple[str, str], ...] = (
    ("system", "Classification: ${marking}"),
    ("user", "${prompt}"),
    ("assistant", "${text}"),
)


@dataclass(frozen=True)
class SplitInfo:
    """One split as written: its data files (relative paths), rows and in-memory bytes."""

    name: str
    files: list[str]
    num_examples: int
    num_bytes: int


# -- features --------------------------------------------------------------------------------------


def _feature_type(arrow_type: Any) -> dict[str, Any]:
    import pyarrow as pa  # type: ignore[import-untyped]

    t = arrow_type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = _feature_type(t.value_type)
        if "dtype" in inner:
            return {"list": inner["dtype"]}
        if "struct" in inner:
            return {"list": inner["struct"]}
        return {"list": inner}
    if pa.types.is_struct(t):
        return {"struct": [{"name": f.name, **_feature_type(f.type)} for f in t]}
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return {"dtype": "string"}
    if pa.types.is_null(t):
        return {"dtype": "null"}
    if pa.types.is_boolean(t):
        return {"dtype": "bool"}
    name = str(t)  # int64, int32, ...; Arrow spells the floats "double", "float", "halffloat"
    return {
        "dtype": {"double": "float64", "float": "float32", "halffloat": "float16"}.get(name, name)
    }


def features_of(schema: Any) -> list[dict[str, Any]]:
    """``dataset_info.features`` for an Arrow schema, in the Hub's YAML layout."""
    out: list[dict[str, Any]] = []
    for field in schema:
        kind = _feature_type(field.type)
        if "struct" in kind:  # a top-level struct column is written as a list of sub-features
            out.append({"name": field.name, "struct": kind["struct"]})
        else:
            out.append({"name": field.name, **kind})
    return out


# -- README.md -------------------------------------------------------------------------------------


def readme(
    *,
    name: str,
    version_id: str,
    banner: str,
    kind: str,
    fmt: str,
    splits: Sequence[SplitInfo],
    features: list[dict[str, Any]] | None,
    card_markdown: str,
    license_id: str,
    notes: Sequence[str] = (),
) -> str:
    """The card as ``README.md``: YAML metadata, then the card text (banner first and last)."""
    import yaml

    info: dict[str, Any] = {}
    if features is not None:
        info["features"] = features
    info["splits"] = [
        {"name": s.name, "num_bytes": s.num_bytes, "num_examples": s.num_examples} for s in splits
    ]
    info["dataset_size"] = sum(s.num_bytes for s in splits)
    meta: dict[str, Any] = {
        "pretty_name": f"{name} ({version_id[:12]})",
        "license": license_id,
        "tags": ["garrison", "security-marked", kind],
        "marking": banner,
        "garrison": {"version_id": version_id, "marking": banner, "format": fmt},
        "configs": [
            {
                "config_name": "default",
                "data_files": [
                    {"split": s.name, "path": s.files[0] if len(s.files) == 1 else s.files}
                    for s in splits
                ],
            }
        ],
        "dataset_info": info,
    }
    if license_id == "other":
        meta["license_name"] = "marked-data"
        meta["license_details"] = (
            f"Handle, store and release as marked: {banner}. The banner governs every use."
        )
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    body = card_markdown.rstrip("\n") + "\n"
    if notes:
        # Inside the banners: the card's last line stays the banner.
        lines = body.rstrip("\n").split("\n")
        last = lines.pop()
        lines += ["## Export notes", "", *(f"- {n}" for n in notes), "", last]
        body = "\n".join(lines) + "\n"
    return f"---\n{front}---\n\n{body}"


# -- prompt templates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptTemplate:
    """How a record becomes chat messages: ``(role, template)`` pairs, in order."""

    messages: tuple[tuple[str, str], ...] = DEFAULT_MESSAGES
    source: str | None = None  # the template file's text, copied into the export

    def render(self, values: Mapping[str, Any]) -> list[dict[str, str]]:
        out = []
        for role, template in self.messages:
            try:
                content = string.Template(template).substitute(_as_text(values))
            except KeyError as exc:
                known = ", ".join(sorted(values))
                raise InvalidInput(
                    f"The prompt template names ${exc.args[0]}, which a record does not have "
                    f"(known: {known})."
                ) from None
            except ValueError as exc:
                raise InvalidInput(f"The prompt template is malformed: {exc}.") from None
            out.append({"role": role, "content": content})
        return out


def _as_text(values: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            out[key] = ""
        elif isinstance(value, str):
            out[key] = value
        else:
            out[key] = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return out


def load_prompt_template(path: Path) -> PromptTemplate:
    """Read a prompt template file (YAML or JSON; see the module docs); InvalidInput if bad."""
    import yaml

    try:
        source = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"Cannot read the prompt template {path}: {exc.strerror}.") from exc
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError:
        raise InvalidInput(f"The prompt template {path} is not valid YAML or JSON.") from None
    if not isinstance(data, dict):
        raise InvalidInput(
            f"The prompt template {path} must be a mapping (system, user, assistant or messages)."
        )
    unknown = sorted(set(data) - {*_ROLES, "messages"})
    if unknown or ("messages" in data and set(data) & set(_ROLES)):
        raise InvalidInput(
            f"The prompt template {path} may hold system, user and assistant, or messages alone"
            + (f" (not {', '.join(unknown)})." if unknown else ".")
        )
    if "messages" in data:
        raw = data["messages"]
        if not isinstance(raw, list) or not raw:
            raise InvalidInput(f"The prompt template {path}: messages must be a non-empty list.")
        pairs: list[tuple[str, str]] = []
        for message in raw:
            if (
                not isinstance(message, dict)
                or message.get("role") not in _ROLES
                or not isinstance(message.get("content"), str)
            ):
                raise InvalidInput(
                    f"The prompt template {path}: each message needs a role (system, user or "
                    "assistant) and a content string."
                )
            pairs.append((message["role"], message["content"]))
        return PromptTemplate(tuple(pairs), source)
    defaults = dict(DEFAULT_MESSAGES)
    chosen: list[tuple[str, str]] = []
    for role in _ROLES:
        value = data.get(role, defaults[role])
        if value is None:
            continue  # an explicit null leaves the message out
        if not isinstance(value, str):
            raise InvalidInput(f"The prompt template {path}: {role} must be a string.")
        chosen.append((role, value))
    return PromptTemplate(tuple(chosen), source)
