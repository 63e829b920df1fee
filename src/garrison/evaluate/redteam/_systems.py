"""Systems the red team attacks, and what their responses show.

A system is any object with a ``name`` and ``respond(session, turns) -> list[Response]``: it
answers each turn of a conversation as the session's subject. Two are built in, named by a
spec string (:func:`parse_target`):

- ``assistant`` / ``assistant:k=8,generator=NAME@V`` -- :func:`garrison.assist.ask`, extractive
  or with a registered generator; a conversation of several turns is kept as a conversation;
- ``generator:NAME@V`` -- a registered generator alone: each turn is sent to it with the turns
  before (no retrieval, no documents), as the asking subject.

A :class:`Response` holds everything a reader sees -- the answer, its citations (quotes and
headings), its notes, an error message -- and a timing-free fingerprint to compare two
responses by (:meth:`Response.fingerprint`). An expected error (a :class:`GarrisonError`) is
a response too: its message is scanned like an answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from garrison.core.errors import GarrisonError, InvalidInput
from garrison.security.markings import UNCLASSIFIED
from garrison.store.session import Session

__all__ = [
    "AssistantSystem",
    "GeneratorSystem",
    "Response",
    "System",
    "Target",
    "open_system",
    "parse_target",
]


@dataclass(frozen=True)
class Response:
    """What one turn showed its reader."""

    text: str
    marking: str = UNCLASSIFIED.banner()
    refused: bool = False
    citations: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = ()
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def shown(self) -> list[tuple[str, str]]:
        """Every text a reader sees, with where it was shown."""
        out = [("answer", self.text)]
        for c in self.citations:
            out.append(("citation", str(c.get("quote", ""))))
            out.extend(("heading", str(h)) for h in c.get("section_path", []) or [])
        out.extend(("note", n) for n in self.notes)
        if self.error is not None:
            out.append(("error", self.error))
        return out

    def fingerprint(self) -> dict[str, Any]:
        """The response without timings or ids: two equal fingerprints showed the same."""
        return {
            "text": self.text,
            "marking": self.marking,
            "refused": self.refused,
            "quotes": [c.get("quote") for c in self.citations],
            "headings": [list(c.get("section_path", []) or []) for c in self.citations],
            "notes": list(self.notes),
            "error": self.error,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "marking": self.marking,
            "refused": self.refused,
            "citations": [dict(c) for c in self.citations],
            "notes": list(self.notes),
            "error": self.error,
        }


@runtime_checkable
class System(Protocol):
    """Anything the red team can attack (see the module docstring)."""

    name: str

    def respond(self, session: Session, turns: Sequence[str]) -> list[Response]: ...


@dataclass(frozen=True)
class Target:
    """A parsed system spec: ``kind`` (assistant, generator), generator ref, parameters."""

    kind: str
    generator: str | None
    k: int
    spec: str


def parse_target(spec: str) -> Target:
    """``assistant[:k=N,generator=REF]`` or ``generator:REF`` (InvalidInput otherwise)."""
    text = spec.strip()
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind == "generator":
        ref = rest.strip()
        if not ref or "=" in ref:
            raise InvalidInput("A generator system is named generator:NAME[@VERSION].")
        return Target("generator", ref, 0, text)
    if kind != "assistant":
        raise InvalidInput(
            f"Unknown system {spec!r}: use assistant[:k=N,generator=NAME@V] or generator:NAME@V."
        )
    params: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key.strip() not in ("k", "generator"):
            raise InvalidInput(f"Unknown assistant parameter {part!r}: use k=N or generator=REF.")
        params[key.strip()] = value.strip()
    try:
        k = int(params.get("k", "8"))
    except ValueError:
        raise InvalidInput("The assistant's k is a whole number.") from None
    generator = params.get("generator") or None
    if generator == "extractive":
        generator = None
    return Target("assistant", generator, k, text)


def rename_generator(ref: str | None, refs: Mapping[str, str]) -> str | None:
    """A generator reference of the tested workspace as its copy in the test workspace."""
    if ref is None:
        return None
    name = ref.partition("@")[0]
    if name not in refs:
        raise InvalidInput(
            f"Generator {ref} is not in the registry copied for the test (none you may read)."
        )
    return refs[name]


class AssistantSystem:
    """The assistant (extractive, or with a registered generator)."""

    def __init__(self, *, k: int = 8, generator: str | None = None, name: str | None = None):
        self.k = k
        self.generator = generator
        self.name = name or ("assistant" if generator is None else f"assistant+{generator}")

    def respond(self, session: Session, turns: Sequence[str]) -> list[Response]:
        from garrison.assist import NEW_CONVERSATION, ask

        out: list[Response] = []
        conversation: str | None = NEW_CONVERSATION if len(turns) > 1 else None
        for turn in turns:
            try:
                answer = ask(
                    session, turn, k=self.k, generator=self.generator, conversation=conversation
                )
            except GarrisonError as exc:
                out.append(Response(text="", error=str(exc), refused=True))
                conversation = None
                continue
            conversation = answer.conversation_id
            out.append(
                Response(
                    text=answer.text,
                    marking=answer.marking,
                    refused=answer.refused,
                    citations=tuple(c.to_dict() for c in answer.citations),
                    notes=tuple(answer.notes),
                )
            )
        return out


class GeneratorSystem:
    """A registered generator alone: the turns, and its own replies, and nothing else."""

    def __init__(self, ref: str, *, name: str | None = None, max_tokens: int = 256) -> None:
        self.ref = ref
        self.name = name or f"generator:{ref}"
        self.max_tokens = max_tokens

    def respond(self, session: Session, turns: Sequence[str]) -> list[Response]:
        from garrison.models import open_generator

        out: list[Response] = []
        messages: list[dict[str, str]] = []
        try:
            opened = open_generator(session, self.ref, purpose="redteam")
        except GarrisonError as exc:
            return [Response(text="", error=str(exc), refused=True) for _ in turns]
        for turn in turns:
            messages.append({"role": "user", "content": turn})
            try:
                result = opened.generate(
                    list(messages), content_marking=UNCLASSIFIED, max_tokens=self.max_tokens
                )
            except GarrisonError as exc:
                out.append(Response(text="", error=str(exc), refused=True))
                messages.append({"role": "assistant", "content": ""})
                continue
            messages.append({"role": "assistant", "content": result.text})
            out.append(Response(text=result.text, marking=result.marking.banner()))
        return out


def open_system(spec: str | System, refs: Mapping[str, str]) -> System:
    """The system a spec names, its generator renamed to its copy (``refs``: name -> ref)."""
    if not isinstance(spec, str):
        return spec
    target = parse_target(spec)
    if target.kind == "generator":
        ref = rename_generator(target.generator, refs)
        assert ref is not None
        return GeneratorSystem(ref, name=target.spec)
    return AssistantSystem(
        k=target.k, generator=rename_generator(target.generator, refs), name=target.spec
    )
