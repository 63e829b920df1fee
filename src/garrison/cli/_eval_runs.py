"""``garrison eval run|ls|show|report|compare``: evaluation runs and the deployment gate.

Added to the ``eval`` group (:mod:`garrison.cli._eval`) by :func:`register`. ``eval compare``
exits 0 when the gate passes and 1 when it fails (other errors keep their codes).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session
from garrison.cli._output import emit_json, emit_table, err_console, out_console
from garrison.cli._paging import CursorOpt, PageLimitOpt, emit_listing, page_list, page_spec
from garrison.core.errors import InvalidInput

__all__ = ["REPORT_FORMATS", "register"]

REPORT_FORMATS = ("html", "md", "json", "inspect", "stats")


def register(eval_app: typer.Typer) -> None:
    """Add the run commands to the ``eval`` group."""
    eval_app.command("run")(run_command)
    eval_app.command("ls")(ls_command)
    eval_app.command("show")(show_command)
    eval_app.command("report")(report_command)
    eval_app.command("compare")(compare_command)


class _Bar:
    """A progress bar with an ETA on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
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
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            )
            self.progress.__enter__()
            self.task = self.progress.add_task(self.label, total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)

    def __call__(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done, total=total)


def _interval(metric: dict[str, Any]) -> str:
    return f"{metric['value']:.4f} [{metric['low']:.4f}, {metric['high']:.4f}] n={metric['n']}"


def _system_label(system: dict[str, Any]) -> str:
    from garrison.evaluate import SystemSpec

    try:
        return SystemSpec.from_dict(system).label()
    except (KeyError, TypeError):
        return str(system.get("kind", "?"))


def _print_summary(summary: Any) -> None:
    data = summary.to_dict()
    out_console.print(data["marking"], markup=False)
    out_console.print(
        f"{data['ref']}  {data['status']}  suite {data['suite'] or data['kind']}  "
        f"system {_system_label(data['system'])}"
        + (f" as {data['system']['subject']}" if data["system"].get("subject") else ""),
        markup=False,
    )
    counts = data["counts"]
    out_console.print(
        f"items {counts.get('items', 0)}: scored {counts.get('scored', 0)}, "
        f"not eligible {counts.get('not-eligible', 0)}, errors {counts.get('error', 0)}",
        markup=False,
    )
    for name, metric in data["metrics"].items():
        out_console.print(f"  {name}: {_interval(metric)}", markup=False)
    out_console.print(data["marking"], markup=False)


@contextmanager
def _interrupted() -> Iterator[None]:
    """Ctrl-C during a run: say which run is kept and how to finish it; exit 130."""
    try:
        yield
    except KeyboardInterrupt as exc:
        for note in getattr(exc, "__notes__", ()):
            err_console.print(f"garrison: {note}", markup=False)
        raise typer.Exit(130) from None


def run_command(
    ctx: typer.Context,
    suite: Annotated[str | None, typer.Argument(help="The suite, NAME or NAME@ID.")] = None,
    system: Annotated[
        str | None,
        typer.Option(
            "--system",
            help="The system under test: assistant:k=8,generator=NAME@V | generator:NAME@V | "
            "classifier:NAME@V | embedder:NAME@V,k=10.",
        ),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option("--subject", help="The user the assistant acts as (default: the caller)."),
    ] = None,
    scorer: Annotated[
        list[str] | None,
        typer.Option("--scorer", help="A scorer to use (repeatable; default: the suite kind's)."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=64, help="Items asked at once.")
    ] = 4,
    retries: Annotated[
        int, typer.Option("--retries", min=0, max=10, help="Retries of a failed call.")
    ] = 2,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.001, help="Seconds allowed per call.")
    ] = 60.0,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed of generators and bootstrap.")
    ] = 0,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Finish the interrupted run RUN instead.")
    ] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a system on a suite's items (or resume an interrupted run); prints its summary."""
    from garrison.evaluate import Runs, parse_system

    with open_session(ctx, workspace, as_user) as session, _interrupted():
        runs = Runs(session)
        with _Bar("eval") as bar:
            if resume is not None:
                if suite is not None or system is not None:
                    raise InvalidInput("--resume RUN takes no suite or --system.")
                summary = runs.resume(resume, progress=bar)
            else:
                if suite is None or system is None:
                    raise InvalidInput("Name a suite and a --system (or --resume RUN).")
                spec = parse_system(system, subject=subject)
                summary = runs.start(
                    suite,
                    spec,
                    scorers=scorer or None,
                    concurrency=concurrency,
                    retries=retries,
                    timeout=timeout,
                    seed=seed,
                    progress=bar,
                )
    if as_json:
        emit_json(summary.to_dict())
        return
    _print_summary(summary)


def ls_command(
    ctx: typer.Context,
    limit: PageLimitOpt = None,
    cursor: CursorOpt = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the evaluation runs you may read (newest first)."""
    from garrison.evaluate import Runs

    with open_session(ctx, workspace, as_user) as session:
        found = Runs(session).list()
    spec = page_spec(limit, cursor)
    listed = [s.to_dict() for s in found]
    emit_listing(
        page_list(listed, "eval-runs", spec) if spec else listed,
        ["run", "marking", "status", "suite", "system", "scored", "created"],
        lambda r: (
            r["ref"],
            r["marking"],
            r["status"],
            r["suite"] or r["kind"],
            _system_label(r["system"]),
            r["counts"].get("scored", 0),
            r["created_at"][:16].replace("T", " "),
        ),
        as_json=as_json,
    )


def show_command(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="The run, RUN-ID (a prefix of 6+ digits will do).")],
    items: Annotated[bool, typer.Option("--items", help="Also list its item results.")] = False,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one run: status, counts and every metric with its interval."""
    from garrison.evaluate import Runs

    with open_session(ctx, workspace, as_user) as session:
        runs = Runs(session)
        summary = runs.get(run)
        results = list(runs.items(run)) if items else []
    if as_json:
        data = summary.to_dict()
        if items:
            data["items"] = [r.to_dict() for r in results]
        emit_json(data)
        return
    _print_summary(summary)
    if items:
        emit_table(
            ["item", "marking", "status", "scores", "latency ms", "error"],
            [
                (
                    r.item_id,
                    r.marking.banner(),
                    r.status,
                    ", ".join(f"{k}={v:.3g}" for k, v in r.scores.items()),
                    f"{r.latency_ms:.0f}",
                    r.error or "",
                )
                for r in results
            ],
        )


def report_command(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="The run, RUN-ID.")],
    fmt: Annotated[
        str, typer.Option("--format", help="html, md, json, inspect or stats.")
    ] = "html",
    out: Annotated[Path | None, typer.Option("--out", help="Write the report here.")] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a run's marked report (HTML, Markdown, JSON, Inspect log, or statistics only)."""
    from garrison.evaluate import Runs

    if fmt not in REPORT_FORMATS:
        raise InvalidInput(f"A report format is one of {', '.join(REPORT_FORMATS)}.")
    if out is not None and out.exists():
        raise InvalidInput(f"{out} already exists; choose a new file.")
    with open_session(ctx, workspace, as_user) as session:
        runs = Runs(session)
        text = render(runs, run, fmt)
        report_marking = runs.get(run).marking.banner()
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    out.write_text(text, encoding="utf-8")
    if as_json:
        emit_json({"run": run, "format": fmt, "out": str(out), "marking": report_marking})
    else:
        out_console.print(f"{report_marking}: report written to {out}.", markup=False)


def render(runs: Any, run: str, fmt: str) -> str:
    """The run's report in ``fmt`` (one of :data:`REPORT_FORMATS`)."""
    import json

    from garrison.evaluate import report as rendering

    report = runs.report(run)
    if fmt == "html":
        return str(rendering.render_html(report))
    if fmt == "md":
        return str(rendering.render_markdown(report))
    if fmt == "json":
        return json.dumps(rendering.report_json(report), indent=2, default=str)
    if fmt == "stats":
        return json.dumps(rendering.stats_only(report), indent=2, default=str)
    samples = runs.samples(run)
    return json.dumps(rendering.inspect_log(report, samples), indent=2, default=str)


def compare_command(
    ctx: typer.Context,
    run_a: Annotated[str, typer.Argument(help="The baseline run A.")],
    run_b: Annotated[str, typer.Argument(help="The candidate run B.")],
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="Compare this metric (repeatable).")
    ] = None,
    non_inferiority: Annotated[
        float | None,
        typer.Option(
            "--non-inferiority", min=0.0, help="Pass when B is at most MARGIN worse than A."
        ),
    ] = None,
    superiority: Annotated[
        bool, typer.Option("--superiority", help="Pass only when B is better than A.")
    ] = False,
    upper_below: Annotated[
        float | None,
        typer.Option("--upper-below", help="Pass when B's failure rate's upper bound is below."),
    ] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare B against A on the items both scored: exit 0 when the gate passes, 1 when not."""
    from garrison.evaluate import Runs

    chosen = sum(x for x in (non_inferiority is not None, superiority, upper_below is not None))
    if chosen > 1:
        raise InvalidInput(
            "Choose one gate: --non-inferiority MARGIN, --superiority or --upper-below LIMIT."
        )
    gate: dict[str, Any] = {"mode": "superiority" if superiority else "non-inferiority"}
    gate["margin"] = non_inferiority if non_inferiority is not None else 0.0
    if upper_below is not None:
        gate["upper_below"] = upper_below
    with open_session(ctx, workspace, as_user) as session:
        report = Runs(session).compare(run_a, run_b, metrics=metric or None, **gate)
    passed = all(v.passed for v in report.verdicts)
    if as_json:
        emit_json(
            {
                "marking": report.marking.banner(),
                "a": report.a.run_id,
                "b": report.b.run_id,
                "comparisons": [c.to_json() for c in report.comparisons],
                "verdicts": [v.to_json() for v in report.verdicts],
                "passed": passed,
            }
        )
    else:
        banner = report.marking.banner()
        out_console.print(banner, markup=False)
        for c, v in zip(report.comparisons, report.verdicts, strict=True):
            d = c.difference
            p = c.p_adjusted if c.p_adjusted is not None else c.p_value
            out_console.print(
                f"{c.metric}: A {c.a.value:.4f}, B {c.b.value:.4f}, difference B-A "
                f"{d.value:+.4f} [{d.low:+.4f}, {d.high:+.4f}] n={c.n}; {c.test}, "
                f"p={c.p_value:.4g}, Holm-adjusted p={p:.4g}",
                markup=False,
            )
            out_console.print(
                f"  {'PASS' if v.passed else 'FAIL'} {v.rule}: {v.reason}", markup=False
            )
        out_console.print(f"Gate {'passed' if passed else 'failed'}.", markup=False)
        out_console.print(banner, markup=False)
    if not passed:
        raise typer.Exit(1)
