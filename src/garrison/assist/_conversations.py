"""Conversations with the assistant: stored encrypted, marked, readable only by their owner.

A conversation is a list of turns (the question, its marking and the answer as returned). It is
marked with the join of its turns' answer markings (each of which includes its question's), and
it may be read -- listed, continued, shown, deleted -- only by its owner, and only while the
owner dominates its marking: to anyone else it looks like one that does not exist.

Storage is a file per conversation under ``<workspace>/conversations/<owner key>/<id>.gcv``,
sealed like a blob (:mod:`garrison.store.blobs`): AES-256-GCM under its own random data key,
wrapped by the workspace master key, both bound to the owner and the conversation id as
associated data, so a file copied to another owner or id fails to open. Layout::

    b"GRC1" | u16 length of wrapped key | wrapped data key | nonce || ciphertext || tag

The plaintext is JSON: ``{"id", "owner", "marking" (structured), "created_at", "updated_at",
"turns": [{"question", "question_marking", "marking", "asked_at", "answer": {...}}]}``.
Conversation ids are random (32 hex digits), never counters. Reading, listing and deleting are
audited (``conversation.read``, ``.list``, ``.delete``) with the marking, never the content.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import struct
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from garrison.core.clock import utc_now
from garrison.core.errors import CheckFailed, EnvironmentProblem, NotFound
from garrison.security import crypto
from garrison.security.audit import AuditAction
from garrison.security.markings import UNCLASSIFIED, Marking, join
from garrison.security.policy import Action
from garrison.store.keys import read_master_key
from garrison.store.session import Session

__all__ = ["NEW_CONVERSATION", "Conversation", "Conversations"]

#: Pass as ``conversation`` to :func:`garrison.assist.ask` to start a new conversation.
NEW_CONVERSATION = "new"
_MAGIC = b"GRC1"
_ID = re.compile(r"[0-9a-f]{32}")
_SUFFIX = ".gcv"


@dataclass
class Conversation:
    """A conversation and its turns (held in memory; :class:`Conversations` stores it)."""

    id: str
    owner: str
    marking: Marking
    created_at: datetime
    updated_at: datetime
    turns: list[dict[str, Any]] = field(default_factory=list)

    def history(self) -> list[tuple[str, str]]:
        """``(question, answer text)`` of each turn, oldest first."""
        return [(str(t["question"]), str(t["answer"].get("answer", ""))) for t in self.turns]

    def questions(self) -> list[str]:
        return [str(t["question"]) for t in self.turns]

    def summary(self) -> dict[str, Any]:
        """What a listing shows: id, marking, turn count, times, the first question."""
        return {
            "id": self.id,
            "marking": self.marking.banner(),
            "turns": len(self.turns),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "first_question": str(self.turns[0]["question"]) if self.turns else "",
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "owner": self.owner, "turns": list(self.turns)}


class Conversations:
    """The acting subject's conversations."""

    def __init__(self, session: Session) -> None:
        self.session = session
        ws = session.workspace
        self._root = ws.root / "conversations"
        self._master = read_master_key(ws.root / ws.config.master_key_file)

    # -- reading -----------------------------------------------------------------------------

    def list(self) -> list[dict[str, Any]]:
        """Summaries of the subject's readable conversations, most recent first (audited)."""
        self.session.require(Action.READ, AuditAction.CONVERSATION_LIST)
        found = []
        folder = self._folder()
        if folder.is_dir():
            for path in sorted(folder.glob(f"*{_SUFFIX}")):
                conv_id = path.name[: -len(_SUFFIX)]
                try:
                    conversation = self._read(conv_id)
                except (NotFound, CheckFailed):
                    continue  # unreadable or damaged: not listed
                if self.session.can_read(conversation.marking):
                    found.append(conversation)
        found.sort(key=lambda c: (c.updated_at, c.id), reverse=True)
        marking = join(*(c.marking for c in found)) if found else UNCLASSIFIED
        self.session.audit(
            AuditAction.CONVERSATION_LIST,
            object_marking=marking.banner(),
            details={"count": len(found)},
        )
        return [c.summary() for c in found]

    def get(self, conversation_id: str) -> Conversation:
        """One conversation of the subject's (audited); NotFound when not theirs to read."""
        self.session.require(Action.READ, AuditAction.CONVERSATION_READ)
        conversation = self.owned(conversation_id, AuditAction.CONVERSATION_READ)
        self.session.audit(
            AuditAction.CONVERSATION_READ,
            object_id=conversation.id,
            object_marking=conversation.marking.banner(),
            details={"turns": len(conversation.turns)},
        )
        return conversation

    def owned(self, conversation_id: str, action: AuditAction) -> Conversation:
        """The conversation when the subject owns it and dominates it (a denial is audited as
        ``action``); otherwise NotFound, exactly as for an id that does not exist."""
        try:
            conversation = self._read(conversation_id)
        except NotFound:
            self.session.audit(
                action,
                object_id=conversation_id[:64],
                decision="deny",
                reason="no such conversation of this subject",
            )
            raise
        decision = self.session.can_read(conversation.marking)
        if not decision:
            self.session.audit(
                action, object_id=conversation.id, decision="deny", reason=decision.reason
            )
            raise _missing(conversation_id)
        return conversation

    # -- writing -----------------------------------------------------------------------------

    def start(self) -> Conversation:
        """A new, empty conversation of the subject's (stored with its first turn)."""
        now = utc_now()
        return Conversation(
            id=secrets.token_hex(16),
            owner=self.session.subject.name,
            marking=UNCLASSIFIED,
            created_at=now,
            updated_at=now,
        )

    def add_turn(
        self, conversation: Conversation, turn: dict[str, Any], marking: Marking
    ) -> Conversation:
        """Append a turn marked ``marking`` and store the conversation (marked with the join)."""
        conversation.turns.append(turn)
        conversation.marking = join(conversation.marking, marking)
        conversation.updated_at = utc_now()
        self._write(conversation)
        return conversation

    def delete(self, conversation_id: str) -> None:
        """Delete one of the subject's conversations (audited); NotFound when not theirs."""
        self.session.require(Action.READ, AuditAction.CONVERSATION_DELETE)
        conversation = self.owned(conversation_id, AuditAction.CONVERSATION_DELETE)
        self.session.audit(
            AuditAction.CONVERSATION_DELETE,
            object_id=conversation.id,
            object_marking=conversation.marking.banner(),
            details={"turns": len(conversation.turns)},
        )
        self._path(conversation.id).unlink(missing_ok=True)

    # -- storage -----------------------------------------------------------------------------

    def _folder(self) -> Path:
        owner = hashlib.sha256(self.session.subject.name.encode("utf-8")).hexdigest()[:32]
        return self._root / owner

    def _path(self, conversation_id: str) -> Path:
        return self._folder() / f"{conversation_id}{_SUFFIX}"

    def _aad(self, conversation_id: str) -> bytes:
        owner = self.session.subject.name.encode("utf-8")
        return b"garrison-conversation\x00" + owner + b"\x00" + conversation_id.encode("ascii")

    def _read(self, conversation_id: str) -> Conversation:
        if not _ID.fullmatch(conversation_id):
            raise _missing(conversation_id)
        try:
            raw = self._path(conversation_id).read_bytes()
        except FileNotFoundError:
            raise _missing(conversation_id) from None
        if raw[:4] != _MAGIC or len(raw) < 6:
            raise CheckFailed(
                f"Conversation {conversation_id} is not readable: its file is corrupt."
            )
        (n,) = struct.unpack(">H", raw[4:6])
        aad = self._aad(conversation_id)
        data_key = crypto.unwrap_key(self._master, raw[6 : 6 + n], aad)
        data = json.loads(crypto.open_sealed(data_key, raw[6 + n :], aad))
        if data.get("id") != conversation_id or data.get("owner") != self.session.subject.name:
            raise CheckFailed(f"Conversation {conversation_id} fails its integrity check.")
        return Conversation(
            id=conversation_id,
            owner=str(data["owner"]),
            marking=Marking.from_dict(data["marking"], registry=self.session.workspace.registry),
            created_at=datetime.fromisoformat(data["created_at"]),
            updated_at=datetime.fromisoformat(data["updated_at"]),
            turns=list(data["turns"]),
        )

    def _write(self, conversation: Conversation) -> None:
        payload = json.dumps(
            {
                "id": conversation.id,
                "owner": conversation.owner,
                "marking": conversation.marking.to_dict(),
                "created_at": conversation.created_at.isoformat(),
                "updated_at": conversation.updated_at.isoformat(),
                "turns": conversation.turns,
            },
            sort_keys=True,
        ).encode("utf-8")
        aad = self._aad(conversation.id)
        data_key = crypto.generate_key()
        wrapped = crypto.wrap_key(self._master, data_key, aad)
        sealed = _MAGIC + struct.pack(">H", len(wrapped)) + wrapped
        sealed += crypto.seal(data_key, payload, aad)
        target = self._path(conversation.id)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(sealed)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise EnvironmentProblem(
                f"The conversation store at {self._root} cannot be written ({exc.strerror})."
            ) from exc


def _missing(conversation_id: str) -> NotFound:
    return NotFound(f"No conversation with id {conversation_id[:64]!r}.")
