"""The FastAPI application: thin routes over the library, one session per request.

Every route authenticates the caller, opens a session as that subject, calls the library (which
enforces roles and markings and audits the read) and marks the response with the join of what
it contains -- in the ``marking`` field and the ``X-Garrison-Marking`` header.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from garrison import __version__
from garrison.api._ask import EVENT_STREAM, AskIn, AskOut, answer_body, streamed
from garrison.api._auth import bearer_scheme, session_for
from garrison.api._docs import install_docs
from garrison.api._errors import ERROR_RESPONSES, ErrorBody, install_handlers
from garrison.api._eval import router as eval_router
from garrison.api._label import router as label_router
from garrison.api._login_limit import LoginLimiter
from garrison.api._marking import MARKING_HEADER, marked
from garrison.api._metrics import HttpMetrics, MetricsMiddleware
from garrison.api._paging import CursorQuery, LimitQuery, PagedList, marked_page, page_of
from garrison.api._predict import MAX_TEXT_CHARS, MAX_TEXTS, BodyLimit, predict_texts
from garrison.core.errors import InvalidInput
from garrison.datasets import Datasets
from garrison.models import Models
from garrison.search import FILTER_KEYS, MAX_K, search
from garrison.search._search import MAX_QUERY
from garrison.security.audit import AuditAction
from garrison.store.derived import Lineage
from garrison.store.documents import Documents
from garrison.store.listings import (
    chunks_page,
    document_markings,
    documents_page,
    findings_page,
)
from garrison.store.paging import DEFAULT_LIMIT, MAX_LIMIT, Page, PageSpec
from garrison.store.session import Session
from garrison.store.workspace import Workspace

__all__ = ["DEFAULT_WORKER_THREADS", "WORKER_THREADS_ENV", "create_app", "worker_threads"]

#: The environment variable that sets how many requests the server works on at once.
WORKER_THREADS_ENV = "GARRISON_WORKER_THREADS"
#: Worker threads for sync routes unless :data:`WORKER_THREADS_ENV` says otherwise.
DEFAULT_WORKER_THREADS = 40


def worker_threads() -> int:
    """How many sync requests the server works on at once (:data:`WORKER_THREADS_ENV`, 1 to
    256; :data:`DEFAULT_WORKER_THREADS` when unset). InvalidInput for anything else."""
    raw = os.environ.get(WORKER_THREADS_ENV, "").strip()
    if not raw:
        return DEFAULT_WORKER_THREADS
    if not raw.isdigit() or not 1 <= int(raw) <= 256:
        raise InvalidInput(f"{WORKER_THREADS_ENV} is a whole number from 1 to 256, not {raw!r}.")
    return int(raw)


class Marked(BaseModel):
    """A marked object: its fields plus ``marking``, the join of everything it contains."""

    model_config = ConfigDict(extra="allow")
    marking: str


_DOC_ID = "The document's id: present only when the caller may read the whole document."
_SEQ = (
    "Position in the document: as stored for readers of the document, otherwise the position "
    "among the document's records the caller may read."
)
_SECTION = "The headings the caller may read (the others are left out, not blanked)."


class ChunkItem(BaseModel):
    """A chunk as the caller may see it."""

    model_config = ConfigDict(extra="allow")
    id: str
    doc_id: str | None = Field(None, description=_DOC_ID)
    seq: int = Field(description=_SEQ)
    text: str
    marking: str
    token_count: int | None = None
    element_ids: list[str] = Field(description="The readable elements it was built from.")
    section_path: list[str] = Field(description=_SECTION)
    embedding_model: str | None = None


class ChunkList(PagedList):
    """A page of readable chunks and the join of their markings."""

    items: list[ChunkItem]  # type: ignore[assignment]


class SearchHitItem(BaseModel):
    """One ranked chunk."""

    model_config = ConfigDict(extra="allow")
    chunk_id: str
    doc_id: str | None = Field(None, description=_DOC_ID)
    score: float
    snippet: str
    marking: str
    locator: dict[str, Any] = Field(
        description="Where in the document (empty when the document is not readable)."
    )
    section_path: list[str] = Field(description=_SECTION)


class SearchOut(BaseModel):
    """Hits best first, with totals and facets over readable chunks only."""

    model_config = ConfigDict(extra="allow")
    query: str
    k: int
    marking: str
    mode: str = Field(
        "text",
        description="hybrid (full text and vectors), or text: no readable chunk has a vector "
        "from a model the caller may use.",
    )
    notes: list[str] = Field(default_factory=list, description="Why the search is text only.")
    total: int
    facets: dict[str, dict[str, int]]
    hits: list[SearchHitItem]


class PredictIn(BaseModel):
    """Texts to classify and the marking they carry."""

    model_config = ConfigDict(extra="forbid")
    texts: list[str] = Field(
        description=f"1 to {MAX_TEXTS} texts, each at most {MAX_TEXT_CHARS} characters.",
        json_schema_extra={
            "minItems": 1,
            "maxItems": MAX_TEXTS,
            "items": {"type": "string", "maxLength": MAX_TEXT_CHARS},
        },
    )
    marking: str = Field(
        "UNCLASSIFIED",
        max_length=500,
        description="The texts' marking: one the caller dominates, not above system high.",
    )


class PredictionItem(BaseModel):
    """One text's prediction, marked with the join of the texts' marking and the model's."""

    label: str
    probability: float
    probabilities: dict[str, float]
    marking: str


class PredictOut(BaseModel):
    """The model used and one prediction per text, in order."""

    model: dict[str, Any]
    predictions: list[PredictionItem]
    marking: str


_MARKED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Marked content",
        "headers": {
            MARKING_HEADER: {
                "description": "The join of every marking in the response.",
                "schema": {"type": "string"},
            }
        },
    }
}


class _WorkspaceHolder:
    """Opens the workspace on first use (so the app can be built without one) and closes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._workspace: Workspace | None = None
        self._lock = threading.Lock()

    def get(self) -> Workspace:
        with self._lock:
            if self._workspace is None:
                self._workspace = Workspace.open(self.path)
            return self._workspace

    def opened(self) -> bool:
        """Whether the workspace is open (without opening it)."""
        with self._lock:
            return self._workspace is not None

    def close(self) -> None:
        with self._lock:
            if self._workspace is not None:
                self._workspace.close()
                self._workspace = None


def current_session(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Session:
    """The dependency every authenticated route takes: a session as the calling subject."""
    holder: _WorkspaceHolder = request.app.state.workspace
    return session_for(holder.get(), request, credentials)


SessionDep = Annotated[Session, Depends(current_session)]


def create_app(workspace_path: Path | str) -> FastAPI:
    """The REST API over the workspace at ``workspace_path`` (opened on the first request)."""
    holder = _WorkspaceHolder(Path(workspace_path))
    metrics = HttpMetrics()
    limiter = LoginLimiter()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Sync routes run in anyio's worker threads. Fewer did not serve the API bench faster,
        # and let a few slow requests (ask) hold up the rest (bench/results/api.md).
        anyio.to_thread.current_default_thread_limiter().total_tokens = worker_threads()
        yield
        metrics.flush()
        try:
            if holder.opened():
                limiter.flush(holder.get())  # the current window's aggregated failed logins
        finally:
            holder.close()  # a signed audit checkpoint on shutdown

    app = FastAPI(
        title="Garrison",
        version=__version__,
        description=(
            "Read access to a Garrison workspace. Every response is limited to what the "
            "authenticated subject may read and carries the marking of what it contains."
        ),
        lifespan=lifespan,
        docs_url=None,  # served from the package by install_docs: no CDN
        redoc_url=None,
    )
    install_docs(app)
    app.state.workspace = holder
    # Shared with the web UI (garrison.web.mount_ui): one count of failed logins per address.
    app.state.login_limiter = limiter
    # Request counts and timings only: no access log names a path, an id or a query.
    app.state.metrics = metrics
    app.add_middleware(BodyLimit)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    install_handlers(app)

    router = APIRouter(prefix="/v1", responses={**ERROR_RESPONSES, **_MARKED})

    @router.get("/documents", response_model=PagedList, summary="Documents")
    def list_documents(
        session: SessionDep,
        status: Annotated[
            Literal["parsed", "quarantined", "spilled", "damaged"] | None,
            Query(
                description="Only documents in this state "
                "(quarantined, spilled, damaged: stewards)."
            ),
        ] = None,
        q: Annotated[
            str | None,
            Query(max_length=200, description="Only those whose file name or title has this."),
        ] = None,
        limit: LimitQuery = DEFAULT_LIMIT,
        cursor: CursorQuery = None,
    ) -> JSONResponse:
        spec = PageSpec(limit=limit, cursor=cursor)
        return marked_page(session, documents_page(session, spec, status=status, q=q or None))

    @router.get("/documents/{doc_id}", response_model=Marked, summary="One document")
    def show_document(
        session: SessionDep,
        doc_id: str,
        elements: Annotated[bool, Query(description="Include the readable elements.")] = False,
    ) -> JSONResponse:
        return marked(session, Documents(session).show(doc_id, elements=elements))

    @router.get("/chunks", response_model=ChunkList, summary="Chunks")
    def list_chunks(
        session: SessionDep,
        doc_id: Annotated[str | None, Query(description="Only this document's chunks.")] = None,
        limit: LimitQuery = DEFAULT_LIMIT,
        cursor: CursorQuery = None,
    ) -> JSONResponse:
        spec = PageSpec(limit=limit, cursor=cursor)
        return marked_page(session, chunks_page(session, spec, doc_id=doc_id))

    @router.get("/search", response_model=SearchOut, summary="Search")
    def search_chunks(
        session: SessionDep,
        q: Annotated[
            str,
            Query(max_length=MAX_QUERY, pattern=r"\S", description="What to look for (words)."),
        ],
        k: Annotated[int, Query(ge=1, le=MAX_K, description="How many hits.")] = 10,
        filter: Annotated[
            list[str] | None,
            Query(description="KEY=VALUE, repeatable (doc, source, media_type, ...)."),
        ] = None,
        label: Annotated[
            list[str] | None,
            Query(
                description="NAME=LABEL, repeatable: only chunks a readable prediction of that "
                "name labels so (on the chunk or one of its elements)."
            ),
        ] = None,
    ) -> JSONResponse:
        filters = _parse_filters(filter or [])
        result = search(session, q, k=k, filters=filters, labels=label or ())
        return marked(session, result.to_dict())

    @router.post(
        "/ask",
        response_model=AskOut,
        summary="Ask the assistant",
        responses={
            200: {**_MARKED[200], "content": {EVENT_STREAM: {"schema": {"type": "string"}}}}
        },
    )
    def ask_question(session: SessionDep, body: AskIn, request: Request) -> Response:
        answer = marked(session, answer_body(session, body))
        if EVENT_STREAM in request.headers.get("accept", ""):
            return streamed(answer)
        return answer

    @router.get("/lineage/{record_id}", response_model=Marked, summary="Lineage")
    def lineage(session: SessionDep, record_id: str) -> JSONResponse:
        return marked(session, Lineage(session).of(record_id))

    @router.get("/findings", response_model=PagedList, summary="Findings")
    def findings(
        session: SessionDep,
        kind: Annotated[str | None, Query(description="Only findings of this kind.")] = None,
        unresolved: Annotated[bool, Query(description="Only unresolved findings.")] = False,
        limit: LimitQuery = DEFAULT_LIMIT,
        cursor: CursorQuery = None,
    ) -> JSONResponse:
        spec = PageSpec(limit=limit, cursor=cursor)
        page = findings_page(session, spec, kind=kind, unresolved=unresolved)
        # A finding is about its document: the listing is marked with those documents' join.
        doc_markings = document_markings(session, (f["doc_id"] for f in page.items))
        extra = [m for m in (doc_markings.get(f["doc_id"]) for f in page.items) if m]
        return marked_page(session, page, extra=extra)

    @router.get("/datasets", response_model=PagedList, summary="Datasets")
    def list_datasets(
        session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
    ) -> JSONResponse:
        versions = [v.to_dict() for v in Datasets(session).list()]
        return marked_page(session, page_of(versions, "datasets", limit, cursor))

    @router.get("/datasets/{ref}", response_model=Marked, summary="One dataset version")
    def show_dataset(session: SessionDep, ref: str) -> JSONResponse:
        return marked(session, Datasets(session).get(ref).to_dict())

    @router.get("/models", response_model=PagedList, summary="Model versions")
    def list_models(
        session: SessionDep,
        kind: Annotated[
            Literal["embedder", "classifier", "generator"] | None,
            Query(description="Only versions of this kind."),
        ] = None,
        limit: LimitQuery = DEFAULT_LIMIT,
        cursor: CursorQuery = None,
    ) -> JSONResponse:
        # Newest first, readable only.
        versions = [v.to_dict(manifest=False) for v in Models(session).list(kind=kind)]
        return marked_page(session, page_of(versions, "models", limit, cursor))

    @router.get("/models/{ref}", response_model=Marked, summary="One model version")
    def show_model(session: SessionDep, ref: str) -> JSONResponse:
        return marked(session, Models(session).get(ref).to_dict())

    @router.post(
        "/models/{ref}/predict",
        response_model=PredictOut,
        summary="Classify texts with a classifier",
        responses={413: {"model": ErrorBody, "description": "The request body is too large"}},
    )
    def predict(session: SessionDep, ref: str, body: PredictIn) -> JSONResponse:
        return marked(session, predict_texts(session, ref, body.texts, body.marking))

    @router.get("/users", response_model=PagedList, summary="Users (admin)")
    def list_users(
        session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
    ) -> JSONResponse:
        users = [u.to_dict() for u in session.list_users()]  # by name
        page = page_of(users, "users", limit, cursor, key="name")
        session.audit(AuditAction.USER_LIST, details={"count": len(page.items)})
        return marked_page(session, page)

    @router.get("/audit", response_model=PagedList, summary="Audit log (admin)")
    def audit_tail(
        session: SessionDep,
        n: Annotated[
            int | None,
            Query(ge=0, le=MAX_LIMIT, description="The last n events (the same as limit)."),
        ] = None,
        limit: LimitQuery = DEFAULT_LIMIT,
        cursor: CursorQuery = None,
    ) -> JSONResponse:
        # The first page is the newest events; next_cursor goes back in time. Each page is in
        # log order (oldest first), as the log reads.
        if n == 0:
            page = Page[dict[str, Any]]([], 0)
        else:
            events = [e.model_dump(mode="json") for e in session.audit_tail(None)]
            size = n if n is not None else limit
            page = page_of(events, "audit", size, cursor, key="seq", desc=True)
            page.items.reverse()
        body = page.to_dict()
        # The audit log is marked at system high, whatever its events name.
        banner = session.workspace.system_high.banner()
        body["marking"] = banner
        return JSONResponse(body, headers={MARKING_HEADER: banner})

    @router.get("/me", response_model=Marked, summary="The calling subject")
    def me(session: SessionDep) -> JSONResponse:
        subject = session.get_user(session.subject.name)
        session.audit(AuditAction.USER_SHOW, object_id=subject.name)
        return marked(session, subject.to_dict())

    @app.get("/v1/health", status_code=204, summary="Liveness (no authentication)")
    def health() -> Response:
        return Response(status_code=204)

    app.include_router(router)
    app.include_router(eval_router)
    app.include_router(label_router, responses={**ERROR_RESPONSES, **_MARKED})
    return app


def _parse_filters(values: list[str]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidInput(f"A filter reads KEY=VALUE (keys: {', '.join(FILTER_KEYS)}).")
        filters[key.strip()] = value
    return filters
