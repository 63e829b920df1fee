"""Model bundles: a model version carried across an air gap, signed, and taken in verified.

:func:`export_model` writes one new directory::

    BANNER.txt        the version's marking banner
    manifest.json     {"id": ..., "manifest": {...}, "bundle": {...}}: the exact manifest whose
                      SHA-256 (of its canonical JSON) is the version id, and the bundle header:
                      format, id, name, kind, version, marking, lineage, card, created_by/at,
                      exported_by/at, the exporting workspace's id, the signing key's id
    weights/...       the version's files as its manifest lists them (for an ONNX version, the
                      ONNX graph and its tokenizer files)
    card.md, card.html, card.json   the model card (:mod:`garrison.models._card`)
    SHA256SUMS        ``<hex>  <path>`` for every file above, sorted by path
    SHA256SUMS.sig    JSON: ``algorithm`` (ed25519), ``key_id``, ``version_id``, ``signature``
                      (hex Ed25519 signature of SHA256SUMS' bytes)

It is signed with the workspace's export-signing key, the key dataset exports are signed with
(``garrison key export`` writes its public half). Exports are all or nothing: written into a
hidden directory beside the target and renamed into place.

:func:`import_model` takes a bundle in only when everything holds: the signature verifies with
the trusted public key given; every file is listed in SHA256SUMS with its hash and none is
missing or added; the manifest hashes to the bundle's id, is a well-formed model manifest and
lists exactly the files under ``weights/``; the header agrees with the manifest. A bundle
marked above the workspace's system high is a spill: nothing of it is kept or registered, the
refusal is audited as ``ingest.spill`` (with where the bundle lies and its size, never its
marking) and as a denied ``model.import``. Otherwise the version is registered with the same id,
marking, lineage and card; a base model absent from the workspace stays named by id.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.core.clock import utc_now
from garrison.core.errors import CheckFailed, InvalidInput, MarkingError, NotFound, NotPermitted
from garrison.datasets.signing import (
    SHA256SUMS,
    SIGNATURE_ALGORITHM,
    check_new_directory,
    check_sums,
    file_sha256,
    load_trusted_key,
    regular_files,
    sha256sums,
    signing_key,
)
from garrison.models._card import base_present, card_data, render_html, render_json
from garrison.models._card import render_markdown as render_card_markdown
from garrison.models._files import manifest_files, store_files, verify_folder
from garrison.models._registry import Models, ModelVersion, manifest_id, model_manifest
from garrison.security import crypto
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, dominates, system_high_dominates
from garrison.security.policy import Action, can_export
from garrison.store.datasets import version_marking, version_rows
from garrison.store.model_registry import add_model_version, model_marking, model_rows
from garrison.store.session import Session

__all__ = [
    "BUNDLE_FORMAT",
    "ExportedModel",
    "ImportedModel",
    "export_model",
    "import_model",
]

BUNDLE_FORMAT = 1
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "SHA256SUMS.sig"
BANNER_FILE = "BANNER.txt"
WEIGHTS_DIR = "weights"
CARD_FILES = ("card.html", "card.json", "card.md")
#: The files SHA256SUMS cannot list: itself and its signature.
UNSUMMED = (SHA256SUMS, SIGNATURE_FILE)
#: Every file of a bundle outside ``weights/``.
TOP_FILES = frozenset({BANNER_FILE, MANIFEST_FILE, *CARD_FILES, *UNSUMMED})
_FULL_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ExportedModel:
    """What :func:`export_model` wrote."""

    version_id: str
    name: str
    path: Path
    marking: str
    #: Every file of the bundle, relative to ``path``, sorted.
    files: list[str]
    key_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.version_id,
            "name": self.name,
            "path": str(self.path),
            "marking": self.marking,
            "files": self.files,
            "key_id": self.key_id,
        }


@dataclass(frozen=True)
class ImportedModel:
    """What :func:`import_model` registered."""

    version: ModelVersion
    #: The version was registered here already (nothing new was written).
    already_present: bool
    key_id: str
    #: The id of the workspace that exported the bundle.
    source_workspace: str
    #: Whether the base model is in this workspace (None: the version has no base).
    base_present: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.version.to_dict(manifest=False),
            "already_present": self.already_present,
            "key_id": self.key_id,
            "source_workspace": self.source_workspace,
            "base_present": self.base_present,
        }


# -- export ---------------------------------------------------------------------------------------


def export_model(session: Session, ref: str, out_dir: Path) -> ExportedModel:
    """Write model version ``ref`` as a signed bundle into the new directory ``out_dir``.

    Stewards and evaluators; audited as ``model.export``. Raises, writing nothing: NotPermitted
    for another role or a subject whose access to the marking comes only through DISPLAY ONLY;
    NotFound for a version that does not exist or that the subject may not read; InvalidInput
    when ``out_dir`` exists and is not an empty directory; CheckFailed when a stored file no
    longer matches the manifest.
    """
    session.require(Action.MODEL_MANAGE, AuditAction.MODEL_EXPORT, object_id=ref[:128])
    models = Models(session)
    try:
        version = models.resolve(ref)
    except NotFound:
        session.audit(
            AuditAction.MODEL_EXPORT,
            object_id=ref[:128],
            decision="deny",
            reason="no such model version or not readable",
        )
        raise
    banner = version.marking.banner()
    high = session.workspace.system_high
    decision = can_export(session.subject, version.marking, system_high=high)
    if not decision:
        session.audit(
            AuditAction.MODEL_EXPORT,
            object_id=version.id,
            object_marking=banner,
            decision="deny",
            reason=decision.reason,
        )
        raise NotPermitted(
            f"{session.subject.name} may not export {version.ref}: their access to it comes "
            "only through DISPLAY ONLY, which allows viewing, never export."
        )
    out = Path(out_dir)
    check_new_directory(out)
    source = models.folder(version) if manifest_files(version.manifest) else None

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        key, key_id = signing_key(session.workspace.root)
        _write_bundle(session, tmp, version, source, key, key_id)
        files = sorted(regular_files(tmp))
        if out.exists():
            out.rmdir()  # empty, checked above; rmdir refuses anything else
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    try:
        session.audit(
            AuditAction.MODEL_EXPORT,
            object_id=version.id,
            object_marking=banner,
            details={"name": version.name, "out": str(out), "key_id": key_id, "files": len(files)},
        )
    except BaseException:
        # Fail closed: a bundle the audit log does not know about must not remain.
        shutil.rmtree(out, ignore_errors=True)
        raise
    return ExportedModel(version.id, version.name, out, banner, files, key_id)


def _write_bundle(
    session: Session,
    tmp: Path,
    version: ModelVersion,
    source: Path | None,
    key: Any,
    key_id: str,
) -> None:
    banner = version.marking.banner()
    weights = tmp / WEIGHTS_DIR
    weights.mkdir()
    sizes: dict[str, int] = {}
    for rel, digest in manifest_files(version.manifest).items():
        assert source is not None  # a version with files has a folder
        target = weights / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, target)
        if file_sha256(target) != digest:
            raise CheckFailed(f"The file {rel} of {version.ref} changed while it was exported.")
        sizes[rel] = target.stat().st_size
    (tmp / BANNER_FILE).write_text(banner + "\n", encoding="utf-8")
    exported_at = utc_now().isoformat()
    header = {
        "format": BUNDLE_FORMAT,
        "id": version.id,
        "name": version.name,
        "kind": version.kind,
        "version": version.version,
        "marking": banner,
        "lineage": version.lineage,
        "card": version.card,
        "created_by": version.created_by,
        "created_at": version.created_at,
        "exported_by": session.subject.name,
        "exported_at": exported_at,
        "workspace_id": session.workspace.config.workspace_id,
        "key_id": key_id,
    }
    document = {"id": version.id, "manifest": version.manifest, "bundle": header}
    (tmp / MANIFEST_FILE).write_text(
        json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    files = sorted({*regular_files(tmp), *CARD_FILES, *UNSUMMED})
    card = card_data(
        session,
        version,
        sizes=sizes,
        export={
            "files": files,
            "signed": True,
            "key_id": key_id,
            "workspace_id": header["workspace_id"],
            "exported_by": header["exported_by"],
            "exported_at": exported_at,
        },
    )
    (tmp / "card.md").write_text(render_card_markdown(card), encoding="utf-8")
    (tmp / "card.html").write_text(render_html(card), encoding="utf-8")
    (tmp / "card.json").write_text(render_json(card), encoding="utf-8")
    sums = sha256sums(tmp, UNSUMMED)
    (tmp / SHA256SUMS).write_text(sums, encoding="utf-8")
    signature = {
        "algorithm": SIGNATURE_ALGORITHM,
        "key_id": key_id,
        "version_id": version.id,
        "signature": crypto.sign(key, sums.encode("utf-8")).hex(),
    }
    (tmp / SIGNATURE_FILE).write_text(
        json.dumps(signature, sort_keys=True, indent=2) + "\n", encoding="utf-8"
    )


# -- import ---------------------------------------------------------------------------------------


def import_model(session: Session, bundle_dir: Path, trusted_key: Path) -> ImportedModel:
    """Verify the bundle at ``bundle_dir`` against ``trusted_key`` and register its version.

    Stewards and evaluators; audited as ``model.import``. Raises, registering nothing:
    CheckFailed when any check fails (signature, checksums, a missing or added file, the
    manifest) and for a spill (a bundle marked above system high; audited as ``ingest.spill``);
    InvalidInput when ``bundle_dir`` is not a directory or its marking is not valid here;
    KeyFileError when the trusted key cannot be read; NotPermitted when the subject may not read
    the bundle's marking or its role may not import.
    """
    root = Path(bundle_dir)
    session.require(Action.MODEL_MANAGE, AuditAction.MODEL_IMPORT, object_id=str(root)[-128:])
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a directory; give the folder a model export wrote.")
    public = load_trusted_key(trusted_key)
    document = _read_document(root)
    claimed = _claimed_id(document)
    marking = _refuse_spill(session, root, document, claimed)
    try:
        key_id = _verify_signature(root, public)
        problem = check_sums(root, UNSUMMED)
        if problem is not None:
            raise CheckFailed(f"The bundle at {root} failed verification: {problem[0]}")
        _check_layout(root)
        banner_text = (root / BANNER_FILE).read_text(encoding="utf-8", errors="replace")
        header, manifest = _verify_manifest(document, banner_text)
        files = manifest_files(manifest)
        if files:
            verify_folder(root / WEIGHTS_DIR, files)
        elif any(n.startswith(f"{WEIGHTS_DIR}/") for n in regular_files(root)):
            raise CheckFailed(f"The bundle at {root} holds weights its manifest does not list.")
    except CheckFailed as exc:
        session.audit(
            AuditAction.MODEL_IMPORT,
            object_id=claimed,
            decision="deny",
            reason=str(exc)[:500],
            details={"path": str(root)},
        )
        raise
    assert marking is not None  # a verified manifest has a marking (checked above)
    version_id = str(document["id"])
    try:
        _check_derivation(session, manifest, marking)
    except CheckFailed as exc:
        session.audit(
            AuditAction.MODEL_IMPORT, object_id=version_id, decision="deny", reason=str(exc)
        )
        raise
    banner = marking.banner()
    if not session.can_read(marking):
        session.audit(
            AuditAction.MODEL_IMPORT,
            object_id=version_id,
            decision="deny",
            reason="the subject does not dominate the bundle's marking",
        )
        raise NotPermitted(
            f"{session.subject.name} may not import {header['name']}: it is marked above what "
            "they may read."
        )
    if files:
        store_files(session, root / WEIGHTS_DIR, files)
    added = add_model_version(
        session,
        version_id=version_id,
        name=str(manifest["name"]),
        kind=str(manifest["kind"]),
        marking=marking,
        manifest=manifest,
        card=dict(header["card"]),
        lineage=list(header["lineage"]),
    )
    version = Models(session).resolve(version_id)
    base = manifest.get("base")
    present = None if base is None else base_present(session, str(base))
    session.audit(
        AuditAction.MODEL_IMPORT,
        object_id=version_id,
        object_marking=banner,
        details={
            "name": version.name,
            "path": str(root),
            "key_id": key_id,
            "source_workspace": str(header["workspace_id"]),
            "already_present": not added,
            "base_present": present,
        },
    )
    return ImportedModel(version, not added, key_id, str(header["workspace_id"]), present)


def _read_document(root: Path) -> Any:
    path = root / MANIFEST_FILE
    try:
        if path.is_symlink() or not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _claimed_id(document: Any) -> str | None:
    value = document.get("id") if isinstance(document, dict) else None
    return value if isinstance(value, str) and _FULL_ID.fullmatch(value) else None


def _claimed_markings(document: Any) -> list[str]:
    """The markings the bundle claims (header and manifest), whatever else is wrong with it."""
    if not isinstance(document, dict):
        return []
    found: list[str] = []
    for part in ("bundle", "manifest"):
        section = document.get(part)
        value = section.get("marking") if isinstance(section, dict) else None
        if isinstance(value, str) and value not in found:
            found.append(value)
    return found


def _bundle_size(root: Path) -> int:
    total = 0
    for name in regular_files(root):
        try:
            total += (root / name).stat().st_size
        except OSError:
            continue
    return total


def _refuse_spill(
    session: Session, root: Path, document: Any, claimed: str | None
) -> Marking | None:
    """The bundle's marking, after refusing a spill (any claimed marking above system high).

    Checked before anything else, whether or not the bundle verifies: data marked above system
    high on this network is a spill either way. Nothing of the bundle is read further or kept;
    the refusal names where it lies and its size, never its marking.
    """
    high = session.workspace.system_high
    parsed: list[Marking] = []
    for text in _claimed_markings(document):
        try:
            parsed.append(session.parse_marking(text))
        except MarkingError as exc:
            session.audit(
                AuditAction.MODEL_IMPORT,
                object_id=claimed,
                decision="deny",
                reason=f"invalid-marking: {exc.rule}",
                details={"path": str(root)},
            )
            raise InvalidInput(
                f"The bundle at {root} carries a marking that is not valid in this workspace "
                f"(rule {exc.rule}); nothing was imported."
            ) from None
    if any(not system_high_dominates(high, m) for m in parsed):
        details = {"uri": str(root.resolve()), "size": _bundle_size(root), "kind": "model-bundle"}
        session.audit(
            AuditAction.INGEST_SPILL,
            object_id=claimed,
            object_marking=None,
            decision="deny",
            reason="spill",
            details=details,
        )
        session.audit(
            AuditAction.MODEL_IMPORT,
            object_id=claimed,
            decision="deny",
            reason="spill",
            details=details,
        )
        raise CheckFailed(
            f"The bundle at {root} is marked above this workspace's system high: it is a spill, "
            "and nothing of it was imported; report it to your security officer."
        )
    return parsed[0] if parsed else None


def _verify_signature(root: Path, public: Any) -> str:
    """The key id, once SHA256SUMS.sig verifies over SHA256SUMS with the trusted key."""
    for name in UNSUMMED:
        path = root / name
        if path.is_symlink() or not path.is_file():
            raise CheckFailed(f"The bundle at {root} has no {name}: it is not a signed bundle.")
    try:
        sig = json.loads((root / SIGNATURE_FILE).read_text(encoding="utf-8"))
        sums = (root / SHA256SUMS).read_bytes()
    except (OSError, UnicodeDecodeError, ValueError):
        sig = None
        sums = b""
    if not isinstance(sig, dict):
        raise CheckFailed(f"{SIGNATURE_FILE} of the bundle at {root} is unreadable.")
    trusted_id = crypto.fingerprint(public)
    if sig.get("key_id") != trusted_id:
        raise CheckFailed(
            f"The bundle at {root} was signed by key {str(sig.get('key_id'))[:64]}, not by the "
            f"trusted key {trusted_id}."
        )
    if sig.get("algorithm") != SIGNATURE_ALGORITHM:
        raise CheckFailed(f"{SIGNATURE_FILE} names an unknown signature algorithm.")
    try:
        signature = bytes.fromhex(str(sig.get("signature", "")))
    except ValueError:
        signature = b""
    if not crypto.verify_signature(public, sums, signature):
        raise CheckFailed(
            f"The signature over {SHA256SUMS} of the bundle at {root} does not verify with the "
            "trusted key: the bundle was altered after it was signed."
        )
    return trusted_id


def _check_layout(root: Path) -> None:
    """Only a bundle's files are there, and all of them (their sums have been checked)."""
    present = set(regular_files(root))
    for name in sorted(present):
        if name not in TOP_FILES and not name.startswith(f"{WEIGHTS_DIR}/"):
            raise CheckFailed(f"The bundle at {root} holds an unexpected file {name}.")
    for name in sorted(TOP_FILES - present):
        raise CheckFailed(f"The bundle at {root} has no {name}.")


def _verify_manifest(document: Any, banner: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, manifest) once the manifest hashes to the bundle's id, is well formed, and the
    header and the banner file (``banner``, its text) agree with it."""
    if not isinstance(document, dict) or not all(
        isinstance(document.get(k), dict) for k in ("bundle", "manifest")
    ):
        raise CheckFailed(f"{MANIFEST_FILE} is not a model bundle manifest.")
    header: dict[str, Any] = document["bundle"]
    manifest: dict[str, Any] = document["manifest"]
    claimed = document.get("id")
    if header.get("format") != BUNDLE_FORMAT:
        raise CheckFailed(f"{MANIFEST_FILE} names an unknown bundle format {header.get('format')}.")
    if manifest_id(manifest) != claimed or header.get("id") != claimed:
        raise CheckFailed(
            f"The manifest in {MANIFEST_FILE} does not hash to the bundle's id: it was modified."
        )
    try:
        rebuilt = model_manifest(
            kind=str(manifest["kind"]),
            name=str(manifest["name"]),
            marking=str(manifest["marking"]),
            files=manifest_files(manifest),
            base=manifest["base"],
            datasets=list(manifest["datasets"]),
            parameters=manifest["parameters"],
            seeds=manifest["seeds"],
        )
    except (InvalidInput, KeyError, TypeError, ValueError, AttributeError):
        rebuilt = None
    if rebuilt != manifest:
        raise CheckFailed(f"The manifest in {MANIFEST_FILE} is not a well-formed model manifest.")
    for field in ("name", "kind", "marking"):
        if header.get(field) != manifest[field]:
            raise CheckFailed(f"The bundle header's {field} disagrees with its manifest.")
    if banner != f"{manifest['marking']}\n":
        raise CheckFailed(f"{BANNER_FILE} disagrees with the bundle's marking.")
    if not isinstance(header.get("card"), dict) or not isinstance(header.get("workspace_id"), str):
        raise CheckFailed(f"The bundle header in {MANIFEST_FILE} is incomplete.")
    _check_lineage(header.get("lineage"), manifest)
    return header, manifest


def _check_lineage(lineage: Any, manifest: dict[str, Any]) -> None:
    """The header's lineage names exactly the manifest's base and datasets."""
    ok = isinstance(lineage, list) and all(
        isinstance(e, dict)
        and e.get("kind") in ("base", "dataset")
        and isinstance(e.get("id"), str)
        and isinstance(e.get("name"), str)
        for e in lineage
    )
    if ok:
        bases = [e["id"] for e in lineage if e["kind"] == "base"]
        datasets = sorted(e["id"] for e in lineage if e["kind"] == "dataset")
        base = manifest.get("base")
        ok = bases == ([] if base is None else [base]) and datasets == sorted(manifest["datasets"])
    if not ok:
        raise CheckFailed("The bundle header's lineage disagrees with its manifest.")


def _check_derivation(session: Session, manifest: dict[str, Any], marking: Marking) -> None:
    """No write-down: the bundle's marking dominates every base model and training dataset of
    it that this workspace holds (whoever may read them: checked as the system session)."""
    system = session.workspace.session()
    base = manifest.get("base")
    above: list[Marking] = []
    if isinstance(base, str):
        for row in model_rows(system, id_prefix=base, include_deleted=True):
            if row.id == base:
                above.append(model_marking(system, row))
    for dataset_id in manifest.get("datasets") or []:
        for ds_row in version_rows(system, id_prefix=str(dataset_id)):
            if ds_row.id == dataset_id:
                above.append(version_marking(system, ds_row))
    if any(not dominates(marking, m) for m in above):
        raise CheckFailed(
            "The bundle is marked below a model or dataset it derives from in this workspace; "
            "a model is marked at least as high as what it learned from, so it is refused."
        )
