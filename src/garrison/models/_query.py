"""Query-side embedders without torch: a workspace's own ONNX export of a shipped model.

Embedding one search query with sentence-transformers means importing torch and transformers
and loading the network: seconds, before the first hit. For a shipped model
(:data:`~garrison.models.embedding.MODELS`) the workspace keeps instead a full-precision ONNX
export, run with onnxruntime and tokenized with the ``tokenizers`` library::

    <workspace>/cache/query-embedders/<model name>/
        model.onnx  tokenizer.json  onnx_config.json  ...   (see garrison.models._onnx)
        export.json   {"format": 1, "model": NAME, "source_sha256": <pinned weights>,
                       "files": {relative path: SHA-256, ...}}

The export is made locally, from the installed package's weights once they hash as pinned
(:func:`prepare_query_model`: ``garrison run`` calls it after a pipeline that embeds with a
shipped model), and accepted only when its vectors match the source's (cosine >= 0.9999 on
fixed texts), so query and index vectors stay comparable. Nothing is downloaded.

:func:`query_model` is what search embeds a query with. It uses the export only when every
file hashes as ``export.json`` records and the record names the pinned weights; a missing,
partial or altered export is never used: the query is embedded through sentence-transformers
instead (slower, same vectors), and an altered one is logged as a warning.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from garrison.core.errors import CheckFailed, GarrisonError
from garrison.models.embedding import (
    MODELS,
    EmbeddingModel,
    ModelSpec,
    file_sha256,
    get_model,
)

__all__ = [
    "EXPORT_FORMAT",
    "MANIFEST_FILE",
    "MIN_COSINE",
    "QUERY_CACHE",
    "cached_query_model",
    "prepare_query_model",
    "query_export_folder",
    "query_model",
]

#: Where a workspace keeps its query exports, relative to its root.
QUERY_CACHE = Path("cache") / "query-embedders"
MANIFEST_FILE = "export.json"
EXPORT_FORMAT = 1
#: Least cosine between the export's vectors and the source's, on every check text.
MIN_COSINE = 0.9999
#: Texts the export is checked on: short and long, plain and odd.
CHECK_TEXTS = (
    "fuel deliveries to the northern depots",
    "Quarterly maintenance report: two generators replaced, one pump overhauled.",
    "a",
    "Les convois partent à l'aube; 第二梯队 follows at 0600Z (grid 38S MB 12345 67890).",
    " ".join(["logistics readiness assessment for the forward operating base"] * 40),
)

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_loaded: dict[tuple[str, str], EmbeddingModel] = {}


def query_export_folder(root: Path, name: str) -> Path:
    """The folder of the workspace at ``root`` that holds the query export of ``name``."""
    return root / QUERY_CACHE / name


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST_FILE
    }


def _check(folder: Path, spec: ModelSpec) -> None:
    """Raise CheckFailed unless ``folder`` is an export of ``spec``'s pinned weights whose
    files hash as its manifest records (no file missing, none added)."""
    path = folder / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckFailed(f"{path} is unreadable; the query export is not used.") from exc
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != EXPORT_FORMAT
        or manifest.get("model") != spec.name
        or manifest.get("source_sha256") != spec.sha256
        or not isinstance(manifest.get("files"), dict)
        or not manifest["files"]
    ):
        raise CheckFailed(f"{path} does not record an export of the pinned {spec.name} weights.")
    actual = _hashes(folder)
    if actual != manifest["files"]:
        bad = sorted(
            k
            for k in set(actual) | set(manifest["files"])
            if actual.get(k) != manifest["files"].get(k)
        )
        raise CheckFailed(
            f"The query export in {folder} does not match its manifest ({', '.join(bad)}); "
            "it is not used."
        )


def cached_query_model(root: Path, name: str) -> EmbeddingModel | None:
    """The verified ONNX export of ``name`` in the workspace at ``root``; None when there is
    none. Raises CheckFailed for an export that does not verify."""
    spec = MODELS.get(name)
    folder = query_export_folder(root, name)
    if spec is None or not (folder / MANIFEST_FILE).is_file():
        return None
    # Checked on every call (file hashes are cached per size and mtime, so a repeat is cheap):
    # an export altered while a server runs is refused from then on.
    _check(folder, spec)
    key = (str(folder), name)
    with _lock:
        if key in _loaded:
            return _loaded[key]
    from garrison.models._onnx import OnnxEmbeddingModel

    model = OnnxEmbeddingModel(name, folder)
    with _lock:
        return _loaded.setdefault(key, model)


def query_model(root: Path, name: str) -> EmbeddingModel:
    """The model to embed a search query with for vectors recorded as ``name``: the
    workspace's verified ONNX export when there is one (and onnxruntime is installed), else
    :func:`~garrison.models.get_model`. Never fails for want of an export."""
    try:
        model = cached_query_model(root, name)
    except CheckFailed as exc:
        _log.warning("%s Queries are embedded with sentence-transformers.", exc.message)
        model = None
    if model is not None:
        try:
            model.load()
            return model
        except GarrisonError as exc:  # onnxruntime missing
            _log.warning("The query export of %s cannot run: %s", name, exc.message)
    return get_model(name)


def _cosines(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> list[float]:
    return [float(x) for x in np.sum(a * b, axis=1)]


def prepare_query_model(root: Path, name: str) -> Path | None:
    """Export the shipped model ``name`` to ONNX for queries in the workspace at ``root``,
    unless a verified export is there already; the folder, or None for a model that is not
    shipped.

    The source weights are checked against their pinned SHA-256 first (CheckFailed), and the
    export is kept only when its vectors match the source's (CheckFailed otherwise; nothing
    is left behind). An export that fails its manifest is replaced.
    """
    spec = MODELS.get(name)
    if spec is None:
        return None
    folder = query_export_folder(root, name)
    if (folder / MANIFEST_FILE).is_file():
        try:
            _check(folder, spec)
            return folder
        except CheckFailed:
            pass  # made again below
    source = get_model(name)  # verifies the weights against the pinned hash
    from garrison.models._onnx import OnnxEmbeddingModel, export_fp32

    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    try:
        made = export_fp32(spec.path(), work / "out", max_seq_length=source.max_tokens)
        texts = list(CHECK_TEXTS)
        cosines = _cosines(OnnxEmbeddingModel(name, made).encode(texts), source.encode(texts))
        if min(cosines) < MIN_COSINE:
            raise CheckFailed(
                f"The ONNX export of {name} gives other vectors than the model itself "
                f"(least cosine {min(cosines):.6f} < {MIN_COSINE}); it is not kept."
            )
        manifest = {
            "format": EXPORT_FORMAT,
            "model": name,
            "source_sha256": spec.sha256,
            "files": _hashes(made),
            "min_cosine": round(min(cosines), 7),
        }
        (made / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(made, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with _lock:
        _loaded.pop((str(folder), name), None)
    return folder
