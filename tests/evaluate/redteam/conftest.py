"""A workspace under test: users at several clearances (an evaluator among them), no data."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace

#: User -> (clearance, citizenship, roles).
USERS = {
    "eve": ("TS", "USA", ("evaluator",)),
    "uma": ("U", "USA", ("viewer",)),
    "cal": ("C", "USA", ("viewer",)),
    "sam": ("S", "USA", ("viewer",)),
    "gus": ("S", "GBR", ("viewer",)),
}


@pytest.fixture
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("redteam")
    workspace = Workspace.init(root / "ws", system_high="TOP SECRET")
    system = workspace.session()
    for name, (clearance, country, roles) in USERS.items():
        system.add_user(name, SubjectSpec(clearance=clearance, citizenship=country, roles=roles))
    yield workspace
    workspace.close()
