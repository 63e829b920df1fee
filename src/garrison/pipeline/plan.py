"""Run planning: what a run of a pipeline would redo, per document (``garrison run --dry-run``).

See :mod:`garrison.pipeline.executor` for the head, middle and tail segments and the two run
keys each document carries; this module computes the head keys from what the acting subject
reads and compares them with the stored ones. It only reads.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from garrison.pipeline._models import resolve_models, resolved
from garrison.pipeline.spec import PREDICT_STAGES, PipelineSpec, StageSpec
from garrison.security.audit import AuditAction
from garrison.security.compilation import CompilationRule, rules_digest
from garrison.security.policy import Action
from garrison.store.compilation import workspace_rules
from garrison.store.pipeline_state import plan_rows
from garrison.store.session import Session

__all__ = ["RunPlan", "plan_run"]


# -- the plan: what a run will redo ---------------------------------------------------------------


@dataclass(frozen=True)
class _Parts:
    """A pipeline's stages split into head, middle and tail (see the module docs), and the
    predict stages (``classify``), which run after the rest and have a run key of their own."""

    head: tuple[StageSpec, ...]
    middle: tuple[StageSpec, ...]
    tail: tuple[StageSpec, ...]
    predict: tuple[StageSpec, ...] = ()

    @classmethod
    def of(cls, all_specs: Sequence[StageSpec]) -> _Parts:
        specs = [s for s in all_specs if s.name not in PREDICT_STAGES]
        predict = tuple(s for s in all_specs if s.name in PREDICT_STAGES)
        corpus = [n for n, spec in enumerate(specs) if spec.build().scope == "corpus"]
        if not corpus:
            return cls(tuple(specs), (), (), predict)
        first, last = corpus[0], corpus[-1]
        return cls(
            tuple(specs[:first]),
            tuple(specs[first : last + 1]),
            tuple(specs[last + 1 :]),
            predict,
        )


def predict_key(specs: Sequence[StageSpec], model_ids: Mapping[str, str]) -> str | None:
    """The run key of the predict stages: their parameters and the classifier version ids
    their ``model`` references resolved to (None without predict stages)."""
    if not specs:
        return None
    parts = [{**s.to_dict(), "model_id": model_ids[getattr(s.params, "model", "")]} for s in specs]
    return _hash(json.dumps(parts, sort_keys=True))


def _stages_key(specs: Sequence[StageSpec], compilation: str = "") -> str:
    """Hash of ``specs``; with a ``chunk`` stage among them, of the compilation rules that
    mark its chunks too (``compilation``: their digest), so a changed rule set redoes them."""
    data: list[dict[str, Any]] = [s.to_dict() for s in specs]
    if compilation and any(s.name == "chunk" for s in specs):
        data.append({"compilation_rules": compilation})
    return _hash(json.dumps(data, sort_keys=True))


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class RunPlan:
    """What a run will do, per document (``garrison run --dry-run`` prints it)."""

    pipeline: str
    digest: str
    #: Input documents in processing order, and each one's new head key.
    inputs: list[str]
    head_keys: dict[str, str]
    #: Documents whose head stages run: never processed, or changed (elements, markings, head
    #: stage parameters or versions), or left unfinished by a failed or interrupted run.
    new: list[str]
    changed: list[str]
    #: Documents whose head results are reused.
    unchanged: list[str]
    #: Documents whose derived records go: superseded, removed or no longer parsed.
    remove: list[str]
    #: Whether the stages after the corpus stages changed (then every document is rewritten).
    tail_changed: bool
    has_corpus_stage: bool
    #: Everything is redone (``--full``).
    full: bool = False
    #: The predict stages' run key, and the unchanged documents whose predictions it redoes
    #: (a classifier changed, or a classify stage was added or removed).
    predict_key: str | None = None
    repredict: list[str] = field(default_factory=list)
    #: The digest of the compilation rules the chunk stage applies ("" when there are none).
    compilation: str = ""

    @property
    def head(self) -> list[str]:
        return self.new + self.changed

    def to_dict(self, *, ids: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "pipeline": self.pipeline,
            "pipeline_digest": self.digest,
            "documents": len(self.inputs),
            "new": len(self.new),
            "changed": len(self.changed),
            "unchanged": len(self.unchanged),
            "remove": len(self.remove),
            "tail_stages_changed": self.tail_changed,
            "corpus_stage": self.has_corpus_stage,
            "repredict": len(self.repredict),
        }
        if ids:
            out["ids"] = {"new": self.new, "changed": self.changed, "remove": self.remove}
        return out


def plan_run(
    session: Session,
    spec: PipelineSpec,
    *,
    doc_ids: Sequence[str] | None = None,
    full: bool = False,
    model_ids: Mapping[str, str] | None = None,
    rules: Sequence[CompilationRule] | None = None,
) -> RunPlan:
    """Work out what a run of ``spec`` as ``session``'s subject would redo (reads only).

    ``model_ids`` maps each classify stage's ``model`` reference to the version id the run
    resolved it to; without it, the references are resolved here (the subject must dominate
    each classifier: one it may not read is not found). ``rules``: the workspace's compilation
    rules the run applies (loaded here when not given); they are part of the chunk stage's key.
    """
    session.require(Action.RUN_PIPELINE, AuditAction.PIPELINE_PLAN)
    if not resolved(spec):
        spec, _ = resolve_models(session, spec, use=False)
    parts = _Parts.of(spec.stages)
    if model_ids is None:
        model_ids = _resolve_ids(session, parts.predict)
    new_predict_key = predict_key(parts.predict, model_ids)
    if rules is None:
        rules = workspace_rules(session)
    compilation = rules_digest(rules) if rules else ""
    head_sig = _stages_key(parts.head, compilation)
    tail_sig = _stages_key(parts.middle + parts.tail, compilation)
    rows = plan_rows(session, doc_ids)
    inputs = [doc_id for doc_id, _ in rows.inputs]
    # What each document looks like to this subject: its marking (the index carries it),
    # its readable elements and their markings.
    elements: dict[str, list[str]] = defaultdict(list)
    for doc_id, marking_id in rows.inputs:
        elements[doc_id].append(f"document:{marking_id}")
    for doc_id, element_id, marking_id in rows.elements:
        elements[doc_id].append(f"{element_id}:{marking_id}")
    stored, remove = rows.stored, rows.remove
    head_keys = {d: _hash(head_sig + "\n" + "\n".join(elements[d])) for d in inputs}
    new, changed, unchanged, repredict = [], [], [], []
    tail_changed = False
    for doc_id in inputs:
        row = stored.get(doc_id)
        if row is None:
            new.append(doc_id)
        elif full or row.head_key != head_keys[doc_id]:
            changed.append(doc_id)
        else:
            unchanged.append(doc_id)
            if row.tail_key is None or not row.tail_key.startswith(tail_sig[:16]):
                tail_changed = True
            if row.predict_key != new_predict_key:
                repredict.append(doc_id)
    return RunPlan(
        pipeline=spec.name,
        digest=spec.digest,
        inputs=inputs,
        head_keys=head_keys,
        new=new,
        changed=changed,
        unchanged=unchanged,
        remove=remove,
        tail_changed=tail_changed or full,
        has_corpus_stage=bool(parts.middle),
        full=full,
        predict_key=new_predict_key,
        repredict=repredict,
        compilation=compilation,
    )


def _resolve_ids(session: Session, specs: Sequence[StageSpec]) -> dict[str, str]:
    from garrison.models import Models

    models = Models(session)
    return {
        ref: models.resolve(ref).id
        for ref in dict.fromkeys(str(getattr(s.params, "model", "")) for s in specs)
    }
