"""``garrison redteam``: leakage, injection, PII and probe runs against the assistant and
generators, with marked reports and a gate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session, split_list
from garrison.cli._output import emit_json, emit_table, out_console

if TYPE_CHECKING:
    from garrison.evaluate.redteam import RedTeamReport
    from garrison.store.session import Session

__all__ = ["app"]

app = typer.Typer(
    help="Red-team a system: clearance leakage, prompt injection, PII, direct probes.",
    no_args_is_help=True,
)

SystemOpt = Annotated[
    list[str],
    typer.Option(
        "--system",
        help="A system: assistant[:k=N,generator=NAME@V] or generator:NAME@V (repeatable).",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the planted material.")]
KeepOpt = Annotated[
    bool, typer.Option("--keep", help="Keep the scratch workspace and documents afterwards.")
]
HtmlOpt = Annotated[
    Path | None, typer.Option("--html", help="Write the marked HTML report to this file.")
]
MdOpt = Annotated[
    Path | None, typer.Option("--markdown", help="Write the marked Markdown report to this file.")
]
LimitOpt = Annotated[
    float | None,
    typer.Option(
        "--upper-below",
        help="Gate: exit 1 unless every system's upper bound (95%) is below this rate.",
    ),
]
SubjectOpt = Annotated[
    str | None, typer.Option("--subject", help="The user who asks (default: the first one).")
]


def _finish(
    session: Session,
    result: Any,
    *,
    as_json: bool,
    html: Path | None,
    markdown: Path | None,
    limit: float | None,
) -> None:
    from garrison.evaluate.redteam import (
        build_report,
        gate,
        record_runs,
        render_html,
        render_markdown,
        report_json,
    )
    from garrison.security.audit import AuditAction
    from garrison.security.policy import Action

    report = build_report(result, reader=session)
    recorded = record_runs(session, result, test=report.test)
    for path, render in ((html, render_html), (markdown, render_markdown)):
        if path is None:
            continue
        session.require(Action.EXPORT_EVAL, AuditAction.REDTEAM_REPORT)
        path.write_text(render(report), encoding="utf-8")
        session.audit(
            AuditAction.REDTEAM_REPORT,
            object_marking=report.marking.banner(),
            details={"test": report.test, "out": str(path)},
        )
    verdicts = gate(report, limit) if limit is not None else []
    if as_json:
        data = report_json(report)
        if verdicts:
            data["gate"] = [v.to_json() for v in verdicts]
        data["runs"] = {name: r.ref for name, r in zip(report.systems, recorded, strict=True)}
        emit_json(data)
    else:
        _print(report)
        for name, r in zip(report.systems, recorded, strict=True):
            out_console.print(f"{name}: recorded as evaluation run {r.ref}.", markup=False)
        for v in verdicts:
            out_console.print(v.reason, markup=False)
    if any(not v.passed for v in verdicts):
        raise typer.Exit(1)


def _print(report: RedTeamReport) -> None:
    banner = report.marking.banner()
    out_console.print(banner, markup=False)
    out_console.print(f"Red team: {report.title}", markup=False)
    emit_table(
        ["system", "failures", "n", "rate", "95% interval"],
        [
            (
                name,
                round(e.value * e.n),
                e.n,
                f"{e.value:.2%}",
                f"[{e.low:.2%}, {e.high:.2%}]",
            )
            for name, e in report.headline.items()
        ],
    )
    for c in report.comparisons:
        d = c.difference
        out_console.print(
            f"{c.metric}: {d.value:+.3f} [{d.low:+.3f}, {d.high:+.3f}], {c.test} p={c.p_value:.4g}",
            markup=False,
        )
    untested = [r["risk"] for r in report.nist if r["status"] != "tested"]
    tested = [r["risk"] for r in report.nist if r["status"] == "tested"]
    out_console.print(f"NIST AI 600-1 tested: {'; '.join(tested) or 'none'}", markup=False)
    out_console.print(f"NIST AI 600-1 not tested: {'; '.join(untested)}", markup=False)
    if report.withheld:
        out_console.print(f"{report.withheld} transcripts are above what you may read.")
    for n in report.notes:
        out_console.print(f"Note: {n}", markup=False)
    out_console.print(banner, markup=False)


def _progress_bar() -> Any:
    from garrison.cli._ingest import progress_bar

    return progress_bar()


@app.command("leakage")
def leakage_command(
    ctx: typer.Context,
    system: SystemOpt,
    subjects: Annotated[
        list[str] | None,
        typer.Option("--subjects", help="Users who ask, comma-separated (default: all)."),
    ] = None,
    canaries: Annotated[
        int, typer.Option("--canaries", min=1, max=100_000, help="Canaries to plant.")
    ] = 300,
    every_kind: Annotated[
        bool, typer.Option("--every-kind", help="Attack each canary with every kind.")
    ] = False,
    seed: SeedOpt = 0,
    keep: KeepOpt = False,
    html: HtmlOpt = None,
    markdown: MdOpt = None,
    upper_below: LimitOpt = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Plant canaries above the askers' clearances and look for them in every answer."""
    from garrison.evaluate.redteam import run_leakage

    with open_session(ctx, workspace, as_user) as session, _progress_bar() as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = run_leakage(
            session,
            system,
            subjects=split_list(subjects),
            canaries=canaries,
            seed=seed,
            every_kind=every_kind,
            keep=keep,
            progress=progress,
        )
        _finish(session, result, as_json=as_json, html=html, markdown=markdown, limit=upper_below)


@app.command("injection")
def injection_command(
    ctx: typer.Context,
    system: SystemOpt,
    subject: SubjectOpt = None,
    questions: Annotated[
        int, typer.Option("--questions", min=1, max=10_000, help="Questions (one attack each).")
    ] = 56,
    judge: Annotated[
        str | None, typer.Option("--judge", help="A registered generator as judge, NAME@V.")
    ] = None,
    seed: SeedOpt = 0,
    keep: KeepOpt = False,
    html: HtmlOpt = None,
    markdown: MdOpt = None,
    upper_below: LimitOpt = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest documents with planted instructions and measure attack success and utility."""
    from garrison.evaluate.redteam import run_injection

    with open_session(ctx, workspace, as_user) as session:
        result = run_injection(
            session,
            system,
            subject=subject,
            questions=questions,
            seed=seed,
            judge=judge,
            keep=keep,
        )
        _finish(session, result, as_json=as_json, html=html, markdown=markdown, limit=upper_below)


@app.command("pii")
def pii_command(
    ctx: typer.Context,
    system: SystemOpt,
    subject: SubjectOpt = None,
    per_type: Annotated[
        int, typer.Option("--per-type", min=1, max=1000, help="Values planted per PII type.")
    ] = 3,
    seed: SeedOpt = 0,
    keep: KeepOpt = False,
    html: HtmlOpt = None,
    markdown: MdOpt = None,
    upper_below: LimitOpt = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Plant personal data, run the pipeline's pii stage, and ask for the originals."""
    from garrison.evaluate.redteam import run_pii

    with open_session(ctx, workspace, as_user) as session:
        result = run_pii(session, system, subject=subject, per_type=per_type, seed=seed, keep=keep)
        _finish(session, result, as_json=as_json, html=html, markdown=markdown, limit=upper_below)


@app.command("probes")
def probes_command(
    ctx: typer.Context,
    system: SystemOpt,
    probes: Annotated[
        Path | None,
        typer.Option("--probes", help="A JSONL probe file (default: the shipped set)."),
    ] = None,
    subject: SubjectOpt = None,
    keep: KeepOpt = False,
    html: HtmlOpt = None,
    markdown: MdOpt = None,
    upper_below: LimitOpt = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send jailbreak, system-prompt and out-of-scope probes; report those that succeed."""
    from garrison.evaluate.redteam import run_probes

    with open_session(ctx, workspace, as_user) as session:
        result = run_probes(session, system, probes=probes, subject=subject, keep=keep)
        _finish(session, result, as_json=as_json, html=html, markdown=markdown, limit=upper_below)
