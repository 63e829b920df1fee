"""The ``setfit`` trainer: SetFit contrastive fine-tuning of the embedder's body, then a head.

SetFit (the ``setfit`` library, extra ``train``) draws pairs of train texts -- same label:
similar, different labels: dissimilar -- and fine-tunes the sentence-transformer body with a
cosine-similarity loss, one epoch at a time; after each epoch the body is checkpointed (its
files as encrypted blobs), so an interrupted run resumes at the next epoch. The logistic head is
then fitted on the fine-tuned body's embeddings exactly as the ``logreg`` trainer fits its own
(C picked on validation, measured on test: SetFit's ``evaluate`` is never called, as it loads its
metrics from a hub). The classifier folder holds the body as a sentence-transformers folder
``body/`` and the head in ``head.safetensors``; nothing is pickled.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from garrison.core.errors import InvalidInput, MissingExtra
from garrison.models._registry import Models
from garrison.models._use import write_classifier

if TYPE_CHECKING:
    from garrison.models._train_classifier import Matrix, _Example, _Run

__all__ = ["BATCH_SIZE", "train_setfit"]

#: Pairs per fine-tuning step.
BATCH_SIZE = 16
_NOISY = ("setfit", "transformers", "sentence_transformers", "datasets", "huggingface_hub")


@contextmanager
def _quiet() -> Iterator[None]:
    """Keep the libraries' info logs, progress bars and internal warnings off the terminal."""
    loggers = {name: logging.getLogger(name) for name in _NOISY}
    levels = {name: lg.level for name, lg in loggers.items()}
    try:
        import transformers

        import datasets  # type: ignore[import-untyped]

        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        datasets.disable_progress_bars()
        hf_level = transformers.utils.logging.get_verbosity()
    except ImportError:
        hf_level = None
    for lg in loggers.values():
        lg.setLevel(max(lg.level, logging.WARNING))
    with warnings.catch_warnings():
        for module in (*_NOISY, "torch", "accelerate"):
            warnings.filterwarnings("ignore", module=rf"{module}(\.|$)")
        warnings.filterwarnings("ignore", message=r".*pin_memory.*")
        try:
            yield
        finally:
            for name, lg in loggers.items():
                lg.setLevel(levels[name])
    if hf_level is not None:
        import transformers

        transformers.utils.logging.set_verbosity(hf_level)


#: Tokenizer files: fine-tuning never changes them, but saving a tokenizer that was used writes
#: its runtime settings into them, which would make a resumed training's files differ.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
)


def _canonical_tokenizer(base: Path, body: Path) -> None:
    """Give the saved body the base model's own tokenizer files, byte for byte."""
    for name in TOKENIZER_FILES:
        if (base / name).is_file() and (body / name).is_file():
            shutil.copyfile(base / name, body / name)


def _import() -> Any:
    try:
        from setfit import (  # type: ignore[import-untyped]
            SetFitModel,
            Trainer,
            TrainingArguments,
        )
        from setfit import logging as setfit_logging

        # Importing setfit's trainer turns its logging up to INFO: turn it back down.
        setfit_logging.set_verbosity_warning()
    except ImportError as exc:
        raise MissingExtra("train", "setfit") from exc
    return SetFitModel, Trainer, TrainingArguments


def train_setfit(
    run: _Run, model_folder: Path, work: Path, *, epochs: int
) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """Fine-tune, fit the head, write the folder; (parameters, report, cut short)."""
    params = dict(run.embedder.manifest.get("parameters", {}))
    if params.get("format", "sentence-transformers") != "sentence-transformers":
        raise InvalidInput(
            f"SetFit fine-tunes a sentence-transformers embedder; {run.embedder.ref} is "
            f"{params.get('format')}."
        )
    base = Models(run.session).folder(run.embedder)
    with _quiet():
        SetFitModel, Trainer, TrainingArguments = _import()
        import transformers
        from sentence_transformers import SentenceTransformer
        from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

        work.mkdir(parents=True, exist_ok=True)
        start = int(run.state.get("epochs", 0))
        source = base
        if start and run.state.get("body"):
            restored = work / "resumed"
            if run.checkpoint.restore_folder(run.state["body"], restored):
                source = restored
                run.resumed["epochs"] = start
            else:
                start = 0
        body = SentenceTransformer(str(source), device="cpu")
        model = SetFitModel(model_body=body, model_head=LogisticRegression())
        texts = [e.text for e in run.fit]
        labels = run.y(run.fit).tolist()
        cut = False
        for epoch in range(start, epochs):
            if run.deadline.passed():
                cut = True
                break
            stopped = _epoch(
                run, model, Trainer, TrainingArguments, texts, labels, work, epoch, epochs
            )
            if stopped:
                cut = True
                break
            saved = work / f"epoch-{epoch + 1}"
            body.save(str(saved), create_model_card=False)
            run.save(epochs=epoch + 1, body=run.checkpoint.store_folder(saved))
            shutil.rmtree(saved, ignore_errors=True)
        body.save(str(model_folder / "body"), create_model_card=False)
        _canonical_tokenizer(base, model_folder / "body")
        transformers.set_seed(run.seed)

        def vectors(part: list[_Example]) -> Matrix:
            encoded = body.encode(
                [e.text for e in part],
                batch_size=64,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            return np.asarray(encoded, dtype=np.float64)

        c, report, weight, bias, grid_cut = run.head(vectors)
    write_classifier(
        model_folder,
        trainer="setfit",
        labels=run.labels,
        weight=weight,
        bias=bias,
        embedder={"path": "body"},
    )
    return {"C": c, "epochs": epochs, "batch_size": BATCH_SIZE}, report, cut or grid_cut


def _epoch(
    run: _Run,
    model: Any,
    trainer_cls: Any,
    args_cls: Any,
    texts: list[str],
    labels: list[int],
    work: Path,
    epoch: int,
    epochs: int,
) -> bool:
    """One contrastive epoch; True when the deadline stopped it part way."""
    import transformers
    from transformers import TrainerCallback

    stopped = {"cut": False}
    progress, deadline = run.progress, run.deadline

    class _Steps(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            total = max(1, int(state.max_steps))
            if progress is not None:
                progress("fine-tune", epoch * total + int(state.global_step), epochs * total)
            if deadline.passed() and state.global_step < state.max_steps:
                stopped["cut"] = True
                control.should_training_stop = True
            return control

    seed = run.seed * 1000 + epoch
    args = args_cls(
        output_dir=str(work / "trainer"),
        batch_size=BATCH_SIZE,
        num_epochs=1,
        seed=seed,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        show_progress_bar=False,
    )
    trainer = trainer_cls(model=model, args=args, callbacks=[_Steps()])
    # Progress is ours to show (or not, with --json): drop the library's bar and log printer.
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (ProgressCallback, PrinterCallback):
        trainer.st_trainer.remove_callback(callback)
    transformers.set_seed(seed)
    trainer.train_embeddings(texts, labels, args=args)
    return stopped["cut"]
