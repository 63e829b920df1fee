"""``garrison search``: hybrid search over the chunks the acting subject may read."""

from __future__ import annotations

from typing import Annotated

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session
from garrison.cli._output import emit_json, emit_table, highlighted, out_console
from garrison.core.errors import InvalidInput
from garrison.search import FILTER_KEYS, MAX_K, search

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``search`` to the top-level app."""
    app.command("search")(search_command)


def _parse_filters(values: list[str] | None) -> dict[str, str]:
    filters: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidInput(f"A filter reads KEY=VALUE (keys: {', '.join(FILTER_KEYS)}).")
        filters[key.strip()] = value
    return filters


def search_command(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for (words; no query syntax).")],
    k: Annotated[int, typer.Option("-k", min=1, max=MAX_K, help="How many hits (1 to 1000).")] = 10,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="KEY=VALUE, repeatable: doc, source, media_type, language, max_marking, "
            "ingested_from, ingested_to.",
        ),
    ] = None,
    labels: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            help="NAME=LABEL, repeatable: only chunks a prediction you may read labels so "
            "(the classify stage's, on the chunk or one of its elements).",
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search the chunks you may read (full text and vectors, fused)."""
    chosen = _parse_filters(filters)
    with open_session(ctx, workspace, as_user) as session:
        result = search(session, query, k=k, filters=chosen, labels=labels or ())
        if as_json:
            emit_json(result.to_dict())  # snippets keep their raw **highlights**
            return
        from garrison.store.prefixes import document_names

        # Titles only of documents the reader may read (a hit carries doc_id only then).
        names = document_names(session, (h.doc_id for h in result.hits if h.doc_id))
    out_console.print(result.marking, markup=False)
    emit_table(
        ["score", "marking", "document", "snippet"],
        [
            (
                f"{h.score:.4f}",
                h.marking,
                names.get(h.doc_id or "") or (h.doc_id or "")[:16],
                highlighted(h.snippet),
            )
            for h in result.hits
        ],
    )
    out_console.print(
        f"{len(result.hits)} hits; {result.total} readable chunks match the words.", markup=False
    )
    for note in result.notes:
        out_console.print(note, markup=False)
    for finding in result.findings:
        out_console.print(f"compilation: {finding['detail']}", markup=False)
    out_console.print(result.marking, markup=False)
