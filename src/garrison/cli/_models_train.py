"""``garrison model train classifier`` and ``garrison model predict``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session
from garrison.cli._models import RefArg, app, train_app
from garrison.cli._output import emit_json, emit_table, err_console, out_console
from garrison.core.errors import InvalidInput
from garrison.models.embedding import MINILM

#: What a training's phases are called on its progress bar.
PHASES = {
    "embed": "Embedding texts",
    "fine-tune": "Fine-tuning the body",
    "select": "Choosing C on validation",
    "evaluate": "Measuring on test",
}


class _Bar:
    """A Rich progress bar with an ETA on stderr, one task per training phase."""

    def __init__(self, enabled: bool) -> None:
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}
        if enabled and err_console.is_terminal:
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
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            )

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.progress is None:
            return
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(PHASES.get(phase, phase), total=total)
        self.progress.update(self.tasks[phase], completed=done, total=total)


def _interval(metric: dict[str, Any] | None) -> tuple[str, str]:
    if metric is None:
        return "n/a", ""
    return f"{metric['value']:.3f}", f"[{metric['low']:.3f}, {metric['high']:.3f}]"


def _metric_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = [
        ("accuracy", *_interval(metrics["accuracy"])),
        ("macro-F1", *_interval(metrics["macro_f1"])),
        ("calibration error (ECE)", *_interval(metrics["ece"])),
    ]
    for label, entry in metrics["per_class"].items():
        rows.append((f"precision {label} (n={entry['support']})", *_interval(entry["precision"])))
        rows.append((f"recall {label} (n={entry['support']})", *_interval(entry["recall"])))
    return rows


@train_app.command("classifier")
def train_classifier_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the classifier.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset DS or DS@VERSION.")],
    text_field: Annotated[
        str, typer.Option("--text-field", help="Field the model reads: fields.COL, COL or text.")
    ],
    label_field: Annotated[
        str, typer.Option("--label-field", help="Field holding the label: fields.COL or COL.")
    ],
    trainer: Annotated[str, typer.Option("--trainer", help="logreg or setfit.")] = "logreg",
    embedder: Annotated[
        str, typer.Option("--embedder", help="Registered embedder to build on.")
    ] = MINILM,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random choice.")] = 0,
    max_marking: Annotated[
        str | None,
        typer.Option("--max-marking", help="Learn only from records this marking dominates."),
    ] = None,
    max_minutes: Annotated[
        float | None,
        typer.Option("--max-minutes", min=0, help="Stop at this limit with the best so far."),
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="SetFit fine-tuning epochs.")] = 1,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a classifier on a dataset version and report its test metrics (stewards,
    evaluators)."""
    from garrison.models._train_classifier import train_classifier

    with open_session(ctx, workspace, as_user) as session:
        try:
            with _Bar(not as_json) as bar:
                result = train_classifier(
                    session,
                    name,
                    dataset,
                    text_field,
                    label_field,
                    trainer=trainer,
                    embedder=embedder,
                    seed=seed,
                    max_marking=max_marking,
                    max_minutes=max_minutes,
                    epochs=epochs,
                    progress=bar,
                )
        except KeyboardInterrupt:
            err_console.print(
                "garrison: Training was interrupted; run the same command again to resume "
                "from its checkpoint.",
                markup=False,
            )
            raise typer.Exit(130) from None
    report = result.report
    if as_json:
        emit_json(report)
        return
    splits = report["splits"]
    out_console.print(
        f"Trained {report['ref']}  v{report['version']}  classifier  [{report['marking']}]  "
        f"{report['trainer']} on {report['dataset']['name']}@{report['dataset']['id'][:12]} "
        f"(train {splits['train']}, validation {splits['validation']}, test {splits['test']}); "
        f"C={report['selection']['C']:g} picked on {report['selection']['on']}.",
        markup=False,
    )
    if report["cut_short"]:
        err_console.print(
            "garrison: Cut short by --max-minutes: the best model so far was registered; run "
            "the same command again to finish from its checkpoint.",
            markup=False,
        )
    resumed = report["resumed"]
    if resumed:
        parts = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in sorted(resumed.items()))
        out_console.print(f"Resumed from its checkpoint: {parts}.", markup=False)
    emit_table(
        ["metric (test)", "value", "95% interval"],
        _metric_rows(report["metrics"]),
        title=f"{report['metrics']['records']} test records",
    )


def _read_inputs(
    texts: list[str] | None, file: str | None, default: str
) -> tuple[list[str], list[str], list[Any]]:
    """(texts, marking texts, ids) from ``--text`` or a JSONL file (``-``: stdin)."""
    if bool(texts) == bool(file):
        raise InvalidInput("Give the texts to classify with --text or --file, not both.")
    if texts:
        return list(texts), [default] * len(texts), [None] * len(texts)
    assert file is not None
    try:
        lines = (
            sys.stdin.read().splitlines() if file == "-" else Path(file).read_text().splitlines()
        )
    except OSError as exc:
        raise InvalidInput(f"Cannot read {file}: {exc.strerror}.") from exc
    out_texts: list[str] = []
    markings: list[str] = []
    ids: list[Any] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise InvalidInput(f"Line {number} of {file} is not JSON.") from None
        if isinstance(item, str):
            item = {"text": item}
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise InvalidInput(f'Line {number} of {file} has no "text" string.')
        out_texts.append(item["text"])
        markings.append(str(item.get("marking") or default))
        ids.append(item.get("id"))
    return out_texts, markings, ids


@app.command("predict")
def predict_command(
    ctx: typer.Context,
    ref: RefArg,
    text: Annotated[
        list[str] | None, typer.Option("--text", help="A text to classify (repeat).")
    ] = None,
    file: Annotated[
        str | None,
        typer.Option("--file", help='JSONL of {"text", "marking"?, "id"?}; - for stdin.'),
    ] = None,
    marking: Annotated[
        str, typer.Option("--marking", help="Marking of the input texts.")
    ] = "UNCLASSIFIED",
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Classify texts; each prediction is marked with the join of its text's and the model's."""
    from garrison.models._predict import predict

    texts, marking_texts, ids = _read_inputs(text, file, marking)
    with open_session(ctx, workspace, as_user) as session:
        markings = [session.parse_marking(m) for m in marking_texts]
        classifier, predictions = predict(session, ref, texts, markings)
    rows = []
    for item_id, body, prediction in zip(ids, texts, predictions, strict=True):
        entry = (
            {"id": item_id, **prediction.to_dict()} if item_id is not None else prediction.to_dict()
        )
        entry["text"] = body
        rows.append(entry)
    if as_json:
        emit_json({"model": classifier.version.ref, "predictions": rows})
        return
    emit_table(
        ["label", "probability", "marking", "text"],
        [
            (
                r["label"],
                f"{r['probability']:.3f}",
                r["marking"],
                r["text"] if len(r["text"]) <= 60 else r["text"][:57] + "...",
            )
            for r in rows
        ],
        title=classifier.version.ref,
    )
