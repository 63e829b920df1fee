"""Signed directories: checksums of every file and an Ed25519 signature, and checking them.

Dataset exports (:mod:`garrison.datasets.export`) and model bundles (:mod:`garrison.models`)
are directories carried across an air gap. Both list every file they hold in ``SHA256SUMS``
(``<hex>  <path>``, sorted by path) and sign it with the workspace's export-signing key
(:func:`garrison.store.keys.dataset_signing_key`, whose public half ``garrison key export``
writes); the far side checks the signature with that public key and every file against the
list, and refuses a file missing from it or added to it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterator
from pathlib import Path, PurePosixPath

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from garrison.core.errors import InvalidInput, KeyFileError
from garrison.security import crypto
from garrison.store.keys import dataset_signing_key

__all__ = [
    "SHA256SUMS",
    "SIGNATURE_ALGORITHM",
    "check_new_directory",
    "check_sums",
    "file_sha256",
    "load_trusted_key",
    "regular_files",
    "sha256sums",
    "signing_key",
]

SHA256SUMS = "SHA256SUMS"
SIGNATURE_ALGORITHM = "ed25519"
_LINE = re.compile(r"^([0-9a-f]{64})  (.+)$")


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def regular_files(root: Path) -> Iterator[str]:
    """Every regular file under ``root``, as a relative POSIX path (in no particular order)."""
    for path in root.rglob("*"):
        if path.is_file():
            yield path.relative_to(root).as_posix()


def sha256sums(root: Path, unsummed: Collection[str]) -> str:
    """The text of ``SHA256SUMS`` for every file under ``root`` but ``unsummed``, by path."""
    names = sorted(n for n in regular_files(root) if n not in unsummed)
    return "".join(f"{file_sha256(root / name)}  {name}\n" for name in names)


def signing_key(workspace_root: Path) -> tuple[Ed25519PrivateKey, str]:
    """The workspace's export-signing key (created on first use) and its key id."""
    key = dataset_signing_key(workspace_root)
    return key, crypto.fingerprint(key.public_key())


def load_trusted_key(path: Path) -> Ed25519PublicKey:
    """A trusted Ed25519 public key from a file (PEM or 32 raw bytes); KeyFileError otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"The trusted key {path} cannot be read ({exc.strerror}).") from exc
    return crypto.load_public_key(data, source=str(path))


def check_new_directory(out: Path) -> None:
    """``out`` may be written: it does not exist or is an empty directory; InvalidInput else."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InvalidInput(f"{out} exists and is not a directory; choose a new or empty one.")
    if out.is_dir() and any(out.iterdir()):
        raise InvalidInput(f"The output directory {out} is not empty; choose a new or empty one.")


def check_sums(root: Path, unsummed: Collection[str]) -> tuple[str, str] | None:
    """(problem, bad file) for the first wrong file in path order; None when all match.

    Every file ``SHA256SUMS`` lists must be present, a regular file, with the listed SHA-256,
    and every file present (but ``unsummed``, the files that cannot list themselves) must be
    listed.
    """
    try:
        text = (root / SHA256SUMS).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return f"{SHA256SUMS} is missing or unreadable.", SHA256SUMS
    listed: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _LINE.match(line)
        if match is None:
            return f"Line {number} of {SHA256SUMS} is malformed.", SHA256SUMS
        digest, name = match.groups()
        pure = PurePosixPath(name)
        if pure.is_absolute() or ".." in pure.parts or name in unsummed or name in listed:
            return f"{SHA256SUMS} lists an invalid or repeated path {name!r}.", SHA256SUMS
        listed[name] = digest
    present: set[str] = set()
    for item in root.rglob("*"):
        if item.is_dir() and not item.is_symlink():
            continue
        name = item.relative_to(root).as_posix()
        if name not in unsummed:
            present.add(name)
    for name in sorted(set(listed) | present):
        if name not in present:
            return f"{name} is listed in {SHA256SUMS} but missing.", name
        if name not in listed:
            return f"{name} is not listed in {SHA256SUMS}: it was added after the export.", name
        item = root / name
        if item.is_symlink() or not item.is_file():
            return f"{name} is not a regular file.", name
        if file_sha256(item) != listed[name]:
            return f"{name} does not match its checksum: it was modified.", name
    return None
