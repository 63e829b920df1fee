"""A workspace under test: users at several clearances (an evaluator among them), no data,
and generators registered on a loopback OpenAI-compatible server whose replies misbehave on
purpose (:mod:`tests.evaluate.redteam.bad`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from garrison.models import register_endpoint
from garrison.security.markings import parse_marking
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.evaluate.redteam.bad import REPLIES
from tests.models.openai_server import ChatServer, serve

#: User -> (clearance, citizenship, roles).
USERS = {
    "eve": ("TS", "USA", ("evaluator",)),
    "uma": ("U", "USA", ("viewer",)),
    "cal": ("C", "USA", ("viewer",)),
    "sam": ("S", "USA", ("viewer",)),
    "gus": ("S", "GBR", ("viewer",)),
}
#: Registered generators: name -> the behaviour of its replies (see bad.reply).
GENERATORS = tuple(REPLIES)


def make_source(root: Path, servers: dict[str, ChatServer] | None = None) -> Workspace:
    workspace = Workspace.init(root / "ws", system_high="TOP SECRET//NOFORN")
    system = workspace.session()
    for name, (clearance, country, roles) in USERS.items():
        system.add_user(name, SubjectSpec(clearance=clearance, citizenship=country, roles=roles))
    for name, server in (servers or {}).items():
        register_endpoint(
            system,
            name,
            base_url=server.base_url,
            model="tiny",
            accredited=parse_marking("TOP SECRET"),
            probe=False,
        )
    return workspace


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, ChatServer]]:
    with ExitStack() as stack:
        yield {name: stack.enter_context(serve(reply=r)) for name, r in REPLIES.items()}


@pytest.fixture(scope="module")
def source(
    tmp_path_factory: pytest.TempPathFactory, servers: dict[str, ChatServer]
) -> Iterator[Workspace]:
    workspace = make_source(tmp_path_factory.mktemp("redteam"), servers)
    yield workspace
    workspace.close()
