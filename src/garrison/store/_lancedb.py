"""Importing lancedb without the parts of it the index never uses.

``import lancedb`` imports the Lance namespace client, whose package ``__init__`` builds the
REST client of every namespace operation (a hundred pydantic models and their API classes):
about a second of CPU, the largest single cost of a cold ``garrison search``. The index uses
only local and ``s3://`` tables, never a namespace server, so :func:`import_lancedb` registers
that package with its ``__init__`` deferred: its submodules (the data models lancedb imports)
load as usual, and the first use of anything from the package itself runs the real
``__init__`` then, so nothing behaves differently -- it only happens later, if ever.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

from garrison.core.errors import MissingExtra

__all__ = ["import_lancedb"]

#: Packages whose ``__init__`` runs on first use of the package's own attributes.
DEFERRED = ("lance_namespace_urllib3_client",)

_lock = threading.Lock()


class _DeferredInit(types.ModuleType):
    """A package module whose ``__init__`` has not run yet; it runs on first attribute miss."""

    _garrison_spec: Any

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr == "_garrison_spec":
            raise AttributeError(attr)
        with _lock:
            if isinstance(self, _DeferredInit):
                spec = self._garrison_spec
                self.__class__ = types.ModuleType  # type: ignore[assignment]
                spec.loader.exec_module(self)
        return getattr(self, attr)


def _defer(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # not installed, or not a package: nothing to defer
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _DeferredInit
    setattr(module, "_garrison_spec", spec)  # noqa: B010
    sys.modules[name] = module


def import_lancedb() -> Any:
    """The ``lancedb`` module, imported with :data:`DEFERRED` packages' ``__init__`` deferred."""
    with _lock:
        for name in DEFERRED:
            _defer(name)
    try:
        return importlib.import_module("lancedb")
    except ImportError as exc:  # pragma: no cover - lancedb is a core dependency
        raise MissingExtra("embed", "lancedb") from exc
