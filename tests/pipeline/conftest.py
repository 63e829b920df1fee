"""Fixtures of the pipeline tests on Ray."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from garrison.pipeline import Item
from garrison.pipeline.engines._ray import RayEngine


@pytest.fixture
def pids(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The process of every batch result a RayEngine hands back during the test."""
    seen: list[int] = []
    original = RayEngine.map_batches

    def spy(self: RayEngine, specs: Sequence[Any], batches: Sequence[list[Item]]) -> Any:
        for result in original(self, specs, batches):
            seen.append(result.pid)
            yield result

    monkeypatch.setattr(RayEngine, "map_batches", spy)
    return seen
