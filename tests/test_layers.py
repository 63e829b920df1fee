"""The layer table of docs/architecture.md holds: the import-linter contracts in pyproject.toml
pass on src/garrison, and each of them breaks when code crosses the line it draws."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"

_RUN = (
    "import sys\n"
    "from importlinter.cli import lint_imports\n"
    "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))\n"
)


def _lint(root: Path) -> tuple[int, str]:
    """Run the contracts of ``root``/pyproject.toml on ``root``/src (in a fresh interpreter,
    so the package analysed is that tree's)."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads(PYPROJECT.read_text())
    return list(config["tool"]["importlinter"]["contracts"])


def _verdicts(output: str) -> dict[str, str]:
    """Contract name -> KEPT or BROKEN, from lint-imports' report (names may wrap)."""
    flat = " ".join(output.split())
    out: dict[str, str] = {}
    for contract in _contracts():
        name = " ".join(str(contract["name"]).split())
        found = re.search(re.escape(name) + r" (KEPT|BROKEN)", flat)
        out[str(contract["id"])] = found.group(1) if found else "MISSING"
    return out


def test_the_contracts_hold_on_the_tree() -> None:
    code, output = _lint(ROOT)
    verdicts = _verdicts(output)
    assert code == 0, output
    assert set(verdicts.values()) == {"KEPT"}, output


def test_every_package_has_a_layer() -> None:
    layers = next(c for c in _contracts() if c["id"] == "layers")
    assert layers["exhaustive"] is True
    declared = {
        name.strip()
        for layer in layers["layers"]
        for name in str(layer).split(":")  # type: ignore[attr-defined]
    }
    top = list((ROOT / "src/garrison").iterdir())
    packages = {p.name for p in top if (p / "__init__.py").exists()}
    # Top-level modules too (the Python API's ``_facade``), but not the package's own file.
    modules = {p.stem for p in top if p.suffix == ".py" and p.stem != "__init__"}
    assert packages | modules == declared
    # The packages later capabilities fill are there (empty until then), and so named.
    assert {"models", "assist", "evaluate", "label"} <= packages


#: Crossings of every contract: (file under src/garrison, module it imports, contract broken).
CROSSINGS = [
    ("core/clock.py", "garrison.store.session", "layers"),
    ("security/policy.py", "garrison.store.models", "layers"),
    ("store/blobs.py", "garrison.datasets", "layers"),
    ("datasets/verify.py", "garrison.web", "layers"),
    ("models/embedding.py", "garrison.search", "layers"),
    ("parse/detect.py", "garrison.evaluate", "layers"),
    ("parse/detect.py", "garrison.models", "capability-parse"),
    ("models/embedding.py", "garrison.parse", "capability-models"),
    ("search/_search.py", "garrison.pipeline.executor", "capability-search"),
    ("pipeline/spec.py", "garrison.search", "capability-pipeline"),
    ("pipeline/sink.py", "garrison.ingest", "capability-pipeline"),
    ("ingest/marking.py", "garrison.pipeline", "capability-ingest"),
    ("datasets/verify.py", "garrison.parse", "capability-datasets"),
    ("label/__init__.py", "garrison.search", "capability-label"),
    ("assist/__init__.py", "garrison.pipeline", "capability-assist"),
    ("evaluate/__init__.py", "garrison.parse", "capability-evaluate"),
    ("ops/doctor.py", "garrison.ingest", "capability-ops"),
    ("datasets/export.py", "sqlalchemy", "catalog-in-store"),
    ("search/_search.py", "lancedb", "catalog-in-store"),
    ("web/_core.py", "sqlalchemy", "catalog-in-store"),
    ("ingest/marking.py", "sqlalchemy", "catalog-in-store"),
    ("pipeline/stages/embed.py", "sentence_transformers", "ml-in-models"),
    ("store/index.py", "fastapi", "web-frameworks-in-interfaces"),
]


@pytest.fixture(scope="module")
def crossed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str]:
    """The contracts' verdicts (and report) on a copy of the tree with every crossing in it."""
    root = tmp_path_factory.mktemp("crossed")
    shutil.copy(PYPROJECT, root / "pyproject.toml")
    shutil.copytree(
        ROOT / "src/garrison",
        root / "src/garrison",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for path, imported, _ in CROSSINGS:
        target = root / "src/garrison" / path
        target.write_text(target.read_text() + f"\nimport {imported}  # noqa\n")
    code, output = _lint(root)
    assert code != 0, output
    return _verdicts(output), " ".join(output.split())


@pytest.mark.parametrize(("path", "imported", "contract"), CROSSINGS)
def test_each_crossing_breaks_its_contract(
    crossed: tuple[dict[str, str], str], path: str, imported: str, contract: str
) -> None:
    verdicts, report = crossed
    assert verdicts[contract] == "BROKEN", report
    module = "garrison." + path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    assert f"{module} -> {imported}" in report


def test_every_contract_is_exercised() -> None:
    assert {c for _, _, c in CROSSINGS} == {str(c["id"]) for c in _contracts()}
