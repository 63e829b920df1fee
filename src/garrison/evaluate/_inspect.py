"""A run as Inspect's log (``EvalLog`` JSON, log format version 2), so Inspect's viewer opens it.

The document is plain JSON built here, following the schema ``inspect_ai`` publishes for
``EvalLog``: ``status``; ``eval`` (the spec: task = the suite, model = the system, dataset =
the suite's items, packages = Garrison's version); ``plan``; ``results`` (one score entry per
metric with its value, interval and n as metrics); ``stats``; ``samples`` (input, target, the
response as the model output, scores). Nothing here imports ``inspect_ai``: writing a log never
reaches for its token counting (which fetches ``tiktoken`` files) or anything else.

Markings: the log is marked like the report (``metadata.marking``, the spec's metadata and the
first tag). Every sample carries its own marking in ``metadata.marking``; a sample without one,
or one the report's marking does not dominate, is refused -- the file would be marked too low.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from garrison.core.errors import InvalidInput, MarkingError
from garrison.evaluate._report_data import RunReport, Sample, estimate_json
from garrison.security.markings import Marking, dominates, parse_marking

__all__ = ["INSPECT_LOG_VERSION", "inspect_log", "inspect_log_name", "write_inspect_log"]

#: The version of Inspect's log format this writes.
INSPECT_LOG_VERSION = 2


#: The field of an item's input that is its text, in order of preference (by suite kind:
#: qa ``question``, generation ``prompt``, classification and extraction ``text``, retrieval
#: ``query``).
_INPUT_KEYS = ("question", "prompt", "text", "query")
#: The field of an item's expected output that is its target (qa ``answer``, generation
#: ``reference``, classification ``label``; retrieval ``relevant`` chunk ids as a list).
_TARGET_KEYS = ("answer", "reference", "label", "target", "relevant")


def _pick(value: Any, keys: Sequence[str]) -> Any:
    """The one field of a mapping that Inspect shows (the whole mapping when none is there)."""
    if isinstance(value, Mapping):
        for key in keys:
            if isinstance(value.get(key), str | list):
                return value[key]
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _target(value: Any) -> str | list[str]:
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    return _text(value)


def _output_text(value: Any) -> str:
    """A response's text (a classifier's: its label; a retrieval system's: its ranked ids)."""
    if isinstance(value, Mapping):
        for key in ("text", "label", "retrieved"):
            if value.get(key) is not None:
                return _text(value[key])
    return _text(value)


def _sample_marking(sample: Sample, report_marking: Marking) -> Marking:
    raw = sample.metadata.get("marking")
    if raw is None:
        raise InvalidInput(f"Sample {sample.id!r} carries no marking; every exported sample must.")
    marking = raw if isinstance(raw, Marking) else parse_marking(str(raw))
    if not dominates(report_marking, marking):
        raise MarkingError(
            f"Sample {sample.id!r} is marked {marking.banner()}, above the report's "
            f"{report_marking.banner()}; the log cannot be marked lower than its samples.",
            rule="no-write-down",
        )
    return marking


def _jsonable(value: Any) -> Any:
    if isinstance(value, Marking):
        return value.banner()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _model_name(report: RunReport) -> str:
    """Inspect names a model ``provider/name``: ours is ``garrison/`` and the system's ref
    (``garrison/assistant:k=8``), prefixed with its kind when the ref does not start with it."""
    system = report.system
    ref = str(system.get("ref") or system.get("version") or system.get("name") or "system")
    kind = str(system.get("kind") or "system")
    return f"garrison/{ref}" if ref.startswith(kind) else f"garrison/{kind}/{ref}"


def _sample_json(sample: Sample, marking: Marking, model: str, epoch: int) -> dict[str, Any]:
    question, answer = _text(_pick(sample.input, _INPUT_KEYS)), _output_text(sample.output)
    metadata = {str(k): _jsonable(v) for k, v in sample.metadata.items()}
    # Inspect shows one input text and one target: the whole item stays in the metadata.
    if isinstance(sample.input, Mapping):
        metadata["input_fields"] = _jsonable(sample.input)
    if isinstance(sample.target, Mapping):
        metadata["expected_fields"] = _jsonable(sample.target)
    metadata["marking"] = marking.banner()
    return {
        "id": str(sample.id),
        "epoch": epoch,
        "input": question,
        "target": _target(_pick(sample.target, _TARGET_KEYS)),
        "messages": [
            {"role": "user", "content": question, "source": "input"},
            {"role": "assistant", "content": answer, "source": "generate", "model": model},
        ],
        "output": {
            "model": model,
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": answer,
                        "source": "generate",
                        "model": model,
                    },
                    "stop_reason": "stop",
                }
            ],
            "completion": answer,
        },
        "scores": {str(k): {"value": float(v)} for k, v in sample.scores.items()},
        "metadata": metadata,
        "store": {},
        "events": [],
        "model_usage": {},
        "attachments": {},
    }


def _scores_json(report: RunReport) -> list[dict[str, Any]]:
    scores = []
    for metric in report.metrics:
        est = estimate_json(metric.estimate)
        metrics: dict[str, Any] = {
            "mean": {"name": "mean", "value": est["value"]},
            "ci_low": {"name": "ci_low", "value": est["low"]},
            "ci_high": {"name": "ci_high", "value": est["high"]},
        }
        metrics = {k: v for k, v in metrics.items() if v["value"] is not None}
        scores.append(
            {
                "name": metric.name,
                "scorer": metric.name,
                "scored_samples": int(metric.estimate.n),
                "params": {"version": report.scorers.get(metric.name)}
                if metric.name in report.scorers
                else {},
                "metrics": metrics,
                "metadata": {
                    "interval": est,
                    "binary": metric.binary,
                    "slices": {
                        dim: {k: estimate_json(e) for k, e in sl.items()}
                        for dim, sl in metric.slices.items()
                    },
                },
            }
        )
    return scores


def inspect_log(report: RunReport, samples: Iterable[Sample], *, epoch: int = 1) -> dict[str, Any]:
    """The run as an ``EvalLog`` JSON document: the report's figures, and ``samples`` (each
    marked in its metadata, every marking dominated by the report's)."""
    banner = report.marking.banner()
    model = _model_name(report)
    rows: list[dict[str, Any]] = []
    for sample in samples:
        rows.append(_sample_json(sample, _sample_marking(sample, report.marking), model, epoch))
    suite = _jsonable(report.suite)
    system = _jsonable(report.system)
    suite_name = str(suite.get("name") or report.title)
    counts = {str(k): int(v) for k, v in report.counts.items()}
    total = counts.get("total", sum(counts.get(k, 0) for k in ("scored", "not-eligible", "error")))
    parameters = system.get("parameters") if isinstance(system.get("parameters"), dict) else {}
    marked = {"marking": banner, "portion": report.marking.portion()}
    return {
        "version": INSPECT_LOG_VERSION,
        "status": "success",
        "eval": {
            "eval_id": report.run_id,
            "run_id": report.run_id,
            "created": report.created,
            "task": suite_name,
            "task_id": str(suite.get("id") or suite.get("ref") or suite_name),
            "task_version": str(suite.get("version") or suite.get("ref") or 0),
            "task_display_name": f"{suite_name} ({banner})",
            "task_attribs": {},
            "task_args": {},
            "solver": str(system.get("kind") or "system"),
            "tags": [banner],
            "dataset": {
                "name": suite_name,
                "location": str(suite.get("ref") or suite_name),
                "samples": total,
                "sample_ids": [r["id"] for r in rows],
                "shuffled": False,
            },
            "model": model,
            "model_args": parameters,
            "config": {},
            "packages": {"garrison": report.garrison_version},
            "metadata": {
                **marked,
                "suite": suite,
                "system": system,
                "scorers": {str(k): str(v) for k, v in report.scorers.items()},
                "counts": counts,
            },
        },
        "plan": {
            "name": "plan",
            "steps": [{"solver": str(system.get("kind") or "system"), "params": system}],
            "config": {},
        },
        "results": {
            "total_samples": total,
            "completed_samples": counts.get("scored", len(rows)),
            "scores": _scores_json(report),
            "metadata": {**marked, "power": list(report.power), "notes": list(report.notes)},
        },
        "stats": {
            "started_at": report.created,
            "completed_at": report.created,
            "model_usage": {},
        },
        "tags": [banner],
        "metadata": marked,
        "samples": rows,
    }


_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


def inspect_log_name(report: RunReport) -> str:
    """The file name Inspect gives a log, ``{created}_{task}_{id}.json`` (e.g.
    ``2026-12-02T03-00-00+00-00_depot-qa_3b2515b1401d.json``): Inspect's viewer and
    ``list_eval_logs`` list only files named so."""
    try:
        created = datetime.fromisoformat(report.created)
    except ValueError:
        created = datetime.now(UTC)
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H-%M-%S+00-00")
    suite = str(report.suite.get("name") or report.suite.get("ref") or "suite").split("@")[0]
    task = _UNSAFE.sub("-", suite).strip("-") or "suite"
    run = _UNSAFE.sub("-", report.run_id)[:12] or "run"
    return f"{stamp}_{task[:64]}_{run}.json"


def write_inspect_log(
    path: str | os.PathLike[str], report: RunReport, samples: Sequence[Sample] | Iterable[Sample]
) -> Path:
    """Write :func:`inspect_log` to ``path`` (a ``.json`` file, or a folder: then the file is
    named as Inspect names logs, :func:`inspect_log_name`, so its viewer lists it)."""
    target = Path(path)
    if target.is_dir():
        target = target / inspect_log_name(report)
    if target.suffix != ".json":
        raise InvalidInput(f"An Inspect log is written as .json, not {target.name!r}.")
    document = inspect_log(report, samples)
    target.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", "utf-8")
    return target
