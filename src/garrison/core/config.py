"""Workspace configuration: the typed form of ``garrison.toml``."""

from __future__ import annotations

import tomllib
from pathlib import Path

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from garrison.core.errors import WorkspaceError

__all__ = ["CONFIG_FILE", "S3Settings", "WorkspaceConfig"]

CONFIG_FILE = "garrison.toml"


class S3Settings(BaseModel):
    """How to reach the S3-compatible object store that ``s3://`` blob and index URLs name
    (``[workspace.s3]``). What is left out comes from the standard AWS environment variables
    (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``...) or the AWS shared files."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    #: ``https://rgw.example.mil:7480``; none: AWS itself (or ``AWS_ENDPOINT_URL``).
    endpoint_url: str | None = Field(default=None, alias="endpoint-url")
    region: str | None = None
    #: ``bucket`` in the path rather than in the host name: what local servers (Ceph RGW,
    #: SeaweedFS, Garage, MinIO) answer without wildcard DNS.
    path_style: bool = Field(default=True, alias="path-style")
    #: Credentials kept in the (owner-only) configuration; the environment is preferred.
    access_key_id: str | None = Field(default=None, alias="access-key-id")
    secret_access_key: str | None = Field(default=None, alias="secret-access-key", repr=False)


class WorkspaceConfig(BaseModel):
    """What ``garrison init`` records about a workspace; everything else lives in the catalog."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    format: int = 1
    workspace_id: str
    #: Canonical banner of the most the network is accredited for.
    system_high: str
    #: SQLAlchemy URL; ``sqlite:///catalog.db`` paths are relative to the workspace.
    catalog_url: str = "sqlite:///catalog.db"
    #: A folder of the workspace, or ``s3://bucket/prefix`` on object storage.
    blob_url: str = "blobs"
    #: The search index: a folder of the workspace, or ``s3://bucket/prefix``.
    index_url: str = "index"
    audit_dir: str = "audit"
    audit_key_file: str = "keys/audit-ed25519.pem"
    master_key_file: str = "keys/master.key"
    #: A signed audit checkpoint is written every this many events (and at the end of each command).
    audit_checkpoint_every: int = Field(default=100, ge=1)
    #: The operator's explicit acceptance that a workspace above UNCLASSIFIED is not on an
    #: encrypted volume (``garrison doctor`` then warns instead of failing, and audits it).
    allow_unencrypted_volume: bool = Field(default=False, alias="allow-unencrypted-volume")
    #: The object store for ``s3://`` URLs.
    s3: S3Settings | None = None
    #: Failed logins one client address may make per window before the server answers 429 and
    #: audits the rest of that window as one aggregated event (docs/operations.md).
    login_failures_per_window: int = Field(default=20, ge=1, le=100_000)
    #: The length of that window, in seconds.
    login_window_seconds: int = Field(default=60, ge=1, le=86_400)

    @classmethod
    def load(cls, workspace: Path) -> WorkspaceConfig:
        """Read ``garrison.toml`` from ``workspace``; any problem is a :class:`WorkspaceError`."""
        path = workspace / CONFIG_FILE
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkspaceError(
                f"No Garrison workspace at {workspace}: {CONFIG_FILE} is missing; "
                "create one with `garrison init`."
            ) from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise WorkspaceError(
                f"The workspace configuration {path} cannot be read: {exc}."
            ) from exc
        try:
            return cls.model_validate(raw.get("workspace", {}))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise WorkspaceError(
                f"The workspace configuration {path} is invalid ({where}: {first['msg']})."
            ) from exc

    def dump(self, workspace: Path) -> None:
        """Write ``garrison.toml`` into ``workspace``."""
        text = tomli_w.dumps({"workspace": self.model_dump(by_alias=True, exclude_none=True)})
        (workspace / CONFIG_FILE).write_text(
            "# Garrison workspace configuration (see docs/operations.md).\n" + text,
            encoding="utf-8",
        )
