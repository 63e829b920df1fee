"""What ingest refuses to read: Garrison's own workspaces, and links out of the given folders.

A workspace holds the catalog, the keys, the encrypted originals and the audit log. Ingesting
any of it would turn system-high data and key material into ordinary documents that everyone
with the default marking may read, so ingest refuses (invalid input, exit 2):

- any path at or under a directory holding a ``garrison.toml`` (checked on the path as given
  and after resolving symbolic links, and for every folder met while walking a tree);
- the files of the acting workspace wherever its configuration put them (catalog database,
  key files, blob store), resolved after links;
- as a SQL source, the catalog of the acting workspace, and any SQLite database inside a
  workspace.

Symbolic links inside a folder being ingested are followed only when they stay inside it: a
link to a file or folder elsewhere is skipped and reported, without its target.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from garrison.core.config import CONFIG_FILE
from garrison.core.errors import InvalidInput
from garrison.store.workspace import Workspace

__all__ = ["SKIPPED_LINK", "InputGuard", "walk_inputs", "workspace_holding"]

#: The job item reason of a symbolic link not followed.
SKIPPED_LINK = "link-outside-input"


def workspace_holding(path: Path) -> Path | None:
    """The nearest directory at or above ``path`` that holds a ``garrison.toml`` (or None)."""
    for folder in (path, *path.parents):
        try:
            if (folder / CONFIG_FILE).is_file():
                return folder
        except OSError:
            continue
    return None


def _resolved(path: Path) -> Path:
    try:
        return path.resolve(strict=False)
    except (OSError, RuntimeError):  # a loop of links
        return path.absolute()


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


class InputGuard:
    """The checks above, for one workspace's ingest."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        root = _resolved(workspace.root)
        config = workspace.config
        self._folders = [root]
        if "://" not in config.blob_url:  # blobs on object storage are not a local path
            self._folders.append(_resolved(root / config.blob_url))
        self._files = {
            _resolved(root / config.audit_key_file),
            _resolved(root / config.master_key_file),
        }
        catalog = _sqlite_file(workspace.catalog.url, root)
        if catalog is not None:
            self._files.add(catalog)

    def _refuse(self, shown: str, why: str) -> InvalidInput:
        return InvalidInput(
            f"Refusing to ingest {shown}: {why}; a workspace's catalog, keys and originals are "
            "never input."
        )

    def check_path(self, path: Path, shown: str | None = None) -> None:
        """Raise InvalidInput if ``path`` (as given or resolved) is workspace material."""
        shown = shown or str(path)
        for candidate in (path.absolute(), _resolved(path)):
            holder = workspace_holding(candidate)
            if holder is not None:
                raise self._refuse(shown, f"it lies inside the Garrison workspace {holder}")
            if candidate in self._files or any(_inside(candidate, f) for f in self._folders):
                raise self._refuse(shown, "it belongs to this workspace")
            if any(_inside(f, candidate) for f in self._folders):
                raise self._refuse(shown, "it contains this workspace")

    def check_sql(self, url: str) -> None:
        """Raise InvalidInput if ``url`` names a Garrison catalog this ingest can see."""
        mine = _server_database(self.workspace.catalog.url)
        if mine is not None and _server_database(url) == mine:
            raise InvalidInput(
                "Refusing to ingest this database: it is this workspace's own catalog."
            )
        path = _sqlite_file(url, Path.cwd())
        if path is not None:
            self.check_path(path, "this SQLite database")


def walk_inputs(root: Path, skipped: list[str], guard: InputGuard | None = None) -> Iterator[Path]:
    """Every regular file under the directory ``root``, with links kept inside it.

    Links to folders are never descended into (no loops); a link (to a file or a folder) that
    leaves ``root`` goes to ``skipped`` as the link's own path, never its target. A folder
    holding a ``garrison.toml`` stops the walk (InvalidInput), and so does a link to workspace
    material (``guard``).
    """
    top = _resolved(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        if CONFIG_FILE in filenames:
            raise InvalidInput(
                f"Refusing to ingest {root}: it contains the Garrison workspace {here}; a "
                "workspace's catalog, keys and originals are never input."
            )
        dirnames.sort()
        for name in dirnames:
            path = here / name
            if path.is_symlink() and not _inside(_resolved(path), top):
                skipped.append(str(path.absolute()))
        for name in sorted(filenames):
            path = here / name
            if path.is_symlink():
                target = _resolved(path)
                if not _inside(target, top):
                    skipped.append(str(path.absolute()))
                    continue
                if guard is not None:
                    guard.check_path(target, str(path))
            if path.is_file():
                yield path


def _sqlite_file(url: str, base: Path) -> Path | None:
    """The database file of a ``sqlite://`` URL (None for another database or in memory)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0].lower() != "sqlite":
        return None
    database = rest[1:] if rest.startswith("/") else rest  # sqlite:///rel, sqlite:////abs
    database = unquote(database.split("?", 1)[0])
    if database.startswith("file:"):
        database = database[len("file:") :]
    if not database or database == ":memory:":
        return None
    path = Path(database)
    return _resolved(path if path.is_absolute() else base / path)


def _server_database(url: str) -> tuple[str, str, int | None, str] | None:
    """``(backend, host, port, database)`` of a server database URL, driver and user aside."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    backend = parts.scheme.split("+", 1)[0].lower()
    if not backend or backend == "sqlite":
        return None
    if backend == "postgres":
        backend = "postgresql"
    if port is None and backend == "postgresql":
        port = 5432
    host = (parts.hostname or "localhost").lower()
    if host in ("127.0.0.1", "::1", ""):
        host = "localhost"
    return backend, host, port, unquote(parts.path.lstrip("/"))
