"""Ed25519 and AES-256-GCM helpers."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.core.errors import CheckFailed, KeyFileError
from garrison.security import crypto

# RFC 8032 section 7.1, TEST 1: secret key, public key, and signature of the empty message.
RFC8032_SECRET = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8032_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_SIG = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_rfc8032_vector() -> None:
    key = crypto.load_private_key(bytes.fromhex(RFC8032_SECRET))
    pub = key.public_key()
    assert crypto.public_key_bytes(pub).hex() == RFC8032_PUBLIC
    assert crypto.sign(key, b"").hex() == RFC8032_SIG
    assert crypto.fingerprint(pub) == hashlib.sha256(bytes.fromhex(RFC8032_PUBLIC)).hexdigest()


@pytest.mark.parametrize("encoding", ["pem", "raw"])
def test_private_key_round_trip(encoding: str) -> None:
    key = crypto.generate_signing_key()
    data = crypto.private_key_bytes(key, encoding=encoding)  # type: ignore[arg-type]
    assert data.startswith(b"-----BEGIN PRIVATE KEY-----") == (encoding == "pem")
    loaded = crypto.load_private_key(data)
    assert crypto.fingerprint(loaded.public_key()) == crypto.fingerprint(key.public_key())


def test_sign_and_verify() -> None:
    key = crypto.generate_signing_key()
    sig = crypto.sign(key, b"payload")
    assert len(sig) == 64
    assert crypto.verify_signature(key.public_key(), b"payload", sig)
    assert not crypto.verify_signature(key.public_key(), b"payloaD", sig)
    other = crypto.generate_signing_key().public_key()
    assert not crypto.verify_signature(other, b"payload", sig)


def test_public_key_round_trip() -> None:
    pub = crypto.generate_signing_key().public_key()
    pem = pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for data in (pem, crypto.public_key_bytes(pub)):
        assert crypto.fingerprint(crypto.load_public_key(data)) == crypto.fingerprint(pub)
    with pytest.raises(KeyFileError, match="not a valid Ed25519 public key"):
        crypto.load_public_key(b"nonsense")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"not a key at all", "does not hold a valid Ed25519 private key"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "does not hold"),
        (b"\x00" * 31, "does not hold"),
    ],
)
def test_bad_private_key_data_is_one_clear_sentence(data: bytes, message: str) -> None:
    with pytest.raises(KeyFileError, match=message) as info:
        crypto.load_private_key(data, source="keys/audit.key")
    text = str(info.value)
    assert text.startswith("The key file keys/audit.key ")
    assert text.endswith(".")
    assert text.count(". ") == 0
    assert info.value.exit_code == 5
    with pytest.raises(KeyFileError, match=r"^The audit signing key k\.pem is empty"):
        crypto.load_private_key(b"", source="the audit signing key k.pem")


def test_encrypted_or_foreign_private_keys_are_refused() -> None:
    key = Ed25519PrivateKey.generate()
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(KeyFileError, match="passphrase-protected"):
        crypto.load_private_key(encrypted)
    ec = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeyFileError, match="not Ed25519"):
        crypto.load_private_key(ec)


@settings(deadline=None, max_examples=30)
@given(st.binary(max_size=2000), st.binary(max_size=64))
def test_seal_round_trip(plaintext: bytes, aad: bytes) -> None:
    key = crypto.generate_key()
    blob = crypto.seal(key, plaintext, aad)
    assert len(blob) == crypto.NONCE_SIZE + len(plaintext) + 16
    assert crypto.open_sealed(key, blob, aad) == plaintext


def test_seal_uses_fresh_nonces() -> None:
    key = crypto.generate_key()
    assert crypto.seal(key, b"same", b"") != crypto.seal(key, b"same", b"")
    assert len(crypto.generate_key()) == crypto.KEY_SIZE == 32


def test_open_sealed_refuses_tampering() -> None:
    key = crypto.generate_key()
    blob = crypto.seal(key, b"secret bytes", b"blob:abc")
    flipped = blob[:-1] + bytes([blob[-1] ^ 1])
    for bad_key, bad_blob, aad in [
        (key, flipped, b"blob:abc"),
        (key, blob, b"blob:abd"),
        (crypto.generate_key(), blob, b"blob:abc"),
        (key, blob[:20], b"blob:abc"),
    ]:
        with pytest.raises(CheckFailed) as info:
            crypto.open_sealed(bad_key, bad_blob, aad)
        assert info.value.exit_code == 1


def test_wrong_key_length_is_a_key_error() -> None:
    with pytest.raises(KeyFileError, match="32 bytes"):
        crypto.seal(b"short", b"x")


def test_key_wrapping() -> None:
    master, data_key = crypto.generate_key(), crypto.generate_key()
    wrapped = crypto.wrap_key(master, data_key, b"blob:abc")
    assert data_key not in wrapped
    assert crypto.unwrap_key(master, wrapped, b"blob:abc") == data_key
    with pytest.raises(CheckFailed, match="wrapped data key"):
        crypto.unwrap_key(master, wrapped, b"blob:xyz")
    with pytest.raises(CheckFailed, match="wrapped data key"):
        crypto.unwrap_key(crypto.generate_key(), wrapped, b"blob:abc")
    # A wrapped key is not a sealed blob: domain separation keeps the two apart.
    with pytest.raises(CheckFailed):
        crypto.open_sealed(master, wrapped, b"blob:abc")
