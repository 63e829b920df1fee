"""``garrison eval``: evaluation suites (``eval suite ...``); runs register beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session
from garrison.cli._output import emit_json, out_console
from garrison.cli._paging import CursorOpt, PageLimitOpt, emit_listing, page_list, page_spec
from garrison.core.errors import InvalidInput

__all__ = ["app", "register", "suite_app"]

app = typer.Typer(
    help="Test and evaluation: suites of marked items, runs, reports.", no_args_is_help=True
)
suite_app = typer.Typer(
    help="Evaluation suites: create, generate, list, show, export.", no_args_is_help=True
)
app.add_typer(suite_app, name="suite")


def register(root: typer.Typer) -> None:
    """Add the ``eval`` commands to the top-level app."""
    root.add_typer(app, name="eval")


def _summary(data: dict[str, Any]) -> str:
    holdout = "  holdout" if data["holdout"] else ""
    return (
        f"{data['ref']}  v{data['version']}  [{data['marking']}]  {data['kind']}  "
        f"{data['count']} items{holdout}  by {data['created_by']} at {data['created_at']}"
    )


@suite_app.command("create")
def suite_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Suite name.")],
    from_dataset: Annotated[
        str | None, typer.Option("--from-dataset", help="A dataset version, DS@V.")
    ] = None,
    from_jsonl: Annotated[
        Path | None, typer.Option("--from-jsonl", help="A JSONL file, one item a line.")
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="qa, classification, retrieval, extraction or generation."),
    ] = None,
    text_field: Annotated[
        str, typer.Option("--text-field", help="Record field holding the text (dataset).")
    ] = "text",
    label_field: Annotated[
        str | None, typer.Option("--label-field", help="Record field holding the label.")
    ] = None,
    marking: Annotated[
        str | None,
        typer.Option("--marking", help="Marking of lines without one (joined with theirs)."),
    ] = None,
    holdout: Annotated[
        bool, typer.Option("--holdout", help="Items shown and exported to evaluators only.")
    ] = False,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a suite version from a dataset version or a JSONL file (evaluators)."""
    from garrison.evaluate._suites import Suites

    if (from_dataset is None) == (from_jsonl is None):
        raise InvalidInput("Give exactly one of --from-dataset DS@V and --from-jsonl FILE.")
    if kind is None:
        raise InvalidInput("Give the suite's --kind.")
    with open_session(ctx, workspace, as_user) as session:
        suites = Suites(session)
        if from_dataset is not None:
            if marking is not None:
                raise InvalidInput("--marking is for JSONL files: dataset records carry theirs.")
            if not label_field:
                raise InvalidInput("A suite from a dataset needs --label-field.")
            version = suites.from_dataset(
                name,
                from_dataset,
                kind=kind,
                text_field=text_field,
                label_field=label_field,
                holdout=holdout,
            )
        else:
            assert from_jsonl is not None
            version = suites.from_jsonl(name, from_jsonl, kind, marking, holdout=holdout)
    data = version.to_dict()
    if as_json:
        emit_json(data)
    else:
        out_console.print(_summary(data), markup=False)


@suite_app.command("generate")
def suite_generate(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Suite name.")],
    from_docs: Annotated[
        bool, typer.Option("--from-docs", help="Make QA items from the indexed documents.")
    ] = False,
    documents: Annotated[
        list[str] | None, typer.Option("--doc", help="Only this document id (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many items at most.")] = 50,
    generator: Annotated[
        str | None, typer.Option("--generator", help="A registered generator, NAME@V.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the draw.")] = 0,
    unanswerable: Annotated[
        float, typer.Option("--unanswerable", help="Share of unanswerable questions.")
    ] = 0.2,
    holdout: Annotated[
        bool, typer.Option("--holdout", help="Items shown and exported to evaluators only.")
    ] = False,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate a QA suite from the documents the acting subject may read (evaluators)."""
    from garrison.evaluate._suites import Suites

    if not from_docs:
        raise InvalidInput("Say what to generate from: --from-docs.")
    with open_session(ctx, workspace, as_user) as session:
        version = Suites(session).generate_from_docs(
            name,
            documents=documents or None,
            limit=limit,
            generator=generator,
            seed=seed,
            unanswerable=unanswerable,
            holdout=holdout,
        )
    data = version.to_dict()
    if as_json:
        emit_json(data)
    else:
        out_console.print(_summary(data), markup=False)


@suite_app.command("ls")
def suite_ls(
    ctx: typer.Context,
    limit: PageLimitOpt = None,
    cursor: CursorOpt = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the suite versions with an item the acting subject may read."""
    from garrison.evaluate._suites import Suites

    with open_session(ctx, workspace, as_user) as session:
        versions = [v.to_dict() for v in Suites(session).list()]
    spec = page_spec(limit, cursor)
    emit_listing(
        page_list(versions, "eval-suites", spec) if spec else versions,
        ["ref", "version", "marking", "kind", "items", "holdout", "created_by", "created_at"],
        lambda v: (
            v["ref"],
            v["version"],
            v["marking"],
            v["kind"],
            v["count"],
            "yes" if v["holdout"] else "",
            v["created_by"],
            v["created_at"],
        ),
        as_json=as_json,
    )


def _item_line(item: dict[str, Any]) -> str:
    shown = next(iter(item["input"].values()), "")
    expected = item["expected"]
    target = next(
        (
            expected[k]
            for k in ("answer", "label", "reference", "relevant", "json")
            if k in expected
        ),
        "",
    )
    if expected.get("answerable") is False:
        target = "(unanswerable)"
    return (
        f"  {item['position']:>4}  ({item['marking']})  {str(shown)[:80]!s}  ->  {str(target)[:60]}"
    )


@suite_app.command("show")
def suite_show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@ID-PREFIX or a full id.")],
    items: Annotated[bool, typer.Option("--items", help="Show the items too.")] = False,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many items.")] = None,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many items.")] = 0,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One suite version: its summary, and with --items the items one may read."""
    from garrison.evaluate._suites import Suites

    with open_session(ctx, workspace, as_user) as session:
        suites = Suites(session)
        version = suites.get(ref)
        shown = (
            [i.to_dict() for i in suites.read_items(version.id, offset=offset, limit=limit)]
            if items
            else None
        )
    data = version.to_dict()
    if as_json:
        if shown is not None:
            data["items"] = shown
            data["offset"] = offset
        emit_json(data)
        return
    out_console.print(data["marking"], markup=False)
    out_console.print(_summary(data), markup=False)
    out_console.print(f"  source: {data['source'].get('type', 'items')}", markup=False)
    for item in shown or []:
        out_console.print(_item_line(item), markup=False)
    out_console.print(data["marking"], markup=False)


@suite_app.command("export")
def suite_export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@ID-PREFIX or a full id.")],
    out: Annotated[Path, typer.Option("--out", help="The JSONL file to write (must be new).")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export the items of a suite one may read as JSONL, each with its marking (evaluators)."""
    from garrison.evaluate._suites import Suites

    with open_session(ctx, workspace, as_user) as session:
        result = Suites(session).export(ref, out)
    if as_json:
        emit_json(result)
    else:
        out_console.print(
            f"Exported {result['items']} items of {result['ref']} [{result['marking']}] "
            f"to {result['out']}.",
            markup=False,
        )
