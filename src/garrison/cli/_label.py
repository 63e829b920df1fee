"""``garrison label``: labeling projects, the annotator's queue, review and exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session
from garrison.cli._output import emit_json, out_console
from garrison.cli._paging import CursorOpt, PageLimitOpt, emit_listing, page_list, page_spec
from garrison.core.errors import InvalidInput

app = typer.Typer(
    help="Labeling: projects, tasks by clearance, review, exports.", no_args_is_help=True
)
project_app = typer.Typer(
    help="Labeling projects (stewards create and export).", no_args_is_help=True
)
review_app = typer.Typer(
    help="The reviewer queue: accept, fix or reject labels.", no_args_is_help=True
)
app.add_typer(project_app, name="project")
app.add_typer(review_app, name="review")


def register(root: typer.Typer) -> None:
    """Add the label commands to the top-level app."""
    root.add_typer(app, name="label")


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc.msg}.") from exc


def _print(data: Any, as_json: bool, line: str) -> None:
    if as_json:
        emit_json(data)
    else:
        out_console.print(line, markup=False)


@project_app.command("create")
def project_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Project name.")],
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="NAME, NAME@VERSION or an id.")
    ] = None,
    from_eval: Annotated[
        str | None,
        typer.Option("--from-eval", help="An evaluation run (RUN-...) whose items to label."),
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="With --from-eval: the run's failed items.")
    ] = False,
    metric: Annotated[
        str | None,
        typer.Option("--metric", help="With --from-eval: the binary metric items failed on."),
    ] = None,
    task_type: Annotated[
        str | None,
        typer.Option("--type", help="classification, spans, boxes, preference or answer."),
    ] = None,
    classes: Annotated[
        str | None, typer.Option("--classes", help="Comma-separated classes (or box labels).")
    ] = None,
    multi: Annotated[bool, typer.Option("--multi", help="Multi-label classification.")] = False,
    span_types: Annotated[
        str | None, typer.Option("--span-types", help="Comma-separated span types.")
    ] = None,
    instructions: Annotated[str, typer.Option("--instructions")] = "",
    schema_file: Annotated[
        Path | None, typer.Option("--schema", help="A JSON schema file (overrides the above).")
    ] = None,
    overlap: Annotated[int, typer.Option("--overlap", help="Annotators per task.")] = 1,
    gold: Annotated[
        str | None, typer.Option("--gold", help="Record field holding known answers.")
    ] = None,
    gold_rate: Annotated[float, typer.Option("--gold-rate")] = 0.0,
    calibration: Annotated[int, typer.Option("--calibration", help="Calibration tasks.")] = 0,
    calibration_threshold: Annotated[float, typer.Option("--calibration-threshold")] = 0.8,
    review_rate: Annotated[float, typer.Option("--review-rate")] = 0.0,
    pause_threshold: Annotated[float, typer.Option("--pause-threshold")] = 0.0,
    min_gold: Annotated[int, typer.Option("--min-gold")] = 5,
    marking: Annotated[
        str | None, typer.Option("--marking", help="The project's own marking (name, schema).")
    ] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a labeling project over a dataset version, or over an evaluation run's failed
    items (--from-eval RUN --failed) (stewards)."""
    from garrison.label import LabelProjects

    if (dataset is None) == (from_eval is None):
        raise InvalidInput("Give one of --dataset or --from-eval RUN --failed.")
    if from_eval is not None and not failed:
        raise InvalidInput("--from-eval labels a run's failed items: add --failed.")
    if from_eval is None and (failed or metric is not None):
        raise InvalidInput("--failed and --metric go with --from-eval RUN.")
    schema: dict[str, Any] | None = None
    if schema_file is not None:
        schema = _json_arg(schema_file.read_text(encoding="utf-8"), str(schema_file))
    elif from_eval is None or classes or span_types or multi or instructions:
        schema = {
            "classes": [c.strip() for c in (classes or "").split(",") if c.strip()] or None,
            "multi": multi,
            "span_types": [s.strip() for s in (span_types or "").split(",") if s.strip()] or None,
            "instructions": instructions,
        }
    options: dict[str, Any] = {
        "overlap": overlap,
        "gold": gold,
        "gold_rate": gold_rate,
        "calibration": calibration,
        "calibration_threshold": calibration_threshold,
        "review_rate": review_rate,
        "pause_threshold": pause_threshold,
        "min_gold": min_gold,
        "marking": marking,
    }
    found = None
    with open_session(ctx, workspace, as_user) as session:
        if from_eval is not None:
            from garrison.evaluate import label_failed

            project, found = label_failed(
                session, name, from_eval, metric=metric, task_type=task_type, schema=schema,
                **options,
            )  # fmt: skip
        else:
            assert dataset is not None and schema is not None
            project = LabelProjects(session).create(
                name, dataset, task_type or "classification", schema, **options
            )
    data = project.to_dict()
    line = f"{data['name']}  [{data['marking']}]  {data['task_type']}"
    if found is not None:
        # Counts and references only: the project's marking covers them, not the items' text.
        keep = ("run", "suite", "metric", "scored", "failed")
        data["from_eval"] = {k: v for k, v in found.to_dict().items() if k in keep}
        line += (
            f"  {found.failed} failed items of {found.run} ({found.metric}, {found.scored} scored)"
        )
    _print(data, as_json, line)


@project_app.command("ls")
def project_ls(
    ctx: typer.Context,
    limit: PageLimitOpt = None,
    cursor: CursorOpt = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the labeling projects the acting subject may read."""
    from garrison.label import LabelProjects

    with open_session(ctx, workspace, as_user) as session:
        projects = [p.to_dict() for p in LabelProjects(session).list()]
    spec = page_spec(limit, cursor)
    emit_listing(
        page_list(projects, "label-projects", spec) if spec else projects,
        ["name", "marking", "type", "dataset", "created_by"],
        lambda p: (p["name"], p["marking"], p["task_type"], p["dataset"][:16], p["created_by"]),
        as_json=as_json,
    )


@project_app.command("show")
def project_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Project name.")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One project: its schema, version and settings."""
    from garrison.label import LabelProjects

    with open_session(ctx, workspace, as_user) as session:
        data = LabelProjects(session).get(name).to_dict()
    _print(data, as_json, json.dumps(data, indent=2))


@project_app.command("stats")
def project_stats(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Project name.")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Progress, annotator quality, agreement and aggregation, over what the acting subject may
    read (agreement and aggregation: reviewers and stewards)."""
    from garrison.label import project_stats as stats

    with open_session(ctx, workspace, as_user) as session:
        data = stats(session, name)
    _print(data, as_json, "\n".join(_stats_lines(data)))


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _stats_lines(data: dict[str, Any]) -> list[str]:
    lines = [
        f"{data['project']}  [{data['marking']}]  {data['tasks']} tasks, "
        f"{data['complete']} of {data['production']} complete, labels {data['labels']}"
    ]
    for a in data.get("annotators", []):
        gold = a["gold"]
        low, high = gold["interval"]
        lines.append(
            f"  {a['annotator']}: {a['state']}, {a['submitted']} submitted, gold "
            f"{gold['correct']}/{gold['answered']} [{low:.2f}, {high:.2f}]"
        )
    if "agreement" in data:
        lines.append(f"agreement  [{data.get('labels_marking') or 'no labels'}]")
        for f in data["agreement"]:
            counts = " ".join(f"{k}={v}" for k, v in f.get("counts", {}).items())
            lines.append(
                f"  {f['name']}: {_number(f['value'])} "
                f"[{_number(f['low'])}, {_number(f['high'])}] over {f['units']} {counts}".rstrip()
            )
    if "aggregation" in data:
        agg = data["aggregation"]
        lines.append(
            f"aggregation on {agg['gold']} gold tasks ({agg['tasks']} tasks, "
            f"{agg['disagree']} settled differently)"
        )
        for method, m in agg["methods"].items():
            lines.append(
                f"  {method}: accuracy {_number(m['accuracy'])} "
                f"[{_number(m['low'])}, {_number(m['high'])}] ({m['correct']}/{m['n']})"
            )
    return lines


@project_app.command("export")
def project_export(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Project name.")],
    fmt: Annotated[
        str, typer.Option("--format", help="dataset (a new version), jsonl, or a file format.")
    ] = "dataset",
    out: Annotated[Path | None, typer.Option("--out", help="File to write (file formats).")] = None,
    dataset_name: Annotated[
        str | None, typer.Option("--name", help="Name of the new dataset version.")
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="Aggregation: majority or dawid-skene.")
    ] = "majority",
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export labels as a dataset version with a labels field, or to a file (stewards)."""
    from garrison.label import export_dataset, export_file

    with open_session(ctx, workspace, as_user) as session:
        if fmt == "dataset":
            data = export_dataset(session, name, name=dataset_name, method=method).to_dict()
            line = (
                f"{data['name']}@{data['id'][:12]}  [{data['marking']}]  {data['records']} records"
            )
        else:
            if out is None:
                raise InvalidInput("A file export needs --out FILE.")
            data = export_file(session, name, fmt, out, method=method)
            line = f"{data['path']}  [{data['marking']}]  {data['records']} records"
    _print(data, as_json, line)


@app.command("import-predictions")
def import_predictions(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project name.")],
    file: Annotated[
        Path | None, typer.Option("--file", help="JSONL: record_id, value, score a line.")
    ] = None,
    classifier: Annotated[
        str | None, typer.Option("--classifier", help="A registered classifier NAME@V.")
    ] = None,
    marking: Annotated[
        str | None, typer.Option("--marking", help="What the file's predictions are marked.")
    ] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Attach pre-labels to tasks as suggestions (stewards); least confident first."""
    from garrison.label import LabelProjects

    if (file is None) == (classifier is None):
        raise InvalidInput("Give one of --file JSONL or --classifier NAME@V.")
    with open_session(ctx, workspace, as_user) as session:
        projects = LabelProjects(session)
        if file is not None:
            lines = file.read_text(encoding="utf-8").splitlines()
            items = [
                _json_arg(line, f"Line {i} of {file}")
                for i, line in enumerate(lines, 1)
                if line.strip()
            ]
            count = projects.import_predictions(project, items, source=file.name, marking=marking)
        else:
            count = projects.import_classifier(project, str(classifier))
    _print({"project": project, "suggestions": count}, as_json, f"{count} suggestions")


def _task_line(data: dict[str, Any]) -> str:
    return f"{data['id']}  [{data['marking']}]  {data['text']}"


@app.command("next")
def next_(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project name.")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take the next task you may read (a saved draft first); exit 3 when none is left."""
    from garrison.core.errors import NotFound
    from garrison.label import next_task

    with open_session(ctx, workspace, as_user) as session:
        task = next_task(session, project)
    if task is None:
        raise NotFound(f"No task left for you in project {project}.")
    data = task.to_dict()
    _print(data, as_json, _task_line(data))


@app.command("submit")
def submit(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(help="Task id.")],
    value: Annotated[str, typer.Option("--value", help="The label as JSON.")],
    marking: Annotated[
        str | None, typer.Option("--marking", help="Marking of what you typed (answers).")
    ] = None,
    draft: Annotated[bool, typer.Option("--draft", help="Save, do not submit.")] = False,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit (or save) your label on a task handed to you."""
    from garrison.label import submit as submit_label

    parsed = _json_arg(value, "--value")
    with open_session(ctx, workspace, as_user) as session:
        data = submit_label(session, task, parsed, marking=marking, draft=draft).to_dict()
    _print(data, as_json, f"{data['id']}  [{data['marking']}]  {data['status']}")


@app.command("skip")
def skip(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(help="Task id.")],
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    flag: Annotated[bool, typer.Option("--flag", help="Flag a problem (needs --reason).")] = False,
    marking: Annotated[str | None, typer.Option("--marking", help="Marking of the reason.")] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Skip (or flag) a task handed to you; it goes back to the queue for others."""
    from garrison.label import skip as skip_task

    with open_session(ctx, workspace, as_user) as session:
        data = skip_task(session, task, reason, flag=flag, marking=marking).to_dict()
    _print(data, as_json, f"{data['task_id']}  {'flagged' if flag else 'skipped'}")


@review_app.command("next")
def review_next(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project name.")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The next label to review (with its task's other replicas); exit 3 when none."""
    from garrison.core.errors import NotFound
    from garrison.label import next_review

    with open_session(ctx, workspace, as_user) as session:
        item = next_review(session, project)
    if item is None:
        raise NotFound(f"No label awaits your review in project {project}.")
    data = item.to_dict()
    value = json.dumps(data["label"]["value"])
    line = f"{data['label']['id']}  [{data['marking']}]  {data['task']['text']}  -> {value}"
    _print(data, as_json, line)


@review_app.command("accept")
def review_accept(
    ctx: typer.Context,
    label: Annotated[str, typer.Argument(help="Label id.")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Accept a label."""
    from garrison.label import accept

    with open_session(ctx, workspace, as_user) as session:
        data = accept(session, label).to_dict()
    _print(data, as_json, f"{data['id']}  accepted")


@review_app.command("fix")
def review_fix(
    ctx: typer.Context,
    label: Annotated[str, typer.Argument(help="Label id.")],
    value: Annotated[str, typer.Option("--value", help="The corrected label as JSON.")],
    marking: Annotated[str | None, typer.Option("--marking")] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fix a label with your own (the original is kept)."""
    from garrison.label import fix

    parsed = _json_arg(value, "--value")
    with open_session(ctx, workspace, as_user) as session:
        data = fix(session, label, parsed, marking=marking).to_dict()
    _print(data, as_json, f"{data['id']}  fixes {data['parent_id']}")


@review_app.command("reject")
def review_reject(
    ctx: typer.Context,
    label: Annotated[str, typer.Argument(help="Label id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (required).")],
    marking: Annotated[str | None, typer.Option("--marking")] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a label with a reason; its task takes another replica."""
    from garrison.label import reject

    with open_session(ctx, workspace, as_user) as session:
        data = reject(session, label, reason, marking=marking).to_dict()
    _print(data, as_json, f"{data['id']}  rejected")
