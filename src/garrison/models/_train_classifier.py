"""Training a classifier on a marked dataset version: ``logreg`` or ``setfit``.

The dataset's records give a text and a label each: ``--text-field`` and ``--label-field`` name
``text`` (the record's text), ``fields.<column>`` (a source column of a CSV, spreadsheet or SQL
table, kept under a record's ``fields`` when the dataset was made with ``--field fields``), a
bare column name (the same), or another exported record field (``source``, ``title``...). Only
the text field is ever embedded: a record's ``text`` lists every column (``note: ...\\nlabel:
...``), so naming ``text`` beside a label column that it spells out is refused.

The classifier fits on the train split, picks its regularization ``C`` on the validation split
(or, without one, on a seeded, stratified fifth of train, refitting on all of train after),
and is measured on the test split (:mod:`garrison.models._classifier_metrics`). The same
dataset version, fields, embedder and seed give the same version id: embeddings come from the
cache that pins each text's vector, the fits are deterministic and the files are written
canonically.

Its marking is the join of the records it learned from (all of the dataset, or with
``max_marking`` only those that ceiling dominates) and its embedder's; the dataset, the
embedder and the result are recorded in the audit log as ``model.train``.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from garrison.core.errors import CheckFailed, InvalidInput, NotPermitted
from garrison.datasets import Datasets, DatasetVersion, SnapshotRecord
from garrison.datasets._versions import STALE_MARKING
from garrison.models._classifier_metrics import classification_report
from garrison.models._registry import _NAME, Models, ModelVersion
from garrison.models._training import (
    Checkpoint,
    Deadline,
    EmbeddingCache,
    Progress,
    embed_texts,
    text_sha256,
    training_key,
)
from garrison.models._use import open_embedder, write_classifier
from garrison.models.embedding import MINILM
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, dominates, join
from garrison.security.policy import Action
from garrison.store.session import Session

__all__ = [
    "C_GRID",
    "MIN_RECORDS",
    "TRAINERS",
    "TrainedClassifier",
    "train_classifier",
]

TRAINERS = ("logreg", "setfit")
#: The regularization strengths tried (inverse: small C, strong regularization).
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
#: The fewest records a split may hold.
MIN_RECORDS = {"train": 4, "test": 2}
#: Validation splits smaller than this are replaced by a held-out part of train.
MIN_VALIDATION = 2
#: Record attributes a field may name besides its exported fields.
_TOP = ("text", "id", "doc_id", "kind", "marking")


@dataclass
class TrainedClassifier:
    """A registered classifier version and the report of its training."""

    version: ModelVersion
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Example:
    id: str
    text: str
    label: str
    split: str
    marking: Marking


# -- reading the dataset -------------------------------------------------------------------------


#: What a getter gives for a record that lacks the exported field it reads (left out).
_ABSENT = object()


def _getter(
    records: Sequence[SnapshotRecord], spec: str, dataset: str
) -> Callable[[SnapshotRecord], Any]:
    """How to read field ``spec`` of a record; InvalidInput when no record has it."""
    columns = {c for r in records for c in (r.fields.get("fields") or {})}
    exported = {k for r in records for k in r.fields if k != "fields"}

    def column(name: str) -> Callable[[SnapshotRecord], Any]:
        return lambda r: (r.fields.get("fields") or {}).get(name)

    if spec in _TOP:
        return lambda r: getattr(r, spec)
    if spec.startswith("fields.") and spec[len("fields.") :] in columns:
        return column(spec[len("fields.") :])
    if spec in columns:
        return column(spec)
    if spec in exported:
        return lambda r: r.fields.get(spec)
    head, dot, key = spec.partition(".")
    if dot and key and head in exported:
        # A key of an exported mapping (``labels.aggregate`` of a labeling export): a record
        # without that field was not in the export and is left out, not an empty label.
        return lambda r: (
            r.fields[head].get(key) if isinstance(r.fields.get(head), dict) else _ABSENT
        )
    known = sorted(_TOP) + sorted(exported) + sorted(f"fields.{c}" for c in columns)
    hint = "" if columns else " (make the dataset with --field fields to carry source columns)"
    raise InvalidInput(
        f"Dataset {dataset} has no field {spec!r}; its records carry {', '.join(known)}{hint}."
    )


def _column_of(spec: str, records: Sequence[SnapshotRecord]) -> str | None:
    """The source column ``spec`` names, if it names one."""
    columns = {c for r in records for c in (r.fields.get("fields") or {})}
    name = spec[len("fields.") :] if spec.startswith("fields.") else spec
    return name if name in columns and spec not in _TOP else None


def _label_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, dict)):
        raise InvalidInput("A label field holds one value per record, not a list or a mapping.")
    text = str(value).strip()
    return text or None


def _examples(
    session: Session,
    version: DatasetVersion,
    records: Sequence[SnapshotRecord],
    text_field: str,
    label_field: str,
) -> list[_Example]:
    if text_field == label_field:
        raise InvalidInput("The text field and the label field must be different fields.")
    name = f"{version.name}@{version.id[:12]}"
    get_text = _getter(records, text_field, name)
    get_label = _getter(records, label_field, name)
    label_column = _column_of(label_field, records)
    out: list[_Example] = []
    empty = missing = 0
    for record in records:
        text = get_text(record)
        raw = get_label(record)
        if raw is _ABSENT:
            continue
        label = _label_value(raw)
        if text is None or isinstance(text, (list, dict)):
            missing += 1
            continue
        if label is None:
            empty += 1
            continue
        text = str(text)
        if (
            label_column is not None
            and text_field == "text"
            and any(line.startswith(f"{label_column}: ") for line in text.splitlines())
        ):
            raise InvalidInput(
                f"The text field 'text' spells out the label column {label_column!r} "
                "('column: value' lines); name the column that holds the text, "
                "e.g. --text-field fields.note."
            )
        out.append(
            _Example(record.id, text, label, record.split, session.parse_marking(record.marking))
        )
    if empty:
        raise InvalidInput(
            f"{empty} of the {len(records)} records have an empty label field {label_field!r}; "
            "give each a label or leave them out of the dataset."
        )
    if missing:
        raise InvalidInput(
            f"{missing} of the {len(records)} records have no text in field {text_field!r}."
        )
    return out


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()


def _splits(
    examples: list[_Example], dataset: str, label_field: str, seed: int
) -> tuple[list[_Example], list[_Example], list[_Example], bool]:
    """(fit, validation, test, held_out): validation held out of train when too small."""
    by_split: dict[str, list[_Example]] = {"train": [], "validation": [], "test": []}
    for example in examples:
        by_split.setdefault(example.split, []).append(example)
    for split, least in MIN_RECORDS.items():
        count = len(by_split[split])
        if count < least:
            raise InvalidInput(
                f"The {split} split of dataset {dataset} has {count} usable record(s); "
                f"training a classifier needs at least {least} (the records of one document, "
                "such as one file or table, always share a split)."
            )
    train = by_split["train"]
    classes = Counter(e.label for e in train)
    if len(classes) < 2:
        (only,) = classes
        raise InvalidInput(
            f"The train split of dataset {dataset} has only one class in {label_field!r} "
            f"({only!r}); a classifier needs at least two."
        )
    # A validation record of a class train lacks can only be missed: it says nothing of C.
    validation = [e for e in by_split["validation"] if e.label in classes]
    if len(validation) >= MIN_VALIDATION:
        return train, validation, by_split["test"], False
    held: list[_Example] = []
    for label in sorted(classes):
        members = sorted((e for e in train if e.label == label), key=lambda e: _rank(seed, e.id))
        if len(members) >= 2:
            held.extend(members[: max(1, round(len(members) * 0.2))])
    held_ids = {e.id for e in held}
    fit = [e for e in train if e.id not in held_ids]
    if not held or len({e.label for e in fit}) < 2:
        raise InvalidInput(
            f"Dataset {dataset} has no validation split and too few train records to hold "
            "some out; add a validation split."
        )
    return fit, held, by_split["test"], True


# -- fitting -------------------------------------------------------------------------------------

Matrix = npt.NDArray[np.float64]


def softmax_probabilities(
    x: Matrix, weight: npt.NDArray[np.float32], bias: npt.NDArray[np.float32]
) -> Matrix:
    """What a stored head predicts (as :class:`garrison.models.Classifier` does)."""
    logits = x @ weight.T.astype(np.float64) + bias.astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float64)


#: A softmax head: weight rows and biases.
Head = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]


def fit_head(x: Matrix, y: npt.NDArray[np.int64], classes: int, c: float, seed: int) -> Head:
    """A logistic regression at ``C = c`` as a softmax head (weight rows, biases)."""
    from sklearn.exceptions import ConvergenceWarning  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    model = LogisticRegression(C=c, max_iter=5000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    if classes == 2 and coef.shape[0] == 1:  # binary: one row; the softmax form is symmetric
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    return coef.astype(np.float32), intercept.astype(np.float32)


def _scores(probs: Matrix, y: npt.NDArray[np.int64]) -> dict[str, float]:
    pred = probs.argmax(axis=1)
    f1s = []
    for c in sorted(set(y.tolist()) | set(pred.tolist())):
        tp = float(np.sum((pred == c) & (y == c)))
        denom = float(np.sum(pred == c) + np.sum(y == c))
        f1s.append(2 * tp / denom if denom else 0.0)
    picked = np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)
    return {
        "macro_f1": round(float(np.mean(f1s)), 6),
        "accuracy": round(float(np.mean(pred == y)), 6),
        "log_loss": round(float(-np.mean(np.log(picked))), 6),
    }


def select_c(
    fit_x: Matrix,
    fit_y: npt.NDArray[np.int64],
    val_x: Matrix,
    val_y: npt.NDArray[np.int64],
    classes: int,
    *,
    seed: int,
    done: dict[str, dict[str, float]],
    save: Callable[[dict[str, dict[str, float]]], None],
    progress: Progress | None,
    deadline: Deadline,
    heads: dict[str, Head] | None = None,
) -> tuple[float, dict[str, dict[str, float]], bool]:
    """The best C of the grid on validation (macro-F1, then log-loss, then the smaller C).

    ``done`` holds grid points finished by an earlier, interrupted run; each new one is saved
    (and its head kept in ``heads``, so the chosen one need not be fitted again).
    Returns (C, every point's scores, whether the deadline cut the grid short).
    """
    scores = dict(done)
    cut = False
    for number, c in enumerate(C_GRID, start=1):
        key = repr(c)
        if key not in scores:
            if deadline.passed():
                cut = True
                break
            weight, bias = fit_head(fit_x, fit_y, classes, c, seed)
            scores[key] = _scores(softmax_probabilities(val_x, weight, bias), val_y)
            if heads is not None:
                heads[key] = (weight, bias)
            save(scores)
        if progress is not None:
            progress("select", number, len(C_GRID))
    if not scores:
        raise CheckFailed(
            f"Training reached its {deadline.max_minutes}-minute limit before any model was "
            "fitted; run it again with the same arguments to resume from its checkpoint."
        )
    best = min(scores, key=lambda k: (-scores[k]["macro_f1"], scores[k]["log_loss"], float(k)))
    return float(best), scores, cut


# -- the training --------------------------------------------------------------------------------


@dataclass
class _Run:
    """What one training works with, shared by both trainers."""

    session: Session
    name: str
    dataset: DatasetVersion
    embedder: ModelVersion
    labels: list[str]
    fit: list[_Example]
    validation: list[_Example]
    test: list[_Example]
    held_out: bool
    seed: int
    checkpoint: Checkpoint
    state: dict[str, Any]
    deadline: Deadline
    progress: Progress | None
    resumed: dict[str, int] = field(default_factory=dict)

    def y(self, examples: list[_Example]) -> npt.NDArray[np.int64]:
        index = {label: i for i, label in enumerate(self.labels)}
        return np.array([index[e.label] for e in examples], dtype=np.int64)

    def save(self, **changes: Any) -> None:
        self.state.update(changes)
        self.checkpoint.save(self.state)

    def head(
        self, vectors: Callable[[list[_Example]], Matrix]
    ) -> tuple[float, dict[str, Any], npt.NDArray[np.float32], npt.NDArray[np.float32], bool]:
        """Pick C, fit the head, and measure it on test."""
        fit_x, val_x = vectors(self.fit), vectors(self.validation)
        done = dict(self.state.get("grid", {}))
        if done:
            self.resumed["grid_points"] = len(done)
        heads: dict[str, Head] = {}
        c, grid, cut = select_c(
            fit_x,
            self.y(self.fit),
            val_x,
            self.y(self.validation),
            len(self.labels),
            seed=self.seed,
            done=done,
            save=lambda scores: self.save(grid=scores),
            progress=self.progress,
            deadline=self.deadline,
            heads=heads,
        )
        if not self.held_out and repr(c) in heads:
            weight, bias = heads[repr(c)]  # fitted on train already (the fit is deterministic)
        else:
            final = self.fit + self.validation if self.held_out else self.fit
            final_x = np.vstack([fit_x, val_x]) if self.held_out else fit_x
            weight, bias = fit_head(final_x, self.y(final), len(self.labels), c, self.seed)
        probs = softmax_probabilities(vectors(self.test), weight, bias)
        if self.progress is not None:
            self.progress("evaluate", 1, 1)
        metrics = classification_report(
            self.labels, [e.label for e in self.test], probs, seed=self.seed
        )
        selection = {
            "C": c,
            "on": "held-out train" if self.held_out else "validation",
            "grid": [
                {"C": float(k), **v} for k, v in sorted(grid.items(), key=lambda i: float(i[0]))
            ],
        }
        return c, {"metrics": metrics, "selection": selection}, weight, bias, cut


def _logreg(run: _Run, model_folder: Path) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """Embed (through the cache), select, fit, write the folder; (parameters, report, cut)."""
    _, model = open_embedder(run.session, run.embedder.id, purpose="train")
    examples = run.fit + run.validation + run.test
    cache = EmbeddingCache(run.session, run.embedder.id)
    vectors, cached = embed_texts(
        model,
        [e.text for e in examples],
        cache=cache,
        progress=run.progress,
        deadline=run.deadline,
    )
    if cached:
        run.resumed["cached_embeddings"] = cached
    if any(text_sha256(e.text) not in vectors for e in examples):
        raise CheckFailed(
            f"Training reached its {run.deadline.max_minutes}-minute limit while embedding; run "
            "it again with the same arguments to resume from the embeddings made so far."
        )

    def matrix(part: list[_Example]) -> Matrix:
        return np.stack([vectors[text_sha256(e.text)] for e in part]).astype(np.float64)

    c, report, weight, bias, cut = run.head(matrix)
    write_classifier(
        model_folder,
        trainer="logreg",
        labels=run.labels,
        weight=weight,
        bias=bias,
        embedder={"id": run.embedder.id},
    )
    return {"C": c}, report, cut


def train_classifier(
    session: Session,
    name: str,
    dataset_ref: str,
    text_field: str,
    label_field: str,
    *,
    trainer: str = "logreg",
    embedder: str = MINILM,
    seed: int = 0,
    max_marking: str | None = None,
    max_minutes: float | None = None,
    epochs: int = 1,
    progress: Progress | None = None,
) -> TrainedClassifier:
    """Train, measure and register a classifier (stewards, evaluators; audited).

    Raises InvalidInput (nothing registered) for an unknown trainer, a dataset without the named
    fields, empty labels, one class, or too few records in a split; NotFound for a dataset or
    embedder the subject may not read; CheckFailed when ``max_minutes`` ends the run before a
    model exists (a re-run resumes). An exception raised from ``progress`` (or Ctrl-C) stops the
    run; running it again with the same arguments resumes from its checkpoint.
    """
    started = time.monotonic()
    if trainer not in TRAINERS:
        raise InvalidInput(f"Unknown trainer {trainer!r}: use {' or '.join(TRAINERS)}.")
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            "A model name is 1-128 letters, digits, '.', '_' or '-', not starting with a symbol."
        )
    if max_minutes is not None and (math.isnan(max_minutes) or max_minutes < 0):
        raise InvalidInput("--max-minutes is a number of minutes, zero or more.")
    if epochs < 1:
        raise InvalidInput("A SetFit training runs at least one epoch.")
    if trainer != "setfit" and epochs != 1:
        raise InvalidInput("--epochs applies to the setfit trainer only.")
    session.require(Action.MODEL_MANAGE, AuditAction.MODEL_TRAIN, object_id=name)
    datasets = Datasets(session)
    dataset = datasets.get(dataset_ref)
    dataset_name = f"{dataset.name}@{dataset.id[:12]}"
    if dataset.stale:
        # Its frozen markings are lower than its sources' now: a model learned from it would be
        # marked too low.
        session.audit(
            AuditAction.MODEL_TRAIN,
            object_id=dataset.id,
            object_marking=dataset.marking.banner(),
            decision="deny",
            reason=STALE_MARKING,
        )
        raise NotPermitted(
            f"{dataset_name} is {STALE_MARKING}: a source's marking rose since it was made; a "
            "steward must re-create it before a model is trained on it."
        )
    records = datasets.records(dataset)
    excluded = 0
    ceiling: Marking | None = None
    if max_marking is not None:
        ceiling = session.parse_marking(max_marking)
        if not session.can_read(ceiling):
            raise NotPermitted(
                f"The ceiling {ceiling.banner()} is above what {session.subject.name} may read."
            )
        kept = [r for r in records if dominates(ceiling, session.parse_marking(r.marking))]
        excluded = len(records) - len(kept)
        records = kept
        if not records:
            raise InvalidInput(
                f"No record of dataset {dataset_name} is marked at or below {ceiling.banner()}."
            )
    examples = _examples(session, dataset, records, text_field, label_field)
    fit, validation, test, held_out = _splits(examples, dataset_name, label_field, seed)
    embedder_version = Models(session).use(embedder, "train")
    if embedder_version.kind != "embedder":
        raise InvalidInput(
            f"Model {embedder_version.ref} is a {embedder_version.kind}, not an embedder."
        )
    labels = sorted({e.label for e in fit})
    key = training_key(
        format=1,
        kind="classifier",
        trainer=trainer,
        dataset=dataset.id,
        text_field=text_field,
        label_field=label_field,
        embedder=embedder_version.id,
        seed=seed,
        max_marking=ceiling.banner() if ceiling is not None else None,
        epochs=epochs if trainer == "setfit" else None,
    )
    checkpoint = Checkpoint(session, key)
    run = _Run(
        session,
        name,
        dataset,
        embedder_version,
        labels,
        fit,
        validation,
        test,
        held_out,
        seed,
        checkpoint,
        checkpoint.load(),
        Deadline(max_minutes),
        progress,
    )
    used = join(*(e.marking for e in examples))
    with tempfile.TemporaryDirectory(prefix=".train-", dir=_scratch(session)) as tmp:
        folder = Path(tmp) / "classifier"
        if trainer == "logreg":
            params, report, cut = _logreg(run, folder)
        else:
            from garrison.models._train_setfit import train_setfit

            params, report, cut = train_setfit(run, folder, Path(tmp) / "work", epochs=epochs)
        parameters = {
            "trainer": trainer,
            **params,
            "text_field": text_field,
            "label_field": label_field,
            "labels": labels,
            "embedder": embedder_version.id,
            "max_marking": ceiling.banner() if ceiling is not None else None,
            "selected_on": report["selection"]["on"],
            "cut_short": cut,
        }
        counts = Counter(e.label for e in fit + (validation if held_out else []))
        card = _card(
            name,
            dataset,
            embedder_version,
            trainer,
            text_field,
            label_field,
            labels,
            report,
            splits={
                "train": len(fit) + (len(validation) if held_out else 0),
                "validation": 0 if held_out else len(validation),
                "test": len(test),
            },
            counts=dict(sorted(counts.items())),
            ceiling=ceiling,
            excluded=excluded,
            cut=cut,
        )
        version = Models(session).register(
            kind="classifier",
            name=name,
            folder=folder,
            marking=used,
            base=embedder_version.id,
            datasets=[dataset.id],
            parameters=parameters,
            seeds={"train": seed, "split": dataset.manifest.get("split", {}).get("seed")},
            card=card,
            dataset_markings={dataset.id: used},
        )
    session.audit(
        AuditAction.MODEL_TRAIN,
        object_id=version.id,
        object_marking=version.marking.banner(),
        details={
            "name": name,
            "trainer": trainer,
            "dataset": dataset.id,
            "embedder": embedder_version.id,
            "result": version.id,
            "cut_short": cut,
        },
    )
    if not cut:
        checkpoint.clear()
    full = {
        "id": version.id,
        "ref": version.ref,
        "name": name,
        "version": version.version,
        "marking": version.marking.banner(),
        "trainer": trainer,
        "dataset": {"id": dataset.id, "name": dataset.name},
        "embedder": embedder_version.ref,
        "labels": labels,
        "splits": card["training_data"]["records"],
        **report,
        "cut_short": cut,
        "resumed": dict(run.resumed),
        "seconds": round(time.monotonic() - started, 3),
    }
    return TrainedClassifier(version, full)


def _scratch(session: Session) -> Path:
    path = session.workspace.root / "cache" / "train"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _card(
    name: str,
    dataset: DatasetVersion,
    embedder: ModelVersion,
    trainer: str,
    text_field: str,
    label_field: str,
    labels: list[str],
    report: dict[str, Any],
    *,
    splits: dict[str, int],
    counts: dict[str, int],
    ceiling: Marking | None,
    excluded: int,
    cut: bool,
) -> dict[str, Any]:
    limitations = [
        f"Trained on {splits['train']} records of one dataset version; it knows only the labels "
        f"{', '.join(labels)} and gives every text one of them.",
        "Metrics are measured on the dataset's test split; texts unlike it may fare worse.",
        "Probabilities are a model's confidence, not a guarantee: see the calibration error.",
    ]
    if cut:
        limitations.insert(
            0, "Training was cut short by its time limit: not every candidate was tried."
        )
    return {
        "intended_use": (
            f"Assigns one of {len(labels)} labels ({label_field}) to text like the "
            f"{text_field} field of dataset {dataset.name}."
        ),
        "trainer": trainer,
        "embedder": {"id": embedder.id, "name": embedder.name},
        "training_data": {
            "dataset": {
                "id": dataset.id,
                "name": dataset.name,
                "marking": dataset.marking.banner(),
            },
            "text_field": text_field,
            "label_field": label_field,
            "records": splits,
            "labels": counts,
            "max_marking": ceiling.banner() if ceiling is not None else None,
            "excluded_above_ceiling": excluded,
        },
        "metrics": report["metrics"],
        "selection": report["selection"],
        "cut_short": cut,
        "limitations": limitations,
    }
