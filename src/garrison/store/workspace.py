"""A workspace: one directory holding configuration, catalog, blobs, index, audit log and keys.

::

    WORKSPACE/
      garrison.toml      configuration (system high, catalog URL, key paths)
      catalog.db         SQLite catalog in WAL mode (unless the catalog is PostgreSQL)
      blobs/             original bytes, content-addressed and encrypted (or s3://...)
      index/             vectors and full text (or s3://...: store/object_store.py)
      audit/             append-only audit log, signed checkpoints
      keys/              audit signing key, master key and binding key (mode 0600)
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from pydantic import JsonValue
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from garrison.core.config import CONFIG_FILE, S3Settings, WorkspaceConfig
from garrison.core.errors import (
    InvalidInput,
    MarkingError,
    NotFound,
    UnencryptedStorage,
    WorkspaceError,
)
from garrison.security.audit import AuditAction
from garrison.security.markings import (
    BUILTIN_REGISTRY,
    NATO_MEMBERS,
    Level,
    Marking,
    MarkingRegistry,
    parse_marking,
)
from garrison.security.subjects import SYSTEM_SUBJECT_NAME, Subject, SubjectKind
from garrison.store.audit_log import AuditLog
from garrison.store.blobs import BlobStore, LocalBlobStore, S3BlobStore
from garrison.store.catalog import Catalog, resolve_url
from garrison.store.index import ChunkIndex, chunk_index
from garrison.store.keys import (
    binding_key,
    create_key_files,
    read_master_key,
    read_signing_key,
)
from garrison.store.models import Meta, RegistryEntry, SubjectRow
from garrison.store.object_store import (
    S3Connection,
    bucket_encryption,
    check_empty,
    is_s3_url,
    parse_s3_url,
    resolve_connection,
)

if TYPE_CHECKING:
    from garrison.store.session import Session

__all__ = [
    "IndexEncryption",
    "Workspace",
    "index_encryption",
    "registry_from_rows",
    "subject_from_row",
]

_SUBDIRS = ("audit", "keys")


@dataclass(frozen=True)
class IndexEncryption:
    """Whether the search index's bucket may hold this workspace's data, and why.

    ``algorithm`` is the bucket's default server-side encryption (None: none configured);
    ``required`` is True above UNCLASSIFIED; ``allowed`` is the verdict.
    """

    url: str
    endpoint: str
    algorithm: str | None
    required: bool

    @property
    def allowed(self) -> bool:
        return self.algorithm is not None or not self.required

    def to_details(self) -> dict[str, JsonValue]:
        return {
            "url": self.url,
            "endpoint": self.endpoint,
            "algorithm": self.algorithm,
            "required": self.required,
        }

    def refusal(self, system_high: str) -> UnencryptedStorage:
        return UnencryptedStorage(
            f"The index bucket at {self.url} has no default server-side encryption, and the "
            f"workspace holds data up to {system_high}; configure bucket encryption "
            "(PutBucketEncryption, SSE-S3 or SSE-KMS) or choose an encrypted bucket.",
            url=self.url,
            reason="no-default-encryption",
        )


def index_encryption(
    index_url: str, connection: S3Connection, high: Marking
) -> IndexEncryption | None:
    """Read the default encryption of the bucket holding an ``s3://`` index (None for a
    local index, whose protection is the volume's: ``garrison doctor``)."""
    if not is_s3_url(index_url):
        return None
    location = parse_s3_url(index_url)
    return IndexEncryption(
        url=location.url,
        endpoint=connection.shown,
        algorithm=bucket_encryption(connection, location.bucket),
        required=high.level > Level.U,
    )


def subject_from_row(row: SubjectRow) -> Subject:
    """Rebuild a :class:`Subject` from its catalog row."""
    from garrison.security.subjects import Role, parse_clearance

    return Subject(
        name=row.name,
        kind=SubjectKind(row.kind),
        clearance=parse_clearance(row.clearance),
        sci=frozenset(row.sci),
        sap=frozenset(row.sap),
        citizenship=row.citizenship,
        groups=frozenset(row.groups),
        grants=frozenset(row.grants),
        roles=frozenset(Role(r) for r in row.roles),
        dn=row.dn,
        disabled=row.disabled,
        nato=row.nato,
        nato_special=frozenset(row.nato_special or ()),
        aea=frozenset(row.aea or ()),
        accm=frozenset(row.accm or ()),
        nonic=frozenset(row.nonic or ()),
    )


def registry_from_rows(rows: list[RegistryEntry]) -> MarkingRegistry:
    """The built-in registry plus a workspace's site additions.

    Kinds: ``sci``, ``sap``, ``group`` (``NATO-MEMBERS`` among them), ``cui``,
    ``sap-nickname`` (its PID in ``members``), ``accm``, ``nonic`` and ``owner``; rows of other
    kinds are not this function's (other registers keep them in the same table).
    """
    names: dict[str, list[str]] = {}
    groups: dict[str, frozenset[str] | None] = {}
    nicknames: dict[str, str] = {}
    nato_members: list[str] | None = None
    for r in rows:
        if r.kind == "group" and r.name == NATO_MEMBERS:
            nato_members = list(r.members or ())
        elif r.kind == "group":
            groups[r.name] = frozenset(r.members) if r.members is not None else None
        elif r.kind == "sap-nickname":
            nicknames[r.name] = (r.members or [""])[0]
        else:
            names.setdefault(r.kind, []).append(r.name)
    if not (names or groups or nicknames or nato_members is not None):
        return BUILTIN_REGISTRY
    return BUILTIN_REGISTRY.with_additions(
        sci_systems=names.get("sci", ()),
        sap_ids=names.get("sap", ()),
        groups=groups,
        cui_categories=names.get("cui", ()),
        sap_nicknames=nicknames,
        accm=names.get("accm", ()),
        nonic_controls=names.get("nonic", ()),
        owners=names.get("owner", ()),
        nato_members=nato_members,
    )


class Workspace:
    """Owns a workspace's configuration and connections. Open it with :meth:`open`."""

    def __init__(self, root: Path, config: WorkspaceConfig, catalog: Catalog, audit: AuditLog):
        self.root = root
        self.config = config
        self.catalog = catalog
        self.audit = audit
        # A row whose binding fails is dropped from every read; the system records it once.
        catalog.binder.on_failure = self._integrity_failure
        #: Set when verification found the audit log tampered with: no checkpoint is signed
        #: over a log known to be bad.
        self.log_damaged = False
        self._index_bucket_ok = False

    # -- life cycle ---------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        path: Path | str,
        *,
        system_high: str,
        db_url: str | None = None,
        blob_url: str | None = None,
        index_url: str | None = None,
        s3: S3Settings | None = None,
    ) -> Workspace:
        """Create a new workspace at ``path`` (which must not exist or be an empty directory).

        ``blob_url`` and ``index_url`` may name ``s3://bucket/prefix`` places (reached as
        ``s3`` and the AWS environment say); each must be empty, and above UNCLASSIFIED the
        index's bucket must enforce server-side encryption (:class:`UnencryptedStorage`).
        Everything is checked before anything is written; if a later step fails, what was
        created is removed again, so a failed ``init`` changes nothing.
        """
        root = Path(path).absolute()
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            what = "A workspace" if (root / CONFIG_FILE).exists() else "Something"
            raise InvalidInput(f"{what} already exists at {root}; choose a new or empty directory.")
        high = parse_marking(system_high)
        url = resolve_url(db_url or "sqlite:///catalog.db", root)
        blobs_at, index_at = blob_url or "blobs", index_url or "index"
        remote = [u for u in (blobs_at, index_at) if is_s3_url(u)]
        for place in (blobs_at, index_at):
            if not is_s3_url(place) and place not in ("blobs", "index"):
                raise InvalidInput(
                    f"{place!r} is not an s3:// URL; blobs and index live in the workspace "
                    "unless they are on object storage."
                )
        if len({parse_s3_url(u).url for u in remote}) < len(remote):
            raise InvalidInput("Blobs and index need different s3:// places.")
        connection = resolve_connection(s3) if remote else None
        encryption = None
        if connection is not None:
            for place in remote:
                check_empty(connection, parse_s3_url(place))
            encryption = index_encryption(index_at, connection, high)
            if encryption is not None and not encryption.allowed:
                raise encryption.refusal(high.banner())
        created_root = not root.exists()
        catalog: Catalog | None = None
        migrated = False
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            root.chmod(0o700)  # marked data and keys: owner-only, whatever the umask
            for sub in (*_SUBDIRS, *(p for p in (blobs_at, index_at) if not is_s3_url(p))):
                (root / sub).mkdir(mode=0o700)
            config = WorkspaceConfig(
                workspace_id=uuid.uuid4().hex,
                system_high=high.banner(),
                catalog_url=db_url or "sqlite:///catalog.db",
                blob_url=blobs_at,
                index_url=index_at,
                s3=s3 if remote else None,
            )
            create_key_files(root / config.audit_key_file, root / config.master_key_file)
            catalog = Catalog(url, binding_key=binding_key(root))
            if not catalog.is_empty():
                raise InvalidInput(
                    "The catalog database already holds tables; give `init` an empty database."
                )
            migrated = True
            catalog.migrate()
            with catalog.transaction() as orm:
                orm.add_all(
                    [
                        Meta(key="workspace_id", value=config.workspace_id),
                        Meta(key="system_high", value=json.dumps(high.to_dict(), sort_keys=True)),
                    ]
                )
                audit = AuditLog(
                    root / config.audit_dir,
                    read_signing_key(root / config.audit_key_file),
                    checkpoint_every=config.audit_checkpoint_every,
                )
                orm.flush()
                audit.append(
                    SYSTEM_SUBJECT_NAME,
                    AuditAction.WORKSPACE_INIT,
                    object_id=config.workspace_id,
                    object_marking=high.banner(),
                    details={
                        "catalog": catalog.backend,
                        "system_high": high.banner(),
                        "blobs": blobs_at,
                        "index": index_at,
                    },
                )
                if encryption is not None:
                    audit.append(
                        SYSTEM_SUBJECT_NAME,
                        AuditAction.STORAGE_ENCRYPTION,
                        object_id=encryption.url,
                        object_marking=high.banner(),
                        reason=f"index bucket encryption: {encryption.algorithm or 'none'}",
                        details=encryption.to_details(),
                    )
            config.dump(root)
            audit.checkpoint()
        except BaseException:
            if catalog is not None and migrated and catalog.backend != "sqlite":
                _drop_catalog(catalog)
            if catalog is not None:
                catalog.dispose()
            _remove_created(root, created_root)
            raise
        ws = cls(root, config, catalog, audit)
        ws.__dict__["system_high"] = high
        return ws

    @classmethod
    def open(cls, path: Path | str) -> Workspace:
        """Open an existing workspace, checking config, keys and catalog."""
        root = Path(path).absolute()
        if not root.is_dir():
            raise WorkspaceError(
                f"No Garrison workspace at {root}; create one with `garrison init {path}`."
            )
        config = WorkspaceConfig.load(root)
        signing_key = read_signing_key(root / config.audit_key_file)
        read_master_key(root / config.master_key_file)  # fail now, not half-way through a job
        catalog = Catalog(resolve_url(config.catalog_url, root), binding_key=binding_key(root))
        try:
            catalog.check()
            with catalog.transaction() as orm:
                stored = orm.scalar(select(Meta.value).where(Meta.key == "system_high"))
        except BaseException:
            catalog.dispose()
            raise
        if stored is None:
            raise WorkspaceError("The catalog does not record the workspace's system high.")
        ws = cls(
            root,
            config,
            catalog,
            AuditLog(
                root / config.audit_dir, signing_key, checkpoint_every=config.audit_checkpoint_every
            ),
        )
        # The config file and the catalog must agree: a hand-edited system high fails closed.
        recorded = _recorded_system_high(config.system_high, stored, ws.registry)
        if recorded is None:
            ws.close(checkpoint=False)
            raise WorkspaceError(
                f"The system high in {CONFIG_FILE} ({config.system_high}) differs from the one "
                "recorded in the catalog; restore the configuration file."
            )
        # Known from here on: never read again inside another transaction (SQLite would wait).
        ws.__dict__["system_high"] = recorded
        return ws

    def close(self, *, checkpoint: bool = True) -> None:
        """Write a signed audit checkpoint (end of every command) and release connections."""
        try:
            if checkpoint and not self.log_damaged:
                self.audit.checkpoint()
        finally:
            self.catalog.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _integrity_failure(self, table: str, record_id: str) -> None:
        self.audit.append(
            SYSTEM_SUBJECT_NAME,
            AuditAction.INTEGRITY,
            object_id=f"{table}:{record_id}",
            decision="deny",
            reason="binding does not verify",
            details={"table": table, "id": record_id},
        )

    # -- facts ------------------------------------------------------------------------------

    @cached_property
    def registry(self) -> MarkingRegistry:
        """The built-in marking registry plus this workspace's site additions."""
        with self.catalog.transaction() as orm:
            rows = list(orm.scalars(select(RegistryEntry)))
        return registry_from_rows(rows)

    @cached_property
    def s3(self) -> S3Connection:
        """The object store that ``s3://`` blob and index URLs are on."""
        return resolve_connection(self.config.s3)

    @cached_property
    def blobs(self) -> BlobStore:
        """The encrypted store of original bytes (a workspace folder or a bucket)."""
        key = read_master_key(self.root / self.config.master_key_file)
        if is_s3_url(self.config.blob_url):
            return S3BlobStore(self.s3, parse_s3_url(self.config.blob_url), key)
        return LocalBlobStore(self.root / self.config.blob_url, key)

    @cached_property
    def _index_options(self) -> dict[str, str]:
        return self.s3.storage_options()

    def _check_index_bucket(self) -> None:
        """Above UNCLASSIFIED, an ``s3://`` index is used only while its bucket enforces
        server-side encryption: checked once per open workspace, a refusal audited."""
        verdict = index_encryption(self.config.index_url, self.s3, self.system_high)
        if verdict is not None and not verdict.allowed:
            self.audit.append(
                SYSTEM_SUBJECT_NAME,
                AuditAction.STORAGE_ENCRYPTION,
                object_id=verdict.url,
                object_marking=self.system_high.banner(),
                decision="deny",
                reason="index bucket encryption: none",
                details=verdict.to_details(),
            )
            raise verdict.refusal(self.system_high.banner())
        self._index_bucket_ok = True

    @property
    def index(self) -> ChunkIndex:
        """The vector and full-text index of chunks (a workspace folder or a bucket).

        Raises :class:`UnencryptedStorage` when an ``s3://`` index's bucket lost its
        server-side encryption above UNCLASSIFIED (nothing is read from or written to it).
        """
        url = self.config.index_url
        if is_s3_url(url):
            location = parse_s3_url(url)
            if self.system_high.level > Level.U and not self._index_bucket_ok:
                self._check_index_bucket()
            return chunk_index(location.url, storage_options=self._index_options)
        return chunk_index(self.root / url)

    @cached_property
    def system_high(self) -> Marking:
        """The system high in full, as the catalog records it in structured form.

        The configuration file holds only its banner, and a banner does not always carry the
        whole marking: three or more programs are written ``SAR-MULTIPLE PROGRAMS``, which
        names none of them. ``open`` has checked that the two agree.
        """
        with self.catalog.transaction() as orm:
            stored = orm.scalar(select(Meta.value).where(Meta.key == "system_high"))
        if stored is None:
            raise WorkspaceError("The catalog does not record the workspace's system high.")
        return Marking.from_dict(json.loads(stored), registry=self.registry)

    def refresh(self) -> None:
        """Forget cached facts after the registry changed (called outside any transaction:
        the system high is read again at once, under the new registry)."""
        self.__dict__.pop("registry", None)
        self.__dict__.pop("system_high", None)
        _ = self.system_high

    # -- sessions ---------------------------------------------------------------------------

    def system_subject(self) -> Subject:
        """The operator's console session: every role, reads up to system high."""
        from garrison.security.markings import Level

        return Subject(name=SYSTEM_SUBJECT_NAME, clearance=Level.TS, kind=SubjectKind.SYSTEM)

    def session(self, as_user: str | None = None) -> Session:
        """A session acting as ``as_user`` (or the system session); unknown users are audited."""
        from garrison.store.session import Session

        if as_user is None or as_user == SYSTEM_SUBJECT_NAME:
            return Session(self, self.system_subject())
        with self.catalog.read() as orm:
            row = orm.scalar(select(SubjectRow).where(SubjectRow.name == as_user))
        if row is None or row.disabled:
            self.audit.append(
                as_user,
                AuditAction.SESSION_OPEN,
                decision="deny",
                reason="unknown subject" if row is None else "subject is disabled",
            )
            raise NotFound(f"No user named {as_user!r}.")
        return Session(self, subject_from_row(row))


def _remove_created(root: Path, created_root: bool) -> None:
    if created_root:
        shutil.rmtree(root, ignore_errors=True)
        return
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _drop_catalog(catalog: Catalog) -> None:
    from sqlalchemy import text

    from garrison.store.models import Base

    try:
        with catalog.engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    except SQLAlchemyError:  # pragma: no cover - best effort clean-up after a failed init
        pass


def _recorded_system_high(banner: str, stored: str, registry: MarkingRegistry) -> Marking | None:
    """The catalog's system high when the configuration's banner ``banner`` states it, else
    None.

    The catalog's structured form is the system high; the banner must be exactly what that
    form writes (or, written another way, parse to the same marking). A banner naming no
    programs (``SAR-MULTIPLE PROGRAMS``) matches only the marking whose banner it is, so a
    catalog holding other or fewer programs than the file was written for never opens.
    """
    try:
        recorded = Marking.from_dict(json.loads(stored), registry=registry)
    except (MarkingError, ValueError, TypeError):
        return None
    if banner.strip() == recorded.banner():
        return recorded
    try:
        same = parse_marking(banner, registry=registry) == recorded
    except MarkingError:
        return None
    return recorded if same else None
