"""Content-addressed, encrypted storage of original bytes.

Each blob is stored once under its SHA-256 (``blobs/ab/cd/abcd...``), encrypted with
AES-256-GCM under its own random data key; the data key is wrapped by the workspace master key.
The content hash is bound into both as associated data, so a blob file moved to another name
fails to decrypt. On-disk layout of one blob file::

    b"GRB1" | u16 length of wrapped key | wrapped data key | nonce || ciphertext || tag

Writes go to a temporary file that is fsynced and renamed, so a crash never leaves a partial
blob under a real name.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from pathlib import Path
from typing import Protocol

from garrison.core.errors import CheckFailed, EnvironmentProblem, NotFound, disk_full
from garrison.security import crypto

__all__ = ["BlobStore", "LocalBlobStore"]

_MAGIC = b"GRB1"


class BlobStore(Protocol):
    """Where original bytes live; local files by default, object storage later."""

    def put(self, data: bytes) -> str: ...
    def get(self, sha256: str) -> bytes: ...
    def exists(self, sha256: str) -> bool: ...
    def delete(self, sha256: str) -> bool: ...


def _check_id(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise NotFound(f"No blob with id {sha256[:80]!r}.")
    return sha256


class LocalBlobStore:
    """Blobs as encrypted files under a directory of the workspace."""

    def __init__(self, root: Path, master_key: bytes) -> None:
        self.root = Path(root)
        self._master = master_key

    def path(self, sha256: str) -> Path:
        _check_id(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent: the same bytes are stored once); return its SHA-256."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.is_file():
            return digest
        aad = digest.encode("ascii")
        data_key = crypto.generate_key()
        wrapped = crypto.wrap_key(self._master, data_key, aad)
        payload = (
            _MAGIC + struct.pack(">H", len(wrapped)) + wrapped + crypto.seal(data_key, data, aad)
        )
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(payload)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            full = disk_full(exc, f"the blob store ({self.root})")
            if full is not None:
                raise full from exc
            raise EnvironmentProblem(
                f"The blob store at {self.root} cannot be written ({exc.strerror})."
            ) from exc
        return digest

    def get(self, sha256: str) -> bytes:
        """The original bytes; raises NotFound, or CheckFailed when the blob was tampered with."""
        try:
            raw = self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"No blob with id {sha256}.") from None
        if raw[:4] != _MAGIC or len(raw) < 6:
            raise CheckFailed(f"Blob {sha256} is not a Garrison blob file; it is corrupt.")
        (n,) = struct.unpack(">H", raw[4:6])
        aad = sha256.encode("ascii")
        data_key = crypto.unwrap_key(self._master, raw[6 : 6 + n], aad)
        data = crypto.open_sealed(data_key, raw[6 + n :], aad)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise CheckFailed(f"Blob {sha256} does not hash to its name; it is corrupt.")
        return data

    def delete(self, sha256: str) -> bool:
        """Remove a blob; True when it existed."""
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True
