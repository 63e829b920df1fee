"""Progress display on stderr: on when stderr is a terminal, off in pipes and CI.

``GARRISON_PROGRESS=1`` forces it on (a terminal that does not say it is one, a recorded
session), ``GARRISON_PROGRESS=0`` off. It never writes to stdout, so ``--json`` output stays
one document.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from garrison.cli._output import err_console
from garrison.pipeline.progress import LOADING_MODEL, ProgressEvent

__all__ = ["PipelineProgressView", "describe", "progress_console", "progress_enabled"]


def _forced() -> bool | None:
    value = os.environ.get("GARRISON_PROGRESS", "").strip().lower()
    if value in ("1", "true", "yes", "on", "always"):
        return True
    if value in ("0", "false", "no", "off", "never"):
        return False
    return None


def progress_enabled() -> bool:
    """Whether to draw progress: ``GARRISON_PROGRESS`` if set (``1``/``0``), else stderr's TTY."""
    forced = _forced()
    return sys.stderr.isatty() if forced is None else forced


def progress_console() -> Console:
    """The console progress draws on: stderr, treated as a terminal when progress is forced."""
    if _forced() and not err_console.is_terminal:
        return Console(stderr=True, force_terminal=True, highlight=False, soft_wrap=True)
    return err_console


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def describe(event: ProgressEvent) -> tuple[str, str, str]:
    """The count, rate and ETA columns of ``event``, as text."""
    if event.phase == LOADING_MODEL:
        return "", "", ""
    if event.unit == "chunks":
        total = f"~{event.total:,}" if event.total is not None else "?"
        count = f"{event.done:,}/{total} chunks"
    else:
        total = f"{event.total:,}" if event.total is not None else "?"
        count = f"{event.done:,}/{total} {event.unit}"
    rate = f"{event.rate:,.1f} {event.unit}/s" if event.rate is not None else ""
    eta = f"ETA {_clock(event.eta_s)}" if event.eta_s is not None else ""
    return count, rate, eta


class PipelineProgressView:
    """Draws a pipeline run's :class:`ProgressEvent` values: one line per phase, a spinner
    while the model loads, chunks embedded with a rate and an ETA. Call it with each event."""

    def __init__(self, console: Console | None = None, *, enabled: bool | None = None) -> None:
        self.enabled = progress_enabled() if enabled is None else enabled
        self._bar = Progress(
            SpinnerColumn(finished_text=" "),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
            TimeElapsedColumn(),
            console=console or progress_console(),
            transient=True,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> PipelineProgressView:
        if self.enabled:
            self._bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.enabled:
            self._bar.stop()

    def __call__(self, event: ProgressEvent) -> None:
        if not self.enabled:
            return
        count, rate, eta = describe(event)
        if event.phase != LOADING_MODEL and LOADING_MODEL in self._tasks:
            self._bar.remove_task(self._tasks.pop(LOADING_MODEL))
        task = self._tasks.get(event.phase)
        if task is None:
            self._tasks[event.phase] = self._bar.add_task(
                event.phase,
                total=event.total,
                completed=event.done,
                count=count,
                rate=rate,
                eta=eta,
            )
        else:
            self._bar.update(
                task, total=event.total, completed=event.done, count=count, rate=rate, eta=eta
            )
        self._bar.refresh()
