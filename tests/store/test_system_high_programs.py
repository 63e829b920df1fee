"""A system high holding several SAR programs reopens with exactly the programs it was made with.

Three or more programs are written ``SAR-MULTIPLE PROGRAMS`` in a banner, which names none of
them; the workspace's configuration file holds that banner, the catalog the structured form.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update

from garrison.core.errors import WorkspaceError
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.security.markings import dominates, parse_marking, system_high_dominates
from garrison.store.models import Meta
from garrison.store.workspace import Workspace

PROGRAMS = ("AA", "BB", "CC", "DD", "EE")


def _high(count: int) -> str:
    """A TOP SECRET system high with ``count`` programs (a portion lists any number)."""
    return f"(TS//SAR-{'/'.join(PROGRAMS[:count])}//NF)"


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_a_system_high_with_programs_reopens_unchanged(tmp_path: Path, count: int) -> None:
    made = parse_marking(_high(count))
    Workspace.init(tmp_path / "ws", system_high=_high(count)).close()
    banner = (tmp_path / "ws" / "garrison.toml").read_text()
    assert ("SAR-MULTIPLE PROGRAMS" in banner) == (count >= 3)
    with Workspace.open(tmp_path / "ws") as ws:
        high = ws.system_high
        assert high.to_dict() == made.to_dict()
        assert sorted(high.sap) == list(PROGRAMS[:count])
        assert high.banner() == made.banner()
    # And once more: reopening never drifts.
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.system_high.to_dict() == made.to_dict()


@pytest.mark.parametrize("count", [3, 5])
def test_data_of_every_program_is_inside_the_reopened_system_high(
    tmp_path: Path, count: int
) -> None:
    Workspace.init(tmp_path / "ws", system_high=_high(count)).close()
    (tmp_path / "in").mkdir()
    last = PROGRAMS[count - 1]
    (tmp_path / "in" / "a.txt").write_text(f"(TS//SAR-{last}//NF) The program plan.\n")
    (tmp_path / "in" / "b.txt").write_text("(TS//SAR-ZZ//NF) Another program's plan.\n")
    with Workspace.open(tmp_path / "ws") as ws:
        assert system_high_dominates(ws.system_high, parse_marking(f"(TS//SAR-{last}//NF)"))
        # Never looser: a program the system high does not hold stays outside it.
        assert not dominates(ws.system_high, parse_marking("(TS//SAR-ZZ//NF)"))
        report = ingest_paths(
            ws.session(), [str(tmp_path / "in")], IngestOptions(default_marking="UNCLASSIFIED")
        )
    statuses = {Path(r.uri).name: r.outcome for r in report.results}
    assert statuses["a.txt"] == "parsed"
    assert statuses["b.txt"] == "spilled"


def test_a_catalog_holding_fewer_programs_than_the_banner_does_not_open(tmp_path: Path) -> None:
    Workspace.init(tmp_path / "ws", system_high=_high(3)).close()
    ws = Workspace.open(tmp_path / "ws")
    fewer = json.dumps(parse_marking(_high(2)).to_dict(), sort_keys=True)
    with ws.catalog.transaction() as orm:
        orm.execute(update(Meta).where(Meta.key == "system_high").values(value=fewer))
    ws.close()
    with pytest.raises(WorkspaceError, match="differs"):
        Workspace.open(tmp_path / "ws")


def test_a_banner_edited_to_multiple_programs_does_not_open(tmp_path: Path) -> None:
    Workspace.init(tmp_path / "ws", system_high=_high(2)).close()
    config = tmp_path / "ws" / "garrison.toml"
    config.write_text(config.read_text().replace("SAR-AA/BB", "SAR-MULTIPLE PROGRAMS"))
    with pytest.raises(WorkspaceError, match="differs"):
        Workspace.open(tmp_path / "ws")
