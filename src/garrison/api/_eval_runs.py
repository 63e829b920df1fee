"""Evaluation runs over the API (added to the ``/v1/eval`` router by :func:`add_run_routes`).

``GET /v1/eval/runs`` (paged), ``GET /v1/eval/runs/{ref}``, ``GET /v1/eval/runs/{ref}/items``
(paged; only the item results the caller may read, each under its own marking), ``POST
/v1/eval/runs`` (start a run; answers with its summary when done -- meant for small suites),
``GET /v1/eval/runs/{ref}/report?format=json|stats|md|html|inspect`` and ``GET
/v1/eval/compare?a=&b=&metric=&gate=&margin=&upper_below=``. A run the caller does not dominate
answers 404 like a missing one; every response carries the join of its markings in the marking
header.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from garrison.api._marking import MARKING_HEADER, marked
from garrison.api._paging import CursorQuery, LimitQuery, marked_page, page_of
from garrison.evaluate import Runs, parse_system
from garrison.store.session import Session

__all__ = ["RunIn", "add_run_routes"]


Limit = LimitQuery
Cursor = CursorQuery


class RunIn(BaseModel):
    """A run to start: a suite and a system spec (as ``garrison eval run`` takes them)."""

    model_config = ConfigDict(extra="forbid")

    suite: str = Field(min_length=1, max_length=200, description="The suite, NAME or NAME@ID.")
    system: str = Field(
        min_length=1, max_length=500, description="assistant:k=8 | generator:NAME@V | ..."
    )
    subject: str | None = Field(None, max_length=128, description="Who the assistant acts as.")
    scorers: list[str] | None = Field(None, max_length=32, description="Scorer names.")
    concurrency: int = Field(4, ge=1, le=64)
    retries: int = Field(2, ge=0, le=10)
    timeout: float = Field(60.0, gt=0, le=3600)
    seed: int = Field(0, ge=0)


def add_run_routes(
    api: APIRouter,
    session_dependency: Callable[..., Session],
    page: Callable[[list[dict[str, Any]], int, int, int], dict[str, Any]],
    offset: Callable[[str | None], int],
) -> None:
    """The run endpoints; ``session_dependency`` gives the caller's session, ``page`` and
    ``offset`` are the router's paging helpers."""
    caller = Depends(session_dependency)

    @api.get("/runs", summary="Evaluation runs one dominates")
    def list_runs(
        limit: Limit = 50, cursor: Cursor = None, session: Session = caller
    ) -> JSONResponse:
        found = [s.to_dict() for s in Runs(session).list()]
        return marked_page(session, page_of(found, "eval-runs", limit, cursor))

    @api.get("/runs/{ref}", summary="One evaluation run")
    def show_run(ref: str, session: Session = caller) -> JSONResponse:
        return marked(session, Runs(session).get(ref).to_dict())

    @api.get("/runs/{ref}/items", summary="The item results of a run one may read")
    def run_items(
        ref: str, limit: Limit = 50, cursor: Cursor = None, session: Session = caller
    ) -> JSONResponse:
        start = offset(cursor)
        runs = Runs(session)
        summary = runs.get(ref)
        results = [r.to_dict() for r in runs.items(summary.id)]
        body = page(results[start : start + limit], len(results), start, limit)
        body["run"] = summary.ref
        return marked(session, body)

    @api.post("/runs", summary="Start an evaluation run (evaluators)", status_code=201)
    def start_run(body: RunIn, session: Session = caller) -> JSONResponse:
        spec = parse_system(body.system, subject=body.subject)
        summary = Runs(session).start(
            body.suite,
            spec,
            scorers=body.scorers or None,
            concurrency=body.concurrency,
            retries=body.retries,
            timeout=body.timeout,
            seed=body.seed,
        )
        response = marked(session, summary.to_dict())
        response.status_code = 201
        return response

    @api.get("/runs/{ref}/report", summary="A run's marked report")
    def run_report(
        ref: str,
        format: Literal["json", "stats", "md", "html", "inspect"] = "json",
        session: Session = caller,
    ) -> Response:
        from garrison.evaluate import report as rendering

        runs = Runs(session)
        report = runs.report(ref)
        banner = report.marking.banner()
        headers = {MARKING_HEADER: banner}
        if format == "html":
            return Response(rendering.render_html(report), media_type="text/html", headers=headers)
        if format == "md":
            return Response(
                rendering.render_markdown(report), media_type="text/markdown", headers=headers
            )
        if format == "json":
            data: dict[str, Any] = rendering.report_json(report)
        elif format == "stats":
            data = rendering.stats_only(report)
        else:
            data = rendering.inspect_log(report, runs.samples(ref))
        return Response(
            json.dumps(data, default=str), media_type="application/json", headers=headers
        )

    @api.get("/compare", summary="Paired comparison of two runs, with the gate's verdicts")
    def compare_runs(
        a: Annotated[str, Query(max_length=64)],
        b: Annotated[str, Query(max_length=64)],
        metric: Annotated[list[str] | None, Query()] = None,
        gate: Literal["non-inferiority", "superiority"] = "non-inferiority",
        margin: Annotated[float, Query(ge=0.0)] = 0.0,
        upper_below: Annotated[float | None, Query(gt=0.0, le=1.0)] = None,
        session: Session = caller,
    ) -> JSONResponse:
        report = Runs(session).compare(
            a, b, metrics=metric or None, mode=gate, margin=margin, upper_below=upper_below
        )
        banner = report.marking.banner()
        body: dict[str, Any] = {
            "marking": banner,
            "a": report.a.run_id,
            "b": report.b.run_id,
            "comparisons": [c.to_json() for c in report.comparisons],
            "verdicts": [v.to_json() for v in report.verdicts],
            "passed": all(v.passed for v in report.verdicts),
        }
        return JSONResponse(body, headers={MARKING_HEADER: banner})
