"""Ed25519 signatures and AES-256-GCM sealing over ``cryptography``; pure, no file I/O.

- Ed25519 signs audit events and checkpoints. Private keys serialize as PEM PKCS#8 (what the
  workspace ``keys/`` folder holds) or as the raw 32-byte seed; :func:`load_private_key` accepts
  either and turns anything else into one :class:`~garrison.core.errors.KeyFileError` sentence.
- AES-256-GCM seals blobs: ``seal`` returns ``nonce || ciphertext+tag`` with a fresh random
  96-bit nonce, and ``open_sealed`` refuses anything whose tag or associated data does not match.
  Each blob gets its own data key, wrapped by the workspace master key (:func:`wrap_key`), so the
  master key never encrypts bulk data and a blob's key can be re-wrapped without re-encrypting it.
"""

from __future__ import annotations

import hashlib
import os
from typing import Literal

from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from garrison.core.errors import CheckFailed, KeyFileError

__all__ = [
    "KEY_SIZE",
    "NONCE_SIZE",
    "fingerprint",
    "generate_key",
    "generate_signing_key",
    "load_private_key",
    "load_public_key",
    "open_sealed",
    "private_key_bytes",
    "public_key_bytes",
    "seal",
    "sign",
    "unwrap_key",
    "verify_signature",
    "wrap_key",
]

#: AES-256 key length in bytes.
KEY_SIZE = 32
#: AES-GCM nonce length in bytes (96 bits, the size GCM is designed for).
NONCE_SIZE = 12
_TAG_SIZE = 16
_ED25519_RAW_SIZE = 32
# Domain separation for wrapped data keys, so a wrapped key can never be confused with a sealed
# blob even when both use the same master key and the caller passes the same aad.
_WRAP_PREFIX = b"garrison-wrapped-data-key-v1\n"


# --- Ed25519 -------------------------------------------------------------------------------


def generate_signing_key() -> Ed25519PrivateKey:
    """Generate a new Ed25519 key pair; the public half is ``key.public_key()``."""
    return Ed25519PrivateKey.generate()


def private_key_bytes(key: Ed25519PrivateKey, *, encoding: Literal["pem", "raw"] = "pem") -> bytes:
    """Serialize a private key, unencrypted: PEM PKCS#8 (default) or the raw 32-byte seed.

    The key file's protection is its 0600 permissions on the air-gapped host, not a passphrase.
    """
    if encoding == "raw":
        return key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(data: bytes, *, source: str | None = None) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from PEM PKCS#8 or raw 32-byte data.

    ``source`` names the data's origin in error messages: a path (``keys/audit.key``) or a
    phrase starting with "the" (``the audit signing key keys/audit.key``). Raises
    ``KeyFileError`` when the data is empty, malformed, passphrase-protected or not Ed25519.
    """
    subject = _subject(source, "The key file", "The key data")
    if not data:
        raise KeyFileError(f"{subject} is empty; it should hold an Ed25519 private key.")
    if len(data) == _ED25519_RAW_SIZE and not data.startswith(b"-----"):
        return Ed25519PrivateKey.from_private_bytes(data)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        # cryptography raises TypeError when the PEM is encrypted and no password was given.
        raise KeyFileError(
            f"{subject} holds a passphrase-protected key; Garrison needs an unencrypted "
            "Ed25519 key protected by file permissions."
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(
            f"{subject} does not hold a valid Ed25519 private key (PEM PKCS#8 or 32 raw bytes)."
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{subject} holds a key that is not Ed25519.")
    return key


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    """Return the raw 32-byte encoding of a public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_public_key(data: bytes, *, source: str | None = None) -> Ed25519PublicKey:
    """Load an Ed25519 public key from raw 32 bytes or PEM SubjectPublicKeyInfo.

    Raises ``KeyFileError`` when the data is not an Ed25519 public key.
    """
    subject = _subject(source, "The public key file", "The public key data")
    try:
        if len(data) == _ED25519_RAW_SIZE and not data.startswith(b"-----"):
            return Ed25519PublicKey.from_public_bytes(data)
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(
            f"{subject} is not a valid Ed25519 public key (PEM or 32 raw bytes)."
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{subject} is a public key that is not Ed25519.")
    return key


def fingerprint(key: Ed25519PublicKey) -> str:
    """Return the key id: SHA-256 of the raw public key, as 64 lowercase hex characters."""
    return hashlib.sha256(public_key_bytes(key)).hexdigest()


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    """Return the 64-byte Ed25519 signature of ``data``."""
    return key.sign(data)


def verify_signature(key: Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    """Return whether ``signature`` is a valid Ed25519 signature of ``data`` by ``key``."""
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


# --- AES-256-GCM ---------------------------------------------------------------------------


def generate_key() -> bytes:
    """Return a fresh random 32-byte AES-256 key."""
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Encrypt and authenticate ``plaintext``; return ``nonce (12 bytes) || ciphertext || tag``.

    ``aad`` (associated data, e.g. the blob's content hash) is authenticated but not stored:
    the same ``aad`` must be given to :func:`open_sealed`. Random nonces are safe here because
    each key seals few messages (one data key per blob).
    """
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(_check_key(key)).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    """Decrypt a :func:`seal` output; raise ``CheckFailed`` if it was altered or keys/aad differ."""
    aesgcm = AESGCM(_check_key(key))
    if len(blob) < NONCE_SIZE + _TAG_SIZE:
        raise CheckFailed("The sealed data is too short to be valid; it is truncated or corrupt.")
    try:
        return aesgcm.decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
    except InvalidTag as exc:
        raise CheckFailed(
            "The sealed data failed its integrity check: it was altered, or the key or "
            "associated data is wrong."
        ) from exc


def wrap_key(master_key: bytes, data_key: bytes, aad: bytes = b"") -> bytes:
    """Wrap (encrypt) a 32-byte data key under the master key, bound to ``aad``."""
    return seal(master_key, _check_key(data_key), _WRAP_PREFIX + aad)


def unwrap_key(master_key: bytes, wrapped: bytes, aad: bytes = b"") -> bytes:
    """Unwrap a :func:`wrap_key` output; raise ``CheckFailed`` if it does not authenticate."""
    try:
        data_key = open_sealed(master_key, wrapped, _WRAP_PREFIX + aad)
    except CheckFailed as exc:
        raise CheckFailed(
            "The wrapped data key failed its integrity check: it was altered, or the master "
            "key or associated data is wrong."
        ) from exc
    return _check_key(data_key)


def _check_key(key: bytes) -> bytes:
    if len(key) != KEY_SIZE:
        raise KeyFileError(f"An AES-256 key must be {KEY_SIZE} bytes long, not {len(key)}.")
    return key


def _subject(source: str | None, kind: str, unnamed: str) -> str:
    """The subject of a key error sentence: a phrase as given, or a path after ``kind``."""
    if not source:
        return unnamed
    if source.startswith("the "):
        return "T" + source[1:]
    return f"{kind} {source}"
