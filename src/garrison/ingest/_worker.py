"""The worker side of an ingest: a file's bytes -> a tree of parsed files and attachments.

:func:`parse_tree` runs in an isolated worker process (:mod:`garrison.core.isolation`); what
goes wrong inside a parser becomes the ``failure`` of that file only. Markings are decided in
the parent (:mod:`garrison.ingest._decide`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from garrison.core.isolation import Outcome
from garrison.core.records import ParsedDocument
from garrison.parse import ParseFailure, parse_bytes

__all__ = ["ParseNode", "ParseTask", "node_from_outcome", "parse_node", "parse_tree"]


@dataclass
class ParseNode:
    """A parsed file and its parsed attachments; built in the worker, marked in the parent."""

    doc_id: str
    size: int
    filename: str | None
    uri: str
    data: bytes | None
    parsed: ParsedDocument | None = None
    failure: tuple[str, str] | None = None
    children: list[ParseNode] = field(default_factory=list)


@dataclass(frozen=True)
class ParseTask:
    """One file for a worker: its bytes, where it was read and how to parse it."""

    uri: str
    filename: str | None
    data: bytes
    max_depth: int
    max_bytes: int
    options: tuple[tuple[str, object], ...] = ()


def parse_tree(task: ParseTask) -> ParseNode:
    """Parse ``task``'s file and its attachments, recursively (runs in the worker)."""
    return parse_node(
        task.data, task.filename, task.uri, 0, task.max_depth, task.max_bytes, dict(task.options)
    )


def parse_node(
    data: bytes,
    filename: str | None,
    uri: str,
    depth: int,
    max_depth: int,
    max_bytes: int,
    options: dict[str, object] | None = None,
) -> ParseNode:
    options = options or {}
    node = ParseNode(hashlib.sha256(data).hexdigest(), len(data), filename, uri, data)
    if len(data) > max_bytes:
        node.failure = ("too-large", f"the file is larger than {max_bytes} bytes")
        return node
    try:
        node.parsed = parse_bytes(data, filename=filename, **options)
    except ParseFailure as exc:
        node.failure = (exc.reason, exc.detail)
        return node
    except MemoryError:
        raise  # the isolation layer reports it as memory-limit
    except RecursionError:
        node.failure = ("hostile-content", "the file is nested too deeply to parse")
        return node
    except Exception as exc:  # a parser bug must fail this file only, never the run
        # The type only: a library's message may quote the file's content.
        node.failure = ("corrupt", f"the parser failed ({type(exc).__name__})")
        return node
    for index, attachment in enumerate(node.parsed.attachments):
        name = attachment.filename or f"attachment-{index}"
        child_uri = f"{uri}#{name}"
        if depth + 1 > max_depth:
            child = ParseNode(
                hashlib.sha256(attachment.data).hexdigest(),
                len(attachment.data),
                attachment.filename,
                child_uri,
                attachment.data,
                failure=("archive-limit", f"nested deeper than {max_depth} levels"),
            )
        else:
            child = parse_node(
                attachment.data,
                attachment.filename,
                child_uri,
                depth + 1,
                max_depth,
                max_bytes,
                options,
            )
        node.children.append(child)
    # Attachment bytes now live in the children; do not ship them twice.
    node.parsed = node.parsed.model_copy(update={"attachments": ()})
    return node


def node_from_outcome(task: ParseTask, outcome: Outcome[ParseNode]) -> ParseNode:
    """The worker's tree, or a failed node for a worker that timed out, ran out or crashed."""
    if outcome.ok and outcome.value is not None:
        node = outcome.value
        node.data = task.data  # the worker does not send the original back
        return node
    reason = {"timeout": "timeout", "memory-limit": "memory-limit"}.get(
        outcome.reason or "", "corrupt"
    )
    detail = outcome.detail or "the parser failed"
    if outcome.reason == "crashed":
        detail = f"the parser crashed ({detail})"
    return ParseNode(
        hashlib.sha256(task.data).hexdigest(),
        len(task.data),
        task.filename,
        task.uri,
        task.data,
        failure=(reason, detail),
    )
