"""Write the Python API reference (docs/python-api.md) from the docstrings of ``garrison``.

    PYTHONPATH=src .venv/bin/python scripts/gen-python-api.py > docs/python-api.md

Every name in ``garrison.__all__`` is documented: functions with their signatures, classes with
their fields and public methods, errors with their exit codes. tests/test_docs.py regenerates
the page and fails when the committed file differs.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any

import garrison
from garrison.core.errors import GarrisonError

INTRO = """\
## The Python API

`import garrison` gives the same library the `garrison` command and the REST API call, with the
same checks: a session acts as one user, sees only what that user may read, and is audited like
any other. Names load on first use, so importing `garrison` is fast and needs no optional extra.

```python
import garrison

with garrison.open("./ws") as ws, ws.session("ben") as s:
    report = s.ingest("examples/sample/docs", default_marking="CONFIDENTIAL//NOFORN")
    s.run()                                  # the built-in pipeline
    for hit in s.search("fuel depot", k=5).hits:
        print(hit.marking, hit.snippet)
    for sentence in s.ask("Which depot receives the fuel?").sentences:
        print(sentence.portion, sentence.text)

preview = garrison.parse_file("memo.docx", system_high="SECRET//NOFORN")  # no workspace
print(preview.verdict, preview.marking, [f.kind for f in preview.findings])
```

A runnable example is `examples/python_api.py`. Every other library function takes the store
session (`Session.store`) as its first argument. This page is generated from the docstrings by
`scripts/gen-python-api.py`; do not edit it by hand.
"""

_SECTIONS: list[tuple[str, Callable[[Any], bool]]] = [
    ("Functions", inspect.isroutine),
    ("Errors", lambda v: inspect.isclass(v) and issubclass(v, GarrisonError)),
    ("Classes", inspect.isclass),
]


def _doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__) if obj.__doc__ else ""


class _Shown:
    """A default value shown by name: its repr may differ between runs (sets, objects)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    return isinstance(value, tuple) and all(_plain(v) for v in value)


def _signature(obj: Any) -> str:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    params = []
    for p in signature.parameters.values():
        if p.default is not inspect.Parameter.empty and not _plain(p.default):
            p = p.replace(default=_Shown(f"{type(p.default).__name__}(...)"))
        params.append(p.replace(annotation=_annotation(p.annotation)))
    ret = _annotation(signature.return_annotation)
    return str(signature.replace(parameters=params, return_annotation=ret))


def _annotation(annotation: Any) -> Any:
    """String annotations (``from __future__ import annotations``) shown without quotes."""
    return _Shown(annotation) if isinstance(annotation, str) else annotation


def _methods(cls: type) -> Iterator[tuple[str, Any]]:
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property):
            yield name, value
        elif inspect.isfunction(value) or isinstance(value, classmethod | staticmethod):
            yield name, getattr(cls, name)


def _function(name: str, fn: Any) -> list[str]:
    lines = [f"### `garrison.{name}{_signature(fn)}`", ""]
    if doc := _doc(fn):
        lines += [doc, ""]
    return lines


def _class(name: str, cls: type) -> list[str]:
    lines = [f"### `garrison.{name}`", ""]
    if doc := _doc(cls):
        lines += [doc, ""]
    if dataclasses.is_dataclass(cls):
        lines += ["| field | type |", "|---|---|"]
        for f in dataclasses.fields(cls):
            if f.name.startswith("_"):
                continue
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            lines.append(f"| `{f.name}` | `{kind}` |")
        lines.append("")
    for method, value in _methods(cls):
        if isinstance(value, property):
            lines.append(f"- **`{method}`** (property)")
            doc = _doc(value)
        else:
            lines.append(f"- **`{method}{_signature(value)}`**")
            doc = _doc(value)
        if doc:
            lines += ["", *("  " + line if line else "" for line in doc.splitlines())]
        lines.append("")
    return lines


def _error(name: str, cls: type[GarrisonError]) -> str:
    first = _doc(cls).split("\n\n")[0].replace("\n", " ")
    return f"| `garrison.{name}` | {cls.exit_code} | {first} |"


def render() -> str:
    """The whole page."""
    values = {name: getattr(garrison, name) for name in garrison.__all__}
    out = [INTRO]
    done: set[str] = set()
    for title, wanted in _SECTIONS:
        names = [n for n, v in values.items() if n not in done and wanted(v)]
        done.update(names)
        out += [f"### {title}" if title != "Functions" else "### Functions", ""]
        if title == "Errors":
            out += [
                "Every expected failure is a `GarrisonError`; its exit code is what the command "
                "line exits with.",
                "",
                "| error | exit code | meaning |",
                "|---|---|---|",
            ]
            out += [_error(n, values[n]) for n in names]
            out.append("")
            continue
        for name in names:
            block = _function(name, values[name]) if title == "Functions" else None
            out += block if block is not None else _class(name, values[name])
    text = "\n".join(out).rstrip() + "\n"
    # Headings: the sections at ###, the entries at ####.
    return text.replace("\n### `garrison.", "\n#### `garrison.")


if __name__ == "__main__":
    sys.stdout.write(render())
