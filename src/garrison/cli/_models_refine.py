"""``garrison model train embedder``: refine a registered embedder on marked pairs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session
from garrison.cli._models import train_app
from garrison.cli._output import emit_json, emit_table, err_console, out_console

if TYPE_CHECKING:
    from garrison.models._finetune import TrainProgress


class _Bar:
    """A progress bar with an ETA on stderr when it is a terminal; nothing otherwise."""

    def __init__(self) -> None:
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> _Bar:
        if sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            )
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)

    def __call__(self, p: TrainProgress) -> None:
        if self.progress is None:
            return
        if self.task is None:
            self.task = self.progress.add_task(
                "train", total=p.total, completed=p.resumed_from, loss="-"
            )
        self.progress.update(
            self.task,
            completed=p.step,
            description=f"epoch {p.epoch}/{p.epochs}",
            loss=f"{p.loss:.4f}",
        )


@train_app.command("embedder")
def train_embedder_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the refined embedder to register.")],
    base: Annotated[
        str, typer.Option("--base", help="The registered embedder to refine (NAME[@VERSION]).")
    ],
    pairs: Annotated[
        str | None,
        typer.Option(
            "--pairs", help="Dataset version DS[@VERSION] holding (query, passage) pairs."
        ),
    ] = None,
    mine: Annotated[
        bool,
        typer.Option(
            "--mine", help="Mine pairs (heading/section, title/body, subject/body) from the corpus."
        ),
    ] = False,
    query_field: Annotated[
        str, typer.Option("--query-field", help="The pairs' query field (with --pairs).")
    ] = "query",
    passage_field: Annotated[
        str, typer.Option("--passage-field", help="The pairs' passage field (with --pairs).")
    ] = "passage",
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the training pairs.")] = 1,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Pairs per batch (in-batch negatives).")
    ] = 16,
    learning_rate: Annotated[
        float, typer.Option("--learning-rate", help="Peak learning rate (AdamW).")
    ] = 2e-5,
    seed: Annotated[int, typer.Option("--seed", help="Seed: same inputs, same weights.")] = 0,
    max_marking: Annotated[
        str | None,
        typer.Option("--max-marking", help="Use only pairs this marking dominates."),
    ] = None,
    max_minutes: Annotated[
        float | None,
        typer.Option("--max-minutes", help="Stop (and keep a checkpoint) after this long."),
    ] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Refine an embedder on (query, passage) pairs and register it (stewards, evaluators).

    Reports recall@10 and MRR on held-out pairs for the base and the refined model, each with
    a 95% bootstrap interval. A stopped run (--max-minutes, Ctrl-C) resumes when run again.
    """
    from garrison.models._refine import train_embedder

    with open_session(ctx, workspace, as_user) as session, _Bar() as bar:
        result = train_embedder(
            session,
            name,
            base,
            pairs=pairs,
            mine=mine,
            query_field=query_field,
            passage_field=passage_field,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            max_marking=max_marking,
            max_minutes=max_minutes,
            progress=bar,
        )
    data = result.to_dict()
    if as_json:
        emit_json(data)
        return
    model = data["model"]
    out_console.print(
        f"Registered {model['name']}@{model['id'][:12]}  v{model['version']}  embedder  "
        f"[{model['marking']}]  from {data['base']['ref']} on {data['pairs']['train']} pairs; "
        f"measured on {data['pairs']['held_out']} held-out queries over "
        f"{data['candidates']} passages.",
        markup=False,
    )
    from garrison.models import format_interval

    metrics = data["metrics"]
    emit_table(
        ["metric", "base", "refined"],
        [
            (m, format_interval(metrics["base"][m]), format_interval(metrics["refined"][m]))
            for m in metrics["refined"]
        ],
    )
