"""Evaluation over the API: ``/v1/eval/...``.

Suites (:func:`add_suite_routes`): ``GET /v1/eval/suites`` (paged), ``GET /v1/eval/suites/{ref}``,
``GET /v1/eval/suites/{ref}/items`` (paged; holdout items to evaluators only) and
``POST /v1/eval/suites`` (from JSONL text in the body, or from a dataset version). Every
response is limited to the items the caller may read and carries the join of their markings in
the marking header; a suite with no readable item answers 404 like a missing one.

Each group of endpoints is added by its own function onto :data:`router`, which the app
includes once.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field, model_validator

from garrison.api._auth import bearer_scheme, session_for
from garrison.api._errors import ERROR_RESPONSES
from garrison.api._marking import MARKING_HEADER, marked
from garrison.api._paging import DEFAULT_LIMIT, CursorQuery, LimitQuery, marked_page, page_of
from garrison.core.errors import InvalidInput
from garrison.evaluate._suite_items import KINDS
from garrison.evaluate._suites import Suites
from garrison.store.session import Session

__all__ = ["SuiteIn", "add_suite_routes", "router"]


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

router = APIRouter(prefix="/v1/eval", responses={**ERROR_RESPONSES, **_MARKED})


def eval_session(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Session:
    """A session as the calling subject (the app's workspace holder opens the workspace)."""
    return session_for(request.app.state.workspace.get(), request, credentials)


EvalSession = Annotated[Session, Depends(eval_session)]


def _cursor(offset: int) -> str:
    raw = json.dumps({"offset": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _offset(cursor: str | None) -> int:
    """The position an opaque cursor stands for (InvalidInput for one not given by the API)."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        offset = json.loads(raw)["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidInput("The cursor is not one this listing gave.") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidInput("The cursor is not one this listing gave.")
    return offset


def _page(items: list[dict[str, Any]], total: int, start: int, limit: int) -> dict[str, Any]:
    # Offsets page the immutable lists only: a suite version's items, a finished run's results.
    more = start + len(items) < total
    return {
        "items": items,
        "total": total,
        "next_cursor": _cursor(start + limit) if more and items else None,
    }


# -- suites ------------------------------------------------------------------------------------


class SuiteIn(BaseModel):
    """A new suite: from JSONL text (one item a line) or from a dataset version."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, description="The suite's name.")
    kind: Literal["qa", "classification", "retrieval", "extraction", "generation"] = Field(
        description="What its items are: " + ", ".join(KINDS) + "."
    )
    jsonl: str | None = Field(
        None, description="JSONL text, one item a line, each with its marking."
    )
    marking: str | None = Field(
        None, max_length=500, description="Marking of lines without one (joined with theirs)."
    )
    dataset: str | None = Field(None, max_length=200, description="A dataset version, DS@V.")
    text_field: str = Field("text", max_length=128, description="The records' text field.")
    label_field: str | None = Field(None, max_length=128, description="The records' label field.")
    holdout: bool = Field(False, description="Items shown and exported to evaluators only.")

    @model_validator(mode="after")
    def _one_source(self) -> SuiteIn:
        if (self.jsonl is None) == (self.dataset is None):
            raise ValueError("give exactly one of jsonl and dataset")
        return self


def add_suite_routes(api: APIRouter) -> None:
    """The suite endpoints."""

    @api.get("/suites", summary="Evaluation suites")
    def list_suites(
        session: EvalSession, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
    ) -> JSONResponse:
        versions = [v.to_dict() for v in Suites(session).list()]
        return marked_page(session, page_of(versions, "eval-suites", limit, cursor))

    @api.get("/suites/{ref}", summary="One evaluation suite")
    def show_suite(session: EvalSession, ref: str) -> JSONResponse:
        return marked(session, Suites(session).get(ref).to_dict())

    @api.get("/suites/{ref}/items", summary="The items of a suite one may read")
    def suite_items(
        session: EvalSession,
        ref: str,
        limit: LimitQuery = DEFAULT_LIMIT,
        cursor: CursorQuery = None,
    ) -> JSONResponse:
        start = _offset(cursor)
        suites = Suites(session)
        version = suites.get(ref)
        items = [i.to_dict() for i in suites.read_items(version.id, offset=start, limit=limit)]
        body = _page(items, version.count, start, limit)
        body["suite"] = version.ref
        return marked(session, body)

    @api.post("/suites", summary="Create an evaluation suite (evaluators)", status_code=201)
    def create_suite(session: EvalSession, body: SuiteIn) -> JSONResponse:
        suites = Suites(session)
        if body.dataset is not None:
            if body.marking is not None:
                raise InvalidInput("A marking is for JSONL text: dataset records carry theirs.")
            if not body.label_field:
                raise InvalidInput("A suite from a dataset needs label_field.")
            version = suites.from_dataset(
                body.name,
                body.dataset,
                kind=body.kind,
                text_field=body.text_field,
                label_field=body.label_field,
                holdout=body.holdout,
            )
        else:
            assert body.jsonl is not None
            version = suites.from_jsonl_text(
                body.name, body.jsonl, body.kind, body.marking, holdout=body.holdout
            )
        response = marked(session, version.to_dict())
        response.status_code = 201
        return response


add_suite_routes(router)


def _add_runs() -> None:
    from garrison.api._eval_runs import add_run_routes

    add_run_routes(router, eval_session, _page, _offset)


_add_runs()
