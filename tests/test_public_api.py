"""Each package's ``__all__`` is what it means to export: every public name it defines or
re-exports is listed, every listed name exists, and nothing private or foreign slips in."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import garrison

#: Packages whose import needs an optional extra (the test skips them when it is missing).
_EXTRAS = {"garrison.api": "fastapi", "garrison.web": "fastapi"}


def _packages() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.iter_modules(garrison.__path__, "garrison.")
        if info.ispkg and not info.name.rsplit(".", 1)[1].startswith("_")
    )


def _public_modules() -> list[str]:
    """Every public module of the library (no ``_`` in any part of its name)."""
    out = []
    for info in pkgutil.walk_packages(garrison.__path__, "garrison.", onerror=lambda _: None):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts) or ".migrations" in info.name:
            continue
        out.append(info.name)
    return sorted(out)


def _load(name: str) -> ModuleType:
    for package, extra in _EXTRAS.items():
        if name == package or name.startswith(package + "."):
            pytest.importorskip(extra)
    return importlib.import_module(name)


def _defined_here(module: ModuleType) -> set[str]:
    """Public functions, classes and constants a module defines itself (not imported)."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or inspect.ismodule(value):
            continue
        origin = getattr(value, "__module__", None)
        if inspect.isfunction(value) or inspect.isclass(value):
            if origin == module.__name__:
                names.add(name)
        elif name.isupper():  # a module constant
            names.add(name)
    return names


def test_every_package_is_covered() -> None:
    assert {"core", "security", "store", "ingest", "parse", "models", "pipeline"} <= {
        p.rsplit(".", 1)[1] for p in _packages()
    }


@pytest.mark.parametrize("name", _packages())
def test_a_package_exports_exactly_its_public_names(name: str) -> None:
    package = _load(name)
    exported = getattr(package, "__all__", None)
    assert isinstance(exported, list | tuple), f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    assert all(isinstance(n, str) and not n.startswith("_") for n in exported)
    missing = [n for n in exported if not hasattr(package, n)]
    assert not missing, f"{name}.__all__ lists names it does not have: {missing}"
    # Whatever the package's own __init__ brings in from its modules is meant to be exported.
    public = {
        n
        for n, v in vars(package).items()
        if not n.startswith("_")
        and not inspect.ismodule(v)
        and n != "annotations"
        and (getattr(v, "__module__", name) or name).startswith(name)
    } | _defined_here(package)
    unlisted = sorted(public - set(exported))
    assert not unlisted, f"{name} exposes names missing from __all__: {unlisted}"


@pytest.mark.parametrize("name", _public_modules())
def test_a_public_module_lists_what_it_defines(name: str) -> None:
    module = _load(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list | tuple), f"{name} has no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ lists names it does not have: {missing}"
    assert all(not n.startswith("_") for n in exported), f"{name}.__all__ lists a private name"


# -- the top-level package: the Python API -------------------------------------------------------


def test_the_top_level_package_lists_what_it_re_exports() -> None:
    lazy = vars(garrison)["_LAZY"]
    assert garrison.__all__ == sorted(garrison.__all__) == sorted(lazy)
    for name in garrison.__all__:
        value = getattr(garrison, name)
        assert getattr(value, "__name__", name) == name
        assert name in dir(garrison)
    with pytest.raises(AttributeError):
        _ = garrison.no_such_name  # type: ignore[attr-defined]


def test_importing_garrison_loads_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, garrison\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'garrison', 'sqlalchemy', 'pydantic', 'lancedb', 'torch', 'pyarrow', 'fastapi'})\n"
        "print(loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "['garrison']"
