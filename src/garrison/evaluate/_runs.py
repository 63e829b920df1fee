"""Evaluation runs: a system under test on a suite's items, recorded item by item.

:class:`Runs` starts (:meth:`Runs.start`), resumes, lists, shows, reports and compares runs.
Red-team runs, which make their own items, record through :meth:`Runs.begin_external` and the
:class:`RunWriter` it returns (the same writer the suite runner uses).

Records:

- a run (:class:`RunSummary`) is marked with the join of its items' and responses' markings --
  what a full report on it reveals; it is listed, shown and reported only to a reader who
  dominates that marking (to anyone else it looks missing);
- an item result (:class:`ItemResult`) is marked with its item's marking joined with its
  response's (a response is marked like an assistant answer, so it can be higher than the
  item) and is read under that marking only. ``scores`` holds every metric's value (a binary
  metric's as 0.0 or 1.0); ``binary`` says, per metric name, whether it is binary. Its
  transcript (the item, the context, the response) is stored sealed, bound to the run and item.

Statuses: a run is ``running``, ``interrupted`` (stopped by Ctrl-C or an error: ``resume``
finishes it; a run left ``running`` by a crash resumes the same way) or ``complete``; an item
is ``scored``, ``not-eligible`` (never sent: its marking is above what the system may receive,
or the acting subject may not read it) or ``error`` (after the retries; resuming asks again).

Every operation is audited (``eval.run``, ``eval.runs-list``, ``eval.run-read``,
``eval.run-report``, ``eval.compare``) with markings and counts, never content.
"""

from __future__ import annotations

import builtins
import dataclasses
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from garrison import __version__
from garrison.core.clock import utc_now
from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.evaluate._compilation import check_readable, raised_item, raised_report, run_texts
from garrison.evaluate._systems import SystemSpec
from garrison.security.audit import AuditAction
from garrison.security.compilation import apply_rules
from garrison.security.markings import UNCLASSIFIED, Marking, dominates, join
from garrison.security.policy import Action, permits
from garrison.store import eval_runs
from garrison.store.compilation import workspace_rules
from garrison.store.models import EvalRunItemRow, EvalRunRow
from garrison.store.session import Session

if TYPE_CHECKING:
    from garrison.evaluate.report import CompareReport, RunReport

__all__ = [
    "ITEM_STATUSES",
    "RUN_STATUSES",
    "ItemResult",
    "Progress",
    "RunSummary",
    "RunWriter",
    "Runs",
]

ITEM_STATUSES = ("scored", "not-eligible", "error")
RUN_STATUSES = ("running", "interrupted", "complete")
#: Called after each item with (items done, items in all).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ItemResult:
    """One item's result in a run (see the module docstring for ``scores`` and ``binary``)."""

    item_id: str
    status: str
    marking: Marking
    scores: dict[str, float] = field(default_factory=dict)
    binary: dict[str, bool] = field(default_factory=dict)
    cluster: str = ""
    slices: dict[str, str] = field(default_factory=dict)
    latency_ms: float = 0.0
    tokens: int | None = None
    error: str | None = None
    transcript: dict[str, Any] = field(default_factory=dict)
    position: int = 0

    def __post_init__(self) -> None:
        if self.status not in ITEM_STATUSES:
            raise InvalidInput(f"An item's status is one of {', '.join(ITEM_STATUSES)}.")

    def to_dict(self, *, transcript: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "item_id": self.item_id,
            "position": self.position,
            "status": self.status,
            "marking": self.marking.banner(),
            "scores": dict(self.scores),
            "binary": dict(self.binary),
            "cluster": self.cluster,
            "slices": dict(self.slices),
            "latency_ms": round(self.latency_ms, 3),
            "tokens": self.tokens,
            "error": self.error,
        }
        if transcript:
            out["transcript"] = dict(self.transcript)
        return out


@dataclass(frozen=True)
class RunSummary:
    """A run as a reader who dominates its marking sees it."""

    id: str
    kind: str
    suite: str | None
    suite_id: str | None
    system: dict[str, Any]
    scorers: dict[str, str]
    parameters: dict[str, Any]
    status: str
    marking: Marking
    counts: dict[str, int]
    #: Metric name -> {"value", "low", "high", "n", "binary", ...}: each with its interval.
    metrics: dict[str, dict[str, Any]]
    created_by: str
    created_at: datetime
    finished_at: datetime | None

    @property
    def ref(self) -> str:
        """How a run is named: ``RUN-`` and the first 12 digits of its id."""
        return f"RUN-{self.id[:12]}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "kind": self.kind,
            "suite": self.suite,
            "suite_id": self.suite_id,
            "system": dict(self.system),
            "scorers": dict(self.scorers),
            "parameters": dict(self.parameters),
            "status": self.status,
            "marking": self.marking.banner(),
            "counts": dict(self.counts),
            "metrics": {k: dict(v) for k, v in self.metrics.items()},
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def _counts(rows: Sequence[EvalRunItemRow], total: int) -> dict[str, int]:
    counts = {"items": total, "recorded": len(rows)}
    for status in ITEM_STATUSES:
        counts[status] = sum(1 for r in rows if r.status == status)
    return counts


def _result(row: EvalRunItemRow, marking: Marking) -> ItemResult:
    return ItemResult(
        item_id=row.item_id,
        status=row.status,
        marking=marking,
        scores={str(k): float(v) for k, v in (row.scores or {}).items()},
        binary={str(k): bool(v) for k, v in (row.binary or {}).items()},
        cluster=row.cluster,
        slices={str(k): str(v) for k, v in (row.slices or {}).items()},
        latency_ms=float(row.latency_ms),
        tokens=row.tokens,
        error=row.error,
        position=row.position,
    )


class RunWriter:
    """Records one run's item results as they come (one transaction per item, so an interrupted
    run keeps every item it finished) and finishes the run."""

    def __init__(self, session: Session, run_id: str) -> None:
        self.session = session
        self.run_id = run_id
        self._sealer = eval_runs.Sealer(session)
        self._position = 0
        self._finished = False
        self._rules = workspace_rules(session)

    def record(self, result: ItemResult) -> None:
        """Store ``result`` (replacing an earlier result of the same item in this run). Item
        ids and clusters are at most 512 characters."""
        if self._finished:
            raise InvalidInput("This run is finished; nothing more can be recorded in it.")
        for what, value in (("item id", result.item_id), ("cluster", result.cluster)):
            if len(value) > 512:
                raise InvalidInput(f"An item's {what} is at most 512 characters.")
        if not result.item_id:
            raise InvalidInput("An item result needs an item id.")
        result = raised_item(self._rules, result)
        position = result.position or self._position
        self._position = max(self._position, position) + 1
        values = {
            "item_id": result.item_id,
            "position": position,
            "status": result.status,
            "scores": {k: float(v) for k, v in result.scores.items()},
            "binary": {k: bool(v) for k, v in result.binary.items()},
            "cluster": result.cluster or result.item_id,
            "slices": dict(result.slices),
            "latency_ms": float(result.latency_ms),
            "tokens": result.tokens,
            "error": result.error,
        }
        with self.session.workspace.catalog.transaction() as orm:
            run = orm.get(EvalRunRow, self.run_id)
            if run is None:
                raise NotFound(f"No evaluation run {self.run_id[:12]}.")
            eval_runs.write_item(
                orm, self.session, self._sealer, run, values, result.marking, result.transcript
            )

    def interrupt(self) -> None:
        """Mark the run ``interrupted`` (it can be resumed)."""
        self._set("interrupted")

    def finish(self) -> RunSummary:
        """Mark the run ``complete`` (audited as ``eval.run``) and return its summary."""
        self._set("complete")
        self._finished = True
        return Runs(self.session)._writer_summary(self.run_id)

    def _set(self, status: str) -> None:
        with self.session.workspace.catalog.transaction() as orm:
            run = orm.get(EvalRunRow, self.run_id)
            if run is None:
                raise NotFound(f"No evaluation run {self.run_id[:12]}.")
            marking = self.session.marking_of(orm, run.marking_id) or UNCLASSIFIED
            eval_runs.set_status(orm, self.session, run, status, marking)
            orm.flush()
            counts = _counts(eval_runs.all_item_rows(orm, self.run_id), run.item_count)
            self.session.audit(
                AuditAction.EVAL_RUN,
                object_id=self.run_id,
                object_marking=marking.banner(),
                details={"status": status, "kind": run.kind, **counts},
            )


class Runs:
    """The session's evaluation runs (the evaluator role runs them; readers read them)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- starting -------------------------------------------------------------------------------

    def _create(
        self,
        kind: str,
        system: SystemSpec,
        parameters: Mapping[str, Any],
        *,
        suite_id: str | None = None,
        suite_ref: str | None = None,
        scorers: Mapping[str, str] | None = None,
        item_count: int = 0,
        marking: Marking = UNCLASSIFIED,
        system_version: str | None = None,
    ) -> RunWriter:
        run_id = secrets.token_hex(16)
        row = EvalRunRow(
            id=run_id,
            kind=kind,
            suite_id=suite_id,
            suite_ref=suite_ref,
            system={**system.to_dict(), "version": system_version, "garrison": __version__},
            scorers=dict(scorers or {}),
            parameters=dict(parameters),
            status="running",
            item_count=item_count,
            created_by=self.session.subject.name,
            created_at=utc_now(),
        )
        with self.session.workspace.catalog.transaction() as orm:
            eval_runs.add_run(orm, self.session, row, marking)
            orm.flush()
            self.session.audit(
                AuditAction.EVAL_RUN,
                object_id=run_id,
                object_marking=marking.banner(),
                details={
                    "status": "running",
                    "kind": kind,
                    "suite": suite_ref,
                    "system": system.label(),
                    "subject": system.subject or self.session.subject.name,
                    "items": item_count,
                },
            )
        return RunWriter(self.session, run_id)

    def begin_external(
        self,
        kind: str,
        system: SystemSpec,
        parameters: Mapping[str, Any],
        *,
        scorers: Mapping[str, str] | None = None,
        item_count: int = 0,
    ) -> RunWriter:
        """A run with no stored suite (red-team runs): record its items, then ``finish()``.

        Evaluator role; audited as ``eval.run``.
        """
        self.session.require(Action.EVALUATE, AuditAction.EVAL_RUN)
        if not kind or len(kind) > 32:
            raise InvalidInput("A run's kind is 1-32 characters.")
        return self._create(kind, system, parameters, scorers=scorers, item_count=item_count)

    def start(
        self,
        suite_ref: str,
        system: SystemSpec,
        *,
        scorers: Sequence[str] | None = None,
        concurrency: int = 4,
        retries: int = 2,
        timeout: float = 60.0,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> RunSummary:
        """Run ``system`` on the suite's items the session may read; the finished summary.

        Evaluator role. Ctrl-C or an error leaves the run ``interrupted`` (its finished items
        kept); :meth:`resume` completes it.
        """
        from garrison.evaluate import _runner

        self.session.require(Action.EVALUATE, AuditAction.EVAL_RUN)
        settings = _runner.Settings.checked(concurrency, retries, timeout, seed)
        plan = _runner.plan(self.session, suite_ref, system, scorers, settings)
        writer = self._create(
            plan.suite_kind,
            system,
            {**settings.to_dict(), "scorer_names": plan.scorer_names, "holdout": plan.holdout},
            suite_id=plan.suite_id,
            suite_ref=plan.suite_ref,
            scorers=plan.scorer_versions,
            item_count=len(plan.items),
            system_version=plan.system.version,
        )
        return _runner.execute(self.session, writer, plan, settings, progress=progress)

    def resume(self, run_ref: str, *, progress: Progress | None = None) -> RunSummary:
        """Finish an interrupted run: items already recorded are kept, errors asked again, and
        cached responses never re-asked. Evaluator role."""
        from garrison.evaluate import _runner

        self.session.require(Action.EVALUATE, AuditAction.EVAL_RUN)
        with self.session.workspace.catalog.transaction() as orm:
            row, _ = eval_runs.find_run(self.session, orm, run_ref)
            if row.status == "complete":
                raise InvalidInput(f"Run RUN-{row.id[:12]} is complete; nothing to resume.")
            if row.suite_ref is None:
                raise InvalidInput(
                    f"Run RUN-{row.id[:12]} has no suite to resume from (an external run)."
                )
            eval_runs.remove_error_items(orm, row.id)
            done = eval_runs.recorded_item_ids(orm, row.id, ("scored", "not-eligible"))
            run_id, suite_ref = row.id, row.suite_ref
            system = SystemSpec.from_dict(row.system)
            params = dict(row.parameters)
        settings = _runner.Settings.checked(
            int(params.get("concurrency", 4)),
            int(params.get("retries", 2)),
            float(params.get("timeout", 60.0)),
            int(params.get("seed", 0)),
        )
        plan = _runner.plan(
            self.session, suite_ref, system, params.get("scorer_names"), settings, skip=done
        )
        writer = RunWriter(self.session, run_id)
        writer._position = len(done) + 1
        with self.session.workspace.catalog.transaction() as orm:
            run = orm.get(EvalRunRow, run_id)
            assert run is not None
            marking = self.session.marking_of(orm, run.marking_id) or UNCLASSIFIED
            eval_runs.set_status(orm, self.session, run, "running", marking)
        return _runner.execute(self.session, writer, plan, settings, progress=progress)

    # -- reading --------------------------------------------------------------------------------

    def list(self) -> builtins.list[RunSummary]:
        """The runs whose marking the session dominates, newest first (audited)."""
        self.session.require(Action.READ, AuditAction.EVAL_RUNS_LIST)
        with self.session.workspace.catalog.transaction() as orm:
            found = eval_runs.readable_runs(self.session, orm)
            out = [self._summary(orm, row, marking) for row, marking in found]
        marking = join(*(s.marking for s in out)) if out else UNCLASSIFIED
        self.session.audit(
            AuditAction.EVAL_RUNS_LIST,
            object_marking=marking.banner(),
            details={"count": len(out)},
        )
        return out

    def get(self, ref: str) -> RunSummary:
        """One run (audited); NotFound when the session does not dominate its marking."""
        self.session.require(Action.READ, AuditAction.EVAL_RUN_READ)
        return self._summary_by_ref(ref)

    def items(self, ref: str, *, transcripts: bool = False) -> Iterator[ItemResult]:
        """The run's item results the session may read (each under its own marking), in order;
        with their transcripts when ``transcripts``."""
        self.session.require(Action.READ, AuditAction.EVAL_RUN_READ)
        sealer = eval_runs.Sealer(self.session)
        with self.session.workspace.catalog.transaction() as orm:
            row, run_marking = eval_runs.find_run(self.session, orm, ref)
            self._check_holdout(row)
            found = list(eval_runs.readable_item_rows(self.session, orm, row.id))
            results: builtins.list[ItemResult] = []
            for item_row, marking in found:
                result = _result(item_row, marking)
                if transcripts:
                    opened = sealer.open(
                        item_row.transcript,
                        eval_runs.transcript_aad(row.id, item_row.item_id),
                        "transcript",
                    )
                    result = _with_transcript(result, opened)
                results.append(result)
        self.session.audit(
            AuditAction.EVAL_RUN_READ,
            object_id=row.id,
            object_marking=run_marking.banner(),
            details={"items": len(results), "transcripts": transcripts},
        )
        yield from results

    def transcript(self, run_ref: str, item_id: str) -> dict[str, Any]:
        """One item's transcript (item, context, response), marked item-join-response; NotFound
        when the session may not read that marking (audited either way)."""
        self.session.require(Action.READ, AuditAction.EVAL_RUN_READ)
        sealer = eval_runs.Sealer(self.session)
        with self.session.workspace.catalog.transaction() as orm:
            row, _ = eval_runs.find_run(self.session, orm, run_ref)
            self._check_holdout(row)
            found = list(eval_runs.readable_item_rows(self.session, orm, row.id, item_id))
            if not found:
                self.session.audit(
                    AuditAction.EVAL_RUN_READ,
                    object_id=row.id,
                    decision="deny",
                    reason="no readable result of that item",
                )
                raise NotFound(f"No item {item_id[:64]!r} in run RUN-{row.id[:12]}.")
            item_row, marking = found[0]
            opened = sealer.open(
                item_row.transcript,
                eval_runs.transcript_aad(row.id, item_row.item_id),
                "transcript",
            )
        self.session.audit(
            AuditAction.EVAL_RUN_READ,
            object_id=row.id,
            object_marking=marking.banner(),
            details={"item": item_id, "transcript": True},
        )
        return {
            "run": f"RUN-{row.id[:12]}",
            "item_id": item_id,
            "marking": marking.banner(),
            **dict(opened),
        }

    def latest_for_model(self, model_id: str, card_marking: Marking) -> dict[str, Any] | None:
        """The newest complete run of the model version ``model_id`` (as the system under test,
        or as the assistant's generator) that the session may read, for the model's card: with
        its figures when ``card_marking`` dominates the run's marking, else only its reference
        (the card is marked lower than the run). None when there is none."""
        for summary in self.list():
            system = summary.system
            if summary.status != "complete":
                continue
            version = str(system.get("version") or "")
            if version != model_id and not version.endswith(f"/{model_id}"):
                continue
            if not dominates(card_marking, summary.marking):
                return {"run": summary.ref}
            return {
                "run": summary.ref,
                "marking": summary.marking.banner(),
                "suite": summary.suite,
                "created_at": summary.created_at.isoformat(),
                "metrics": {
                    name: {k: m.get(k) for k in ("value", "low", "high", "n")}
                    for name, m in summary.metrics.items()
                },
            }
        return None

    def samples(self, ref: str) -> builtins.list[Any]:
        """The run's readable items as report samples (input, target, output, scores), for the
        Inspect log export; each from its transcript."""
        from garrison.evaluate.report import Sample

        out = []
        for result in self.items(ref, transcripts=True):
            t = result.transcript
            item = t.get("item") or {}
            response = t.get("response") or {}
            out.append(
                Sample(
                    id=result.item_id,
                    input=item.get("input", {}),
                    target=item.get("expected", {}),
                    output=response,
                    scores=dict(result.scores),
                    metadata={
                        "status": result.status,
                        "marking": result.marking.banner(),
                        "cluster": result.cluster,
                        "slices": dict(result.slices),
                        "latency_ms": result.latency_ms,
                        "tokens": result.tokens,
                        "error": result.error,
                    },
                )
            )
        return out

    def report(self, ref: str) -> RunReport:
        """The run's report: every metric with its interval, per slice, and the power
        statement; marked with the run's marking (audited as ``eval.run-report``)."""
        from garrison.evaluate._reporting import run_report

        self.session.require(Action.READ, AuditAction.EVAL_RUN_REPORT)
        summary = self._summary_by_ref(ref, audit=False)
        results = list(self._all_items(summary.id))
        rules = workspace_rules(self.session)
        texts = run_texts(self.session, summary.id) if rules else []
        report, compiled = raised_report(rules, run_report(summary, results), texts)
        check_readable(
            self.session, report.marking, compiled, AuditAction.EVAL_RUN_REPORT, summary.id
        )
        self.session.audit(
            AuditAction.EVAL_RUN_REPORT,
            object_id=summary.id,
            object_marking=report.marking.banner(),
            details={"items": len(results)},
        )
        return report

    def compare(
        self, ref_a: str, ref_b: str, *, metrics: Sequence[str] | None = None, **gate: Any
    ) -> CompareReport:
        """Paired comparison of two runs of one suite (or two external runs of one kind, such as
        red-team runs, paired by item id) on the items both scored (Holm across metrics, a
        verdict per metric); marked with the join of both runs."""
        from garrison.evaluate._reporting import compare_report

        self.session.require(Action.READ, AuditAction.EVAL_COMPARE)
        a = self._summary_by_ref(ref_a, audit=False)
        b = self._summary_by_ref(ref_b, audit=False)
        same_suite = a.suite_id is not None and a.suite_id == b.suite_id
        same_external = a.suite_id is None and b.suite_id is None and a.kind == b.kind
        if not (same_suite or same_external):
            raise InvalidInput(
                "Runs can be compared only on the same suite version (or, for runs without a "
                "suite, of the same kind)."
            )
        report = compare_report(
            (a, list(self._all_items(a.id))),
            (b, list(self._all_items(b.id))),
            metrics=metrics,
            **gate,
        )
        rules = workspace_rules(self.session)
        if rules:
            ta, tb = run_texts(self.session, a.id), run_texts(self.session, b.id)
            ra, _ = raised_report(rules, report.a, ta)
            rb, _ = raised_report(rules, report.b, tb)
            both = apply_rules(rules, [*ta, *tb], join(report.marking, ra.marking, rb.marking))
            report = dataclasses.replace(report, a=ra, b=rb, marking=both.marking)
            check_readable(
                self.session, report.marking, both, AuditAction.EVAL_COMPARE, f"{a.id}:{b.id}"
            )
        self.session.audit(
            AuditAction.EVAL_COMPARE,
            object_id=f"{a.id}:{b.id}",
            object_marking=report.marking.banner(),
            details={"metrics": [c.metric for c in report.comparisons]},
        )
        return report

    # -- internals ------------------------------------------------------------------------------

    def _check_holdout(self, row: EvalRunRow) -> None:
        """A run of a holdout suite is shown item by item to the evaluator role only (its
        summary, report figures and comparisons are not item by item)."""
        if not row.parameters.get("holdout"):
            return
        if permits(self.session.subject, Action.EVALUATE):
            return
        self.session.audit(
            AuditAction.EVAL_RUN_READ,
            object_id=row.id,
            decision="deny",
            reason="holdout items are for the evaluator role only",
        )
        raise NotPermitted(
            f"{self.session.subject.name} may not see the items of RUN-{row.id[:12]}, a run of "
            "a holdout suite: only the evaluator role may."
        )

    def _all_items(self, run_id: str) -> builtins.list[ItemResult]:
        with self.session.workspace.catalog.transaction() as orm:
            return [
                _result(r, m) for r, m in eval_runs.readable_item_rows(self.session, orm, run_id)
            ]

    def _summary(self, orm: Any, row: EvalRunRow, marking: Marking) -> RunSummary:
        from garrison.evaluate._reporting import summary_metrics

        found = list(eval_runs.readable_item_rows(self.session, orm, row.id))
        rows = [r for r, _ in found]
        results = [_result(r, m) for r, m in found]
        return RunSummary(
            id=row.id,
            kind=row.kind,
            suite=row.suite_ref,
            suite_id=row.suite_id,
            system=dict(row.system),
            scorers={str(k): str(v) for k, v in (row.scorers or {}).items()},
            parameters=dict(row.parameters),
            status=row.status,
            marking=marking,
            counts=_counts(rows, row.item_count),
            metrics=summary_metrics(results, seed=int(row.parameters.get("seed", 0))),
            created_by=row.created_by,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )

    def _summary_by_ref(self, ref: str, *, audit: bool = True) -> RunSummary:
        with self.session.workspace.catalog.transaction() as orm:
            try:
                row, marking = eval_runs.find_run(self.session, orm, ref)
            except NotFound:
                if audit:
                    self.session.audit(
                        AuditAction.EVAL_RUN_READ,
                        object_id=ref[:64],
                        decision="deny",
                        reason="no such run readable by this subject",
                    )
                raise
            summary = self._summary(orm, row, marking)
        if audit:
            self.session.audit(
                AuditAction.EVAL_RUN_READ,
                object_id=summary.id,
                object_marking=marking.banner(),
                details={"status": summary.status},
            )
        return summary

    def _writer_summary(self, run_id: str) -> RunSummary:
        """The summary its writer gets back: the whole run when they dominate its marking, else
        only the items they may read, marked with the join of those (never the rest)."""
        with self.session.workspace.catalog.transaction() as orm:
            row = orm.get(EvalRunRow, run_id)
            if row is None:
                raise NotFound(f"No evaluation run {run_id[:12]}.")
            marking = self.session.marking_of(orm, row.marking_id) or UNCLASSIFIED
            if not self.session.can_read(marking):
                found = list(eval_runs.readable_item_rows(self.session, orm, run_id))
                marking = join(*(m for _, m in found)) if found else UNCLASSIFIED
            return self._summary(orm, row, marking)


def _with_transcript(result: ItemResult, transcript: Mapping[str, Any]) -> ItemResult:
    from dataclasses import replace

    return replace(result, transcript=dict(transcript))
