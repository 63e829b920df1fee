"""Key files of a workspace: created with mode 0600, read with clear errors when unusable."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from garrison.core.errors import KeyFileError
from garrison.security import crypto

__all__ = [
    "BINDING_KEY",
    "DATASET_SIGNING_KEY",
    "binding_key",
    "create_key_files",
    "dataset_signing_key",
    "read_master_key",
    "read_or_create_secret",
    "read_signing_key",
]

#: Where a workspace keeps the key that signs dataset exports, relative to its root.
DATASET_SIGNING_KEY = Path("keys") / "dataset-ed25519.pem"

#: Where a workspace keeps the HMAC key that binds records to their markings.
BINDING_KEY = Path("keys") / "binding.key"


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # O_EXCL: never overwrite an existing key; 0600 from the first byte, not chmod afterwards.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def create_key_files(audit_key: Path, master_key: Path) -> None:
    """Generate the audit signing key (Ed25519) and the blob master key (AES-256)."""
    _write_secret(audit_key, crypto.private_key_bytes(crypto.generate_signing_key()))
    _write_secret(master_key, crypto.generate_key().hex().encode("ascii") + b"\n")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(
            f"The {what} {path} is missing; restore it from the key backup."
        ) from None
    except OSError as exc:
        raise KeyFileError(
            f"The {what} {path} cannot be read ({exc.strerror}); check its owner and mode."
        ) from exc


def read_signing_key(path: Path) -> Ed25519PrivateKey:
    """Load the audit-log signing key."""
    return crypto.load_private_key(
        _read(path, "audit signing key"), source=f"the audit signing key {path}"
    )


def read_master_key(path: Path) -> bytes:
    """Load the 32-byte master key that wraps blob data keys."""
    raw = _read(path, "master key").strip()
    try:
        key = bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != 32:
        raise KeyFileError(f"The master key {path} is malformed: expected 64 hexadecimal digits.")
    return key


def read_or_create_secret(path: Path, size: int = 32) -> bytes:
    """A random secret kept in ``path`` (mode 0600), created on first use.

    Used for keys a workspace only needs once a feature is used (the pseudonymization key).
    """
    if not path.exists():
        # Another process may create it first: then use theirs.
        with contextlib.suppress(FileExistsError):
            _write_secret(path, os.urandom(size).hex().encode("ascii") + b"\n")
    raw = _read(path, "secret key").strip()
    try:
        key = bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != size:
        raise KeyFileError(f"The key file {path} is malformed: expected {2 * size} hex digits.")
    return key


def dataset_signing_key(workspace_root: Path) -> Ed25519PrivateKey:
    """The Ed25519 key that signs dataset exports, created (mode 0600) on first use.

    It lives in ``keys/dataset-ed25519.pem`` beside the audit key but is a different key, so
    its public half can be handed to the far side of an air gap without exposing the audit key.
    """
    path = workspace_root / DATASET_SIGNING_KEY
    if not path.exists():
        # Another process may create it first: then use theirs.
        with contextlib.suppress(FileExistsError):
            _write_secret(path, crypto.private_key_bytes(crypto.generate_signing_key()))
    return crypto.load_private_key(
        _read(path, "dataset signing key"), source=f"the dataset signing key {path}"
    )


def binding_key(workspace_root: Path) -> bytes:
    """The 32-byte HMAC-SHA-256 key that binds records to their markings (mode 0600).

    Made by ``garrison init``; a workspace from before bindings existed gets it on its first
    ``garrison migrate`` (or open). It is a key of its own, so handing out the audit or dataset
    public keys never helps anyone forge a binding.
    """
    return read_or_create_secret(workspace_root / BINDING_KEY, 32)
