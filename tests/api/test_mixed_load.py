"""Fifty concurrent clients of mixed clearances against one real server: 0 errors, 0 leaks.

The harness is ``bench/mixed_load.py`` (``make bench`` runs it with 200 clients); here it runs
for a few seconds. Every response is checked against what its subject may read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench import mixed_load
from bench.mixed_load import World

CLIENTS = 50
SECONDS = 2.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = mixed_load.build_world(tmp_path_factory.mktemp("mixed"))
    yield built
    built.close()


def test_the_subjects_see_different_things(world: World) -> None:
    allowed = world.allowed
    assert allowed["uusa"].canaries == {"canaryunc", "canarymixu"}
    assert "canarysap" in allowed["sapusa"].canaries
    assert "canarysap" not in allowed["susa"].canaries
    assert "canaryrels" in allowed["sgbr"].canaries
    assert "canaryrels" not in allowed["saus"].canaries
    assert "canaryrelc" in allowed["caus"].canaries
    assert not {"canarynf", "canarymixs", "canaryrelc"} & allowed["sfra"].canaries


def test_mixed_clearance_load_has_no_errors_and_no_leaks(world: World) -> None:
    with mixed_load.serving(world.path) as base:
        tally = asyncio.run(mixed_load.drive(base, world, CLIENTS, SECONDS))
    assert tally.examples == []
    assert (tally.errors, tally.leaks) == (0, 0)
    assert tally.requests() >= CLIENTS
    assert tally.exports_complete > 0


def test_the_checker_catches_a_leak(world: World) -> None:
    """The checks can fail: a response holding another subject's canary is a leak."""
    import httpx

    tally = mixed_load.Tally()
    check = mixed_load._Checker(world, world.allowed["uusa"], tally, "uusa")
    leaky = httpx.Response(
        200,
        json={"marking": "SECRET", "hits": [{"snippet": "canarysec"}]},
        headers={"X-Garrison-Marking": "SECRET"},
    )
    check.response("search", leaky)
    check.count("search total", 9, 2)
    assert tally.leaks == 3 and tally.errors == 0
    assert (
        mixed_load._Checker(world, world.allowed["susa"], tally, "susa").response(
            "search", httpx.Response(503, json={})
        )
        is None
    )
    assert tally.errors == 1


def test_the_world_is_small(world: World) -> None:
    assert isinstance(world.path, Path) and len(world.canaries) == 9
