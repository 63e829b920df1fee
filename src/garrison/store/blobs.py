"""Content-addressed, encrypted storage of original bytes.

Each blob is stored once under its SHA-256 (``blobs/ab/cd/abcd...``), encrypted with
AES-256-GCM under its own random data key; the data key is wrapped by the workspace master key.
The content hash is bound into both as associated data, so a blob file moved to another name
fails to decrypt. On-disk layout of one blob file::

    b"GRB1" | u16 length of wrapped key | wrapped data key | nonce || ciphertext || tag

Writes go to a temporary file that is fsynced and renamed, so a crash never leaves a partial
blob under a real name. :meth:`LocalBlobStore.put_many` writes many blobs at once and fsyncs
them together, from a few threads: the file system commits its journal once for all of them
instead of once a file, which is most of what storing a small original costs.

:class:`S3BlobStore` keeps the same sealed payloads as objects (``PREFIX/ab/cd/abcd...``) in an
S3-compatible bucket: sealing and checking happen in this process, so the object store only
ever holds ciphertext. An object is written whole by one PUT, so no partial blob appears either.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from garrison.core.errors import CheckFailed, EnvironmentProblem, NotFound, disk_full
from garrison.security import crypto

if TYPE_CHECKING:
    from garrison.store.object_store import S3Connection, S3Location

__all__ = ["BlobStore", "LocalBlobStore", "S3BlobStore"]

_MAGIC = b"GRB1"
#: Threads that fsync the files of one :meth:`LocalBlobStore.put_many` together.
_SYNC_THREADS = 8


class BlobStore(Protocol):
    """Where original bytes live; local files by default, object storage later."""

    def put(self, data: bytes) -> str: ...
    def put_many(self, datas: Sequence[bytes]) -> list[str]: ...
    def get(self, sha256: str) -> bytes: ...
    def exists(self, sha256: str) -> bool: ...
    def delete(self, sha256: str) -> bool: ...


def _check_id(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise NotFound(f"No blob with id {sha256[:80]!r}.")
    return sha256


def _relative(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def _seal(master: bytes, digest: str, data: bytes) -> bytes:
    """The stored form of ``data``, whose SHA-256 is ``digest``."""
    aad = digest.encode("ascii")
    data_key = crypto.generate_key()
    wrapped = crypto.wrap_key(master, data_key, aad)
    return _MAGIC + struct.pack(">H", len(wrapped)) + wrapped + crypto.seal(data_key, data, aad)


def _unseal(master: bytes, sha256: str, raw: bytes) -> bytes:
    """The original bytes of a stored blob; CheckFailed when it was tampered with."""
    if raw[:4] != _MAGIC or len(raw) < 6:
        raise CheckFailed(f"Blob {sha256} is not a Garrison blob file; it is corrupt.")
    (n,) = struct.unpack(">H", raw[4:6])
    aad = sha256.encode("ascii")
    data_key = crypto.unwrap_key(master, raw[6 : 6 + n], aad)
    data = crypto.open_sealed(data_key, raw[6 + n :], aad)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise CheckFailed(f"Blob {sha256} does not hash to its name; it is corrupt.")
    return data


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_all(paths: Sequence[str]) -> None:
    """fsync every file; several at a time, so that one journal commit serves many files."""
    if len(paths) == 1:
        _fsync(paths[0])
        return
    with ThreadPoolExecutor(min(_SYNC_THREADS, len(paths))) as pool:
        # list() re-raises the first failure, after every fsync has run.
        list(pool.map(_fsync, paths))


class LocalBlobStore:
    """Blobs as encrypted files under a directory of the workspace."""

    def __init__(self, root: Path, master_key: bytes) -> None:
        self.root = Path(root)
        self._master = master_key

    def path(self, sha256: str) -> Path:
        _check_id(sha256)
        return self.root / _relative(sha256)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent: the same bytes are stored once); return its SHA-256."""
        return self.put_many([data])[0]

    def put_many(self, datas: Sequence[bytes]) -> list[str]:
        """Store each of ``datas`` as :meth:`put` does; return their SHA-256s, in order.

        Every blob is durable under its name when this returns: all are written to temporary
        files, fsynced together, then renamed. On an error, none of the temporary files stays
        (blobs already renamed stay: each is whole, and storing the same bytes is idempotent).
        """
        digests = [hashlib.sha256(data).hexdigest() for data in datas]
        todo: dict[str, bytes] = {}
        for digest, data in zip(digests, datas, strict=True):
            if digest not in todo and not self.path(digest).is_file():
                todo[digest] = data
        if not todo:
            return digests
        written: list[tuple[str, Path]] = []
        try:
            try:
                for digest, data in todo.items():
                    target = self.path(digest)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
                    written.append((tmp, target))
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(_seal(self._master, digest, data))
                _fsync_all([tmp for tmp, _ in written])
                while written:
                    tmp, target = written[0]
                    os.replace(tmp, target)
                    written.pop(0)
            finally:
                for tmp, _ in written:
                    Path(tmp).unlink(missing_ok=True)
        except OSError as exc:
            full = disk_full(exc, f"the blob store ({self.root})")
            if full is not None:
                raise full from exc
            raise EnvironmentProblem(
                f"The blob store at {self.root} cannot be written ({exc.strerror})."
            ) from exc
        return digests

    def get(self, sha256: str) -> bytes:
        """The original bytes; raises NotFound, or CheckFailed when the blob was tampered with."""
        try:
            raw = self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"No blob with id {sha256}.") from None
        return _unseal(self._master, sha256, raw)

    def delete(self, sha256: str) -> bool:
        """Remove a blob; True when it existed."""
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True


class S3BlobStore:
    """Blobs as sealed objects under a key prefix of an S3-compatible bucket."""

    def __init__(self, connection: S3Connection, location: S3Location, master_key: bytes):
        self.connection = connection
        self.location = location
        self._master = master_key
        self._client: object | None = None

    def _s3(self) -> Any:
        if self._client is None:
            self._client = self.connection.client()
        return self._client

    def key(self, sha256: str) -> str:
        """The object key of a blob."""
        return self.location.key(_relative(_check_id(sha256)))

    def _fail(self, exc: Exception, what: str) -> EnvironmentProblem:
        from garrison.store.object_store import translate

        return translate(exc, self.connection, what)

    def exists(self, sha256: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3().head_object(Bucket=self.location.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._fail(exc, f"look up blob {sha256}") from exc
        except BotoCoreError as exc:
            raise self._fail(exc, f"look up blob {sha256}") from exc
        return True

    def put(self, data: bytes) -> str:
        """Store ``data`` sealed (idempotent: the same bytes are stored once); its SHA-256."""
        from botocore.exceptions import BotoCoreError, ClientError

        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest
        payload = _seal(self._master, digest, data)
        try:
            self._s3().put_object(
                Bucket=self.location.bucket,
                Key=self.key(digest),
                Body=payload,
                ContentType="application/octet-stream",
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, f"write blob {digest}") from exc
        return digest

    def put_many(self, datas: Sequence[bytes]) -> list[str]:
        """Store each of ``datas`` (one PUT each: an object is durable once its PUT returns)."""
        return [self.put(data) for data in datas]

    def get(self, sha256: str) -> bytes:
        """The original bytes; raises NotFound, or CheckFailed when the object was tampered
        with."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._s3().get_object(Bucket=self.location.bucket, Key=self.key(sha256))
            raw = answer["Body"].read()
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey"):
                raise NotFound(f"No blob with id {sha256}.") from None
            raise self._fail(exc, f"read blob {sha256}") from exc
        except BotoCoreError as exc:
            raise self._fail(exc, f"read blob {sha256}") from exc
        return _unseal(self._master, sha256, bytes(raw))

    def delete(self, sha256: str) -> bool:
        """Remove a blob; True when it existed."""
        from botocore.exceptions import BotoCoreError, ClientError

        if not self.exists(sha256):
            return False
        try:
            self._s3().delete_object(Bucket=self.location.bucket, Key=self.key(sha256))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, f"delete blob {sha256}") from exc
        return True
