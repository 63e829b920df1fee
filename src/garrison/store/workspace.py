"""A workspace: one directory holding configuration, catalog, blobs, index, audit log and keys.

::

    WORKSPACE/
      garrison.toml      configuration (system high, catalog URL, key paths)
      catalog.db         SQLite catalog in WAL mode (unless the catalog is PostgreSQL)
      blobs/             original bytes, content-addressed and encrypted
      index/             vectors and full text
      audit/             append-only audit log, signed checkpoints
      keys/              audit signing key, master key and binding key (mode 0600)
"""

from __future__ import annotations

import json
import shutil
import uuid
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from garrison.core.config import CONFIG_FILE, WorkspaceConfig
from garrison.core.errors import InvalidInput, MarkingError, NotFound, WorkspaceError
from garrison.security.audit import AuditAction
from garrison.security.markings import (
    BUILTIN_REGISTRY,
    NATO_MEMBERS,
    Marking,
    MarkingRegistry,
    parse_marking,
)
from garrison.security.subjects import SYSTEM_SUBJECT_NAME, Subject, SubjectKind
from garrison.store.audit_log import AuditLog
from garrison.store.blobs import LocalBlobStore
from garrison.store.catalog import Catalog, resolve_url
from garrison.store.keys import (
    binding_key,
    create_key_files,
    read_master_key,
    read_signing_key,
)
from garrison.store.models import Meta, RegistryEntry, SubjectRow

if TYPE_CHECKING:
    from garrison.store.session import Session

__all__ = ["Workspace", "registry_from_rows", "subject_from_row"]

_SUBDIRS = ("blobs", "index", "audit", "keys")


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

    # -- life cycle ---------------------------------------------------------------------------

    @classmethod
    def init(cls, path: Path | str, *, system_high: str, db_url: str | None = None) -> Workspace:
        """Create a new workspace at ``path`` (which must not exist or be an empty directory).

        Everything is checked before anything is written; if a later step fails, what was
        created is removed again, so a failed ``init`` changes nothing.
        """
        root = Path(path).absolute()
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            what = "A workspace" if (root / CONFIG_FILE).exists() else "Something"
            raise InvalidInput(f"{what} already exists at {root}; choose a new or empty directory.")
        high = parse_marking(system_high)
        url = resolve_url(db_url or "sqlite:///catalog.db", root)
        created_root = not root.exists()
        catalog: Catalog | None = None
        migrated = False
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            root.chmod(0o700)  # marked data and keys: owner-only, whatever the umask
            for sub in _SUBDIRS:
                (root / sub).mkdir(mode=0o700)
            config = WorkspaceConfig(
                workspace_id=uuid.uuid4().hex,
                system_high=high.banner(),
                catalog_url=db_url or "sqlite:///catalog.db",
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
                    details={"catalog": catalog.backend, "system_high": high.banner()},
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
    def blobs(self) -> LocalBlobStore:
        """The encrypted store of original bytes."""
        key = read_master_key(self.root / self.config.master_key_file)
        return LocalBlobStore(self.root / self.config.blob_url, key)

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
        with self.catalog.transaction() as orm:
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
