"""Verifying a dataset export on the far side of an air gap: no workspace, only the files.

Checks, in order: every file listed in ``SHA256SUMS`` is present with the listed SHA-256 and
no file is present that it does not list (``SHA256SUMS`` and ``manifest.sig`` aside); then, when
a trusted public key is given, that ``manifest.sig`` was made by that key and signs both
``manifest.json`` and ``SHA256SUMS``. Without a trusted key only the checksums are checked,
which detects accidents but not a deliberate change that also rewrote ``SHA256SUMS``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.core.errors import InvalidInput
from garrison.datasets.signing import check_sums, load_trusted_key
from garrison.security import crypto

__all__ = ["VerifyResult", "verify_export"]

_SUMS = "SHA256SUMS"
_SIG = "manifest.sig"
_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_export`; ``problem`` is one sentence when ``ok`` is false."""

    ok: bool
    problem: str | None = None
    #: The first file found wrong (relative path), when one is to blame.
    bad_file: str | None = None
    signature_checked: bool = False
    #: Key id named by ``manifest.sig`` (checked against the trusted key when one was given).
    key_id: str | None = None
    #: Something the caller should know even when ``ok`` (e.g. the signature was not checked).
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problem": self.problem,
            "bad_file": self.bad_file,
            "signature_checked": self.signature_checked,
            "key_id": self.key_id,
            "note": self.note,
        }


def verify_export(path: Path, trusted_key: Path | None = None) -> VerifyResult:
    """Check an export's checksums, and its signature against ``trusted_key`` when given.

    ``trusted_key`` is an Ed25519 public key file, PEM or 32 raw bytes. Raises InvalidInput when
    ``path`` is not a directory and KeyFileError when the trusted key cannot be loaded; every
    problem with the export itself is reported in the result, never raised.
    """
    root = Path(path)
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a directory; give the folder a dataset export made.")
    public = None if trusted_key is None else load_trusted_key(trusted_key)

    sig = _read_signature(root)
    key_id = sig.get("key_id") if isinstance(sig, dict) else None
    key_id = key_id if isinstance(key_id, str) else None

    failed = check_sums(root, (_SUMS, _SIG))
    if failed is not None:
        problem, bad = failed
        return VerifyResult(False, problem, bad, False, key_id)

    if public is None:
        return VerifyResult(
            True,
            key_id=key_id,
            note="Checksums match; the signature was not checked (no trusted key given), so "
            "a deliberate change that also rewrote SHA256SUMS would go unnoticed.",
        )
    if not isinstance(sig, dict):
        return VerifyResult(
            False, f"{_SIG} is missing or unreadable; the export is not signed.", _SIG, True, key_id
        )
    trusted_id = crypto.fingerprint(public)
    if key_id != trusted_id:
        return VerifyResult(
            False,
            f"The export was signed by key {key_id}, not by the trusted key {trusted_id}.",
            _SIG,
            True,
            key_id,
        )
    if sig.get("algorithm") != "ed25519":
        return VerifyResult(
            False,
            f"{_SIG} names an unknown algorithm {sig.get('algorithm')!r}.",
            _SIG,
            True,
            key_id,
        )
    for signed, field in ((_MANIFEST, "signature"), (_SUMS, "sha256sums_signature")):
        try:
            signature = bytes.fromhex(str(sig.get(field, "")))
            content = (root / signed).read_bytes()
        except (ValueError, OSError):
            return VerifyResult(False, f"{_SIG} or {signed} is unreadable.", signed, True, key_id)
        if not crypto.verify_signature(public, content, signature):
            return VerifyResult(
                False,
                f"The signature over {signed} does not verify: the file was altered after signing.",
                signed,
                True,
                key_id,
            )
    return VerifyResult(True, signature_checked=True, key_id=key_id)


def _read_signature(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((root / _SIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
