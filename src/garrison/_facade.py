"""The Python API: a workspace, sessions acting as a user, and what they may do.

``garrison.open(path)`` gives a :class:`Workspace`; ``ws.session("bob")`` a :class:`Session`
acting as that user, with every check and audit record that the command line and the REST API
apply (they call the same library). Reads show only what the user may read; a forbidden object
looks exactly like a missing one (:class:`~garrison.core.errors.NotFound`).

Each method wraps one library call and imports it when first used, so ``import garrison`` stays
light and an optional extra is needed only by what uses it. The underlying objects stay
reachable -- :attr:`Workspace.store`, :attr:`Session.store` -- for every other library function,
which takes the store session as its first argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from garrison.core.errors import InvalidInput

if TYPE_CHECKING:
    from garrison.assist import Answer, Generator
    from garrison.datasets import DatasetVersion
    from garrison.ingest.engine import IngestReport
    from garrison.ingest.preview import Preview
    from garrison.pipeline.executor import RunReport
    from garrison.search import SearchResult
    from garrison.security.markings import Marking
    from garrison.security.subjects import Subject
    from garrison.store import session as _store_session
    from garrison.store import workspace as _store_workspace

__all__ = ["Session", "Workspace", "init", "open", "parse_file"]


def open(path: str | Path) -> Workspace:
    """Open the workspace at ``path`` (a folder made by :func:`init` or ``garrison init``).

    Raises WorkspaceError (exit 5) when there is none, or when its configuration, keys or
    catalog do not check out. Close it (or use it in a ``with`` block) to write the signed
    audit checkpoint.
    """
    from garrison.store.workspace import Workspace as StoreWorkspace

    return Workspace(StoreWorkspace.open(path))


def init(path: str | Path, *, system_high: str, db_url: str | None = None) -> Workspace:
    """Create a workspace at ``path`` (new or empty) accredited to ``system_high``.

    ``db_url``: a PostgreSQL catalog (``postgresql+psycopg://...``); default SQLite inside the
    workspace. A failed ``init`` leaves nothing behind.
    """
    from garrison.store.workspace import Workspace as StoreWorkspace

    return Workspace(StoreWorkspace.init(path, system_high=system_high, db_url=db_url))


def parse_file(
    path: str | Path,
    *,
    system_high: str | None = None,
    default_marking: str | None = None,
    timeout: float = 120.0,
    memory_mb: int = 2048,
) -> Preview:
    """What ingest would make of one file, with no workspace (``garrison parse``).

    The file is parsed in an isolated process with ingest's limits; the result holds its
    elements with their markings, the findings and the verdict (``accept``, ``quarantine`` or
    ``spill`` under ``system_high``, default ``TOP SECRET//NOFORN``). Nothing is stored. A file
    that cannot be read raises its error (NotFound, InvalidInput, EnvironmentProblem).
    """
    from garrison.core.isolation import Limits
    from garrison.ingest.engine import IngestOptions
    from garrison.ingest.preview import (
        DEFAULT_MARKING,
        DEFAULT_SYSTEM_HIGH,
        PreviewError,
        preview_files,
    )

    default = default_marking or DEFAULT_MARKING
    options = IngestOptions(
        default_marking=default, limits=Limits(timeout_s=timeout, memory_mb=memory_mb)
    )
    (result,) = preview_files(
        [path],
        system_high=system_high or DEFAULT_SYSTEM_HIGH,
        default_marking=default,
        options=options,
    )
    if isinstance(result, PreviewError):
        raise result.error
    return result


class Workspace:
    """An open workspace. Get one with :func:`garrison.open` or :func:`garrison.init`."""

    def __init__(self, store: _store_workspace.Workspace) -> None:
        #: The store's workspace object, for library functions not wrapped here.
        self.store = store

    @property
    def root(self) -> Path:
        """The workspace folder."""
        return self.store.root

    @property
    def system_high(self) -> Marking:
        """The most this workspace is accredited for; data above it is a spill."""
        return self.store.system_high

    def session(self, user: str | None = None) -> Session:
        """A session acting as ``user`` (every check applies), or the operator's system session
        when ``user`` is None. An unknown or disabled user raises NotFound (and is audited)."""
        return Session(self, self.store.session(user))

    def close(self) -> None:
        """Write a signed audit checkpoint and release the catalog's connections."""
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<garrison.Workspace {str(self.root)!r} system high {self.system_high.banner()}>"


class Session:
    """A user acting on a workspace: reads filtered by marking, actions checked and audited.

    Use it in a ``with`` block; after the block it refuses further use.
    """

    def __init__(self, workspace: Workspace, store: _store_session.Session) -> None:
        self.workspace = workspace
        #: The store's session: the first argument of every library function.
        self._store = store
        self._closed = False

    @property
    def store(self) -> _store_session.Session:
        """The store's session, for library functions not wrapped here."""
        if self._closed:
            raise InvalidInput("This session is closed; open another with ws.session(...).")
        return self._store

    @property
    def subject(self) -> Subject:
        """Who is acting: clearance, read-ins, citizenship, grants and roles."""
        return self._store.subject

    @property
    def user(self) -> str:
        """The acting user's name (``system`` for the operator's session)."""
        return self._store.subject.name

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed = True

    def __repr__(self) -> str:
        return f"<garrison.Session as {self.user!r}>"

    # -- reading ----------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: Mapping[str, str] | None = None,
        labels: Sequence[str] = (),
    ) -> SearchResult:
        """The ``k`` best chunks this user may read for ``query`` (hybrid full-text and vector).

        ``filters``: ``doc``, ``source``, ``media_type``, ``language``, ``max_marking``,
        ``ingested_from``, ``ingested_to``; ``labels``: ``NAME=LABEL``. The result's ``total``
        and ``marking`` count readable chunks only.
        """
        from garrison.search import search

        return search(self.store, query, k=k, filters=filters, labels=labels)

    def ask(
        self,
        question: str,
        *,
        k: int | None = None,
        max_marking: str | None = None,
        question_marking: str | None = None,
        generator: Generator | str | None = None,
        conversation: str | None = None,
    ) -> Answer:
        """An answer quoted from what this user may read: each sentence portion-marked and
        cited, the answer marked with the join of its context.

        ``generator``: None for the built-in extractive answerer (no model, no network), or a
        registered generator's ``NAME[@VERSION]``.
        """
        from garrison.assist import DEFAULT_K, ask

        return ask(
            self.store,
            question,
            k=DEFAULT_K if k is None else k,
            max_marking=max_marking,
            question_marking=question_marking,
            generator=generator,
            conversation=conversation,
        )

    def documents(
        self, *, status: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The documents this user may know of (``status``: parsed, quarantined, spilled or
        damaged), as the records ``garrison docs ls --json`` prints."""
        from garrison.store.documents import Documents

        return Documents(self.store).list(status=status, limit=limit)

    def document(self, doc_id: str, *, elements: bool = False) -> dict[str, Any]:
        """One document (with its elements when asked); NotFound when not readable."""
        from garrison.store.documents import Documents

        return Documents(self.store).show(doc_id, elements=elements)

    def findings(
        self, *, kind: str | None = None, unresolved: bool = False, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Marking findings on documents this user may know of."""
        from garrison.store.documents import Documents

        return Documents(self.store).findings(kind=kind, unresolved=unresolved, limit=limit)

    def chunks(
        self, *, doc_id: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The chunks this user may read, in document and chunk order."""
        from garrison.store.derived import Chunks

        return Chunks(self.store).list(doc_id=doc_id, limit=limit)

    def datasets(self) -> list[DatasetVersion]:
        """The dataset versions this user may read."""
        from garrison.datasets import Datasets

        return Datasets(self.store).list()

    def dataset(self, ref: str) -> DatasetVersion:
        """One dataset version by ``NAME``, ``NAME@VERSION`` or id; NotFound when unreadable."""
        from garrison.datasets import Datasets

        return Datasets(self.store).get(ref)

    # -- changing ---------------------------------------------------------------------------

    def add_user(
        self,
        name: str,
        *,
        clearance: str,
        country: str = "USA",
        sci: Sequence[str] = (),
        sap: Sequence[str] = (),
        grants: Sequence[str] = (),
        roles: Sequence[str] = ("viewer",),
    ) -> Subject:
        """Add a user (admins and the system session), as ``garrison user add`` does."""
        from garrison.store.session import SubjectSpec

        spec = SubjectSpec(
            clearance=clearance,
            citizenship=country,
            sci=tuple(sci),
            sap=tuple(sap),
            grants=tuple(grants),
            roles=tuple(roles),
        )
        return self.store.add_user(name, spec)

    def ingest(
        self,
        *paths: str | Path,
        default_marking: str,
        source: str | None = None,
        workers: int = 1,
    ) -> IngestReport:
        """Ingest files and folders (stewards) as ``garrison ingest`` does: each file parsed in
        an isolated process, its markings decided, quarantined or spilled as the rules say."""
        from garrison.ingest.engine import IngestOptions, ingest_paths

        if not paths:
            raise InvalidInput("Give the files or folders to ingest.")
        options = IngestOptions(default_marking=default_marking, source=source, workers=workers)
        return ingest_paths(self.store, [str(p) for p in paths], options)

    def run(self, pipeline: str | Path | None = None, *, full: bool = False) -> RunReport:
        """Run a pipeline (stewards) over what this user may read: ``pipeline`` is a YAML file,
        YAML text (anything holding a newline), or None for the built-in pipeline."""
        from garrison.pipeline.executor import run_pipeline
        from garrison.pipeline.spec import load_pipeline, parse_pipeline

        if isinstance(pipeline, str) and "\n" in pipeline:
            spec = parse_pipeline(pipeline, source="<text>")
        else:
            spec = load_pipeline(pipeline)
        return run_pipeline(self.store, spec, full=full)
