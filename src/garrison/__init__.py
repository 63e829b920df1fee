"""Garrison: turn marked, siloed data into AI-ready data, air-gapped, with every read enforced.

The Python API::

    import garrison

    with garrison.open("./ws") as ws, ws.session("bob") as s:
        for hit in s.search("fuel depot").hits:
            print(hit.marking, hit.snippet)
        for sentence in s.ask("Which depot receives the fuel?").sentences:
            print(sentence.portion, sentence.text)

Names are imported when first used (``import garrison`` loads none of the heavy libraries);
the reference is ``docs/python-api.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported on first use).
_LAZY: dict[str, str] = {
    "open": "garrison._facade",
    "init": "garrison._facade",
    "parse_file": "garrison._facade",
    "Workspace": "garrison._facade",
    "Session": "garrison._facade",
    "Marking": "garrison.security.markings",
    "parse_marking": "garrison.security.markings",
    "join": "garrison.security.markings",
    "dominates": "garrison.security.markings",
    "Subject": "garrison.security.subjects",
    "SearchHit": "garrison.search",
    "SearchResult": "garrison.search",
    "Answer": "garrison.assist",
    "Citation": "garrison.assist",
    "DatasetVersion": "garrison.datasets",
    "IngestReport": "garrison.ingest.engine",
    "Preview": "garrison.ingest.preview",
    "GarrisonError": "garrison.core.errors",
    "CheckFailed": "garrison.core.errors",
    "InvalidInput": "garrison.core.errors",
    "MarkingError": "garrison.core.errors",
    "NotFound": "garrison.core.errors",
    "NotPermitted": "garrison.core.errors",
    "EnvironmentProblem": "garrison.core.errors",
    "WorkspaceError": "garrison.core.errors",
    "MissingExtra": "garrison.core.errors",
}

__all__ = [
    "Answer",
    "CheckFailed",
    "Citation",
    "DatasetVersion",
    "EnvironmentProblem",
    "GarrisonError",
    "IngestReport",
    "InvalidInput",
    "Marking",
    "MarkingError",
    "MissingExtra",
    "NotFound",
    "NotPermitted",
    "Preview",
    "SearchHit",
    "SearchResult",
    "Session",
    "Subject",
    "Workspace",
    "WorkspaceError",
    "dominates",
    "init",
    "join",
    "open",
    "parse_file",
    "parse_marking",
]

if TYPE_CHECKING:
    from garrison._facade import Session, Workspace, init, open, parse_file
    from garrison.assist import Answer, Citation
    from garrison.core.errors import (
        CheckFailed,
        EnvironmentProblem,
        GarrisonError,
        InvalidInput,
        MarkingError,
        MissingExtra,
        NotFound,
        NotPermitted,
        WorkspaceError,
    )
    from garrison.datasets import DatasetVersion
    from garrison.ingest.engine import IngestReport
    from garrison.ingest.preview import Preview
    from garrison.search import SearchHit, SearchResult
    from garrison.security.markings import Marking, dominates, join, parse_marking
    from garrison.security.subjects import Subject


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'garrison' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
