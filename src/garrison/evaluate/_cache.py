"""The response cache: a system's answer to one item, so it is never asked twice.

The key is the SHA-256 of the system's version, its parameters, the acting subject, the
ceiling, and the item's id and content hash (input, expected output and marking): change any of
them and the item is asked again. Entries are sealed and marked with the response's marking
(:mod:`garrison.store.eval_runs`); one the reader may not read is a miss, never a leak.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from garrison.evaluate._systems import ItemView, SystemSpec
from garrison.security.markings import Marking
from garrison.store import eval_runs
from garrison.store.session import Session

__all__ = ["ResponseCache", "cache_key", "item_hash"]


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def item_hash(item: ItemView) -> str:
    """The content hash of an item: what it asks, what it expects, how it is marked."""
    body = {
        "kind": item.kind,
        "input": dict(item.input),
        "expected": dict(item.expected),
        "marking": item.marking.to_dict(),
        "sources": list(item.sources),
    }
    return hashlib.sha256(_canonical(body)).hexdigest()


def cache_key(version: str, spec: SystemSpec, subject: str, item: ItemView) -> str:
    body = {
        "system": spec.kind,
        "ref": spec.ref,
        "version": version,
        "parameters": dict(spec.parameters),
        "subject": subject,
        "ceiling": spec.ceiling,
        "item": item.id,
        "content": item_hash(item),
    }
    return hashlib.sha256(_canonical(body)).hexdigest()


class ResponseCache:
    """Cached responses, read and written with one session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.sealer = eval_runs.Sealer(session)
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> tuple[dict[str, Any], Marking] | None:
        with self.session.workspace.catalog.transaction() as orm:
            found = eval_runs.cache_get(self.session, orm, self.sealer, key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: str, value: Mapping[str, Any], marking: Marking) -> None:
        with self.session.workspace.catalog.transaction() as orm:
            eval_runs.cache_put(self.session, orm, self.sealer, key, value, marking)
