"""Where a model version's files live, and getting them back verified.

A registered model's files are stored like originals: each as an encrypted, content-addressed
blob under its SHA-256 (a model is marked data). Using a version materializes its files into
the workspace's ``cache/models/<id>/`` (owner-only), every file checked against the hash its
manifest lists; a cached copy is re-checked on every use, so a file changed on disk is never
loaded. The shipped all-MiniLM-L6-v2 is not copied: its files are read from the installed
package, checked the same way against the manifest it was registered with.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from garrison.core.errors import CheckFailed, InvalidInput
from garrison.models.embedding import MINILM, MODELS, file_sha256
from garrison.store.session import Session

__all__ = ["CACHE_DIR", "manifest_files", "materialize", "store_files", "verify_folder"]

CACHE_DIR = Path("cache") / "models"


def manifest_files(manifest: Mapping[str, Any]) -> dict[str, str]:
    """A manifest's files as relative path -> SHA-256."""
    return {str(f["path"]): str(f["sha256"]) for f in manifest.get("files", [])}


def _safe_relative(path: str) -> Path:
    rel = Path(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise CheckFailed(f"A model manifest names an unsafe file path {path!r}.")
    return rel


def verify_folder(folder: Path, files: Mapping[str, str]) -> None:
    """Every listed file is in ``folder`` with its SHA-256, and nothing else is: CheckFailed."""
    if not folder.is_dir():
        raise CheckFailed(f"Model folder {folder} does not exist.")
    present = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    extra = sorted(present - set(files))
    if extra:
        raise CheckFailed(f"{folder} holds a file its manifest does not list: {extra[0]}.")
    for rel, digest in files.items():
        path = folder / _safe_relative(rel)
        if not path.is_file():
            raise CheckFailed(f"{path} is missing from the model's files.")
        if file_sha256(path) != digest:
            raise CheckFailed(f"{path} does not have the SHA-256 its manifest lists.")


def store_files(session: Session, folder: Path, files: Mapping[str, str]) -> None:
    """Put every file of ``folder`` (already hashed as ``files``) into the blob store."""
    blobs = session.workspace.blobs
    for rel, digest in files.items():
        if blobs.exists(digest):
            continue
        stored = blobs.put((folder / _safe_relative(rel)).read_bytes())
        if stored != digest:
            raise CheckFailed(f"{folder / rel} changed while it was being registered.")


def _shipped_folder(name: str, files: Mapping[str, str]) -> Path | None:
    """The installed package's folder when it holds exactly these files (the shipped model)."""
    if name != MINILM:
        return None
    try:
        folder = MODELS[MINILM].path()
        verify_folder(folder, files)
    except Exception:  # not the shipped files: fall back to the blob store
        return None
    return folder


def materialize(session: Session, version_id: str, name: str, manifest: Mapping[str, Any]) -> Path:
    """A folder holding exactly the version's files, each checked against its manifest hash.

    Raises :class:`CheckFailed` when a stored file is missing or does not hash as listed (the
    version is then unusable: nothing of it is loaded).
    """
    files = manifest_files(manifest)
    if not files:
        raise InvalidInput(f"Model {name} has no files to load.")
    shipped = _shipped_folder(name, files)
    if shipped is not None:
        return shipped
    cache = session.workspace.root / CACHE_DIR
    target = cache / version_id
    if target.is_dir():
        try:
            verify_folder(target, files)
            return target
        except CheckFailed:
            shutil.rmtree(target, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix=f".{version_id[:12]}-", dir=cache))
    try:
        blobs = session.workspace.blobs
        for rel, digest in files.items():
            if not blobs.exists(digest):
                raise CheckFailed(f"The stored file {rel} of model {name} is missing.")
            path = staging / _safe_relative(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blobs.get(digest))
        verify_folder(staging, files)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
