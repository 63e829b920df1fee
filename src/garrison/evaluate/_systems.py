"""Systems under test: what a run asks, and how each kind answers one suite item.

A :class:`SystemSpec` names a system (``parse_system`` reads the command line's form):

- ``assistant[:k=8,generator=NAME@V|extractive,max_marking=S]`` -- :func:`garrison.assist.ask`
  acting as ``subject`` (default the caller), so retrieval sees what that subject may read. The
  response is marked like the answer: the join of its context, which can be higher than the
  item. An item the subject may not read is ``not-eligible``.
- ``generator:NAME@V[,max_tokens=256]`` -- a registered generator on ``qa``, ``generation`` and
  ``extraction`` items. An item whose marking the generator's accreditation does not dominate
  is never sent: it is ``not-eligible``.
- ``classifier:NAME@V`` -- a registered classifier on ``classification`` items; the
  prediction is marked with :func:`garrison.models.output_marking` (the item's joined with the
  model's).
- ``embedder:NAME@V[,k=10]`` -- on ``retrieval`` items: the candidates are the chunks of the
  suite's source documents that the acting subject may read, ranked by the embedder's cosine
  with the query; the response (the top ``k`` chunk ids) is marked with the join of the
  retrieved chunks' markings (the ranking reveals what they say).

A system's ``version`` identifies what answered (the model version id, or Garrison's version
and the generator's id for the assistant): with the parameters, the acting subject, the
ceiling and the item it keys the response cache.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from garrison import __version__
from garrison.core.errors import InvalidInput, NotPermitted
from garrison.security.markings import Marking, join, system_high_dominates
from garrison.store.session import Session

__all__ = [
    "SYSTEM_KINDS",
    "ItemView",
    "Response",
    "System",
    "SystemSpec",
    "open_system",
    "parse_system",
]

SYSTEM_KINDS = ("assistant", "generator", "classifier", "embedder")
#: The suite kinds each system answers.
ANSWERS: dict[str, tuple[str, ...]] = {
    "assistant": ("qa",),
    "generator": ("qa", "generation", "extraction"),
    "classifier": ("classification",),
    "embedder": ("retrieval",),
}
_INT_PARAMS = {"k", "max_tokens"}
_KNOWN = {
    "assistant": {"k", "generator", "max_marking"},
    "generator": {"max_tokens"},
    "classifier": set(),
    "embedder": {"k"},
}
_PAIR = re.compile(r"^([a-z_]+)=(.+)$")


@dataclass(frozen=True)
class SystemSpec:
    """A system under test: its kind, what it names, its parameters, who it acts as and the
    ceiling its responses must stay under (``None``: the acting subject's clearance)."""

    kind: str
    ref: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    subject: str | None = None
    ceiling: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ref": self.ref,
            "parameters": dict(self.parameters),
            "subject": self.subject,
            "ceiling": self.ceiling,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SystemSpec:
        return cls(
            str(data["kind"]),
            str(data["ref"]),
            dict(data.get("parameters") or {}),
            data.get("subject"),
            data.get("ceiling"),
        )

    def label(self) -> str:
        """The spec as ``parse_system`` reads it."""
        params = ",".join(f"{k}={v}" for k, v in sorted(self.parameters.items()))
        head = self.kind if self.kind == "assistant" else f"{self.kind}:{self.ref}"
        if not params:
            return head
        return f"{head}:{params}" if self.kind == "assistant" else f"{head},{params}"


def parse_system(
    text: str, *, subject: str | None = None, ceiling: str | None = None
) -> SystemSpec:
    """``assistant:k=8,generator=NAME@V``, ``generator:NAME@V``, ``classifier:NAME@V`` or
    ``embedder:NAME@V,k=10`` as a :class:`SystemSpec` (InvalidInput when malformed)."""
    raw = text.strip()
    kind, _, rest = raw.partition(":")
    kind = kind.strip().lower()
    if kind not in SYSTEM_KINDS:
        raise InvalidInput(
            f"A system is one of {', '.join(SYSTEM_KINDS)} (e.g. assistant:k=8): {text!r}."
        )
    parts = [p.strip() for p in rest.split(",") if p.strip()] if rest else []
    ref = "assistant"
    if kind != "assistant":
        if not parts or "=" in parts[0]:
            raise InvalidInput(f"A {kind} system names its model: {kind}:NAME@VERSION.")
        ref = parts.pop(0)
    params: dict[str, Any] = {}
    for part in parts:
        match = _PAIR.match(part)
        if match is None:
            raise InvalidInput(f"A system parameter reads NAME=VALUE: {part!r}.")
        name, value = match.group(1), match.group(2).strip()
        if name not in _KNOWN[kind]:
            allowed = ", ".join(sorted(_KNOWN[kind])) or "none"
            raise InvalidInput(f"A {kind} system has no parameter {name!r} (it takes {allowed}).")
        if name in _INT_PARAMS:
            try:
                params[name] = int(value)
            except ValueError:
                raise InvalidInput(f"Parameter {name} is a whole number: {value!r}.") from None
            if params[name] < 1:
                raise InvalidInput(f"Parameter {name} is at least 1.")
        else:
            params[name] = value
    if kind == "assistant":
        params.setdefault("k", 8)
        params.setdefault("generator", "extractive")
        if ceiling is None and "max_marking" in params:
            ceiling = str(params["max_marking"])
    return SystemSpec(kind, ref, params, subject, ceiling)


@dataclass(frozen=True)
class ItemView:
    """What a system is given of one suite item."""

    id: str
    kind: str
    input: Mapping[str, Any]
    expected: Mapping[str, Any]
    marking: Marking
    sources: tuple[str, ...] = ()


@dataclass
class Response:
    """One system response: the mapping scorers read, its marking, the context it came from
    (kept in the transcript), and the tokens it used."""

    response: dict[str, Any]
    marking: Marking
    context: list[dict[str, Any]] = field(default_factory=list)
    tokens: int | None = None


class NotEligible(Exception):
    """Raised by a system for an item it must not be given (counted, never sent)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class System(Protocol):
    """An opened system under test."""

    spec: SystemSpec
    version: str

    def respond(self, item: ItemView, *, seed: int, timeout: float) -> Response: ...


def first(mapping: Mapping[str, Any], *names: str) -> Any:
    """The first of ``names`` present in ``mapping`` (None when none is)."""
    for name in names:
        if name in mapping and mapping[name] is not None:
            return mapping[name]
    return None


def _acting(session: Session, spec: SystemSpec) -> Session:
    if spec.subject is None or spec.subject == session.subject.name:
        return session
    return session.workspace.session(spec.subject)


def _check_kind(spec: SystemSpec, suite_kind: str) -> None:
    if suite_kind not in ANSWERS[spec.kind]:
        raise InvalidInput(
            f"A {spec.kind} system answers {' or '.join(ANSWERS[spec.kind])} suites, "
            f"not {suite_kind}."
        )


class AssistantSystem:
    """The assistant with one configuration, acting as a named subject."""

    def __init__(self, session: Session, spec: SystemSpec) -> None:
        from garrison.assist import registered_generator

        self.spec = spec
        self.session = _acting(session, spec)
        generator = str(spec.parameters.get("generator", "extractive"))
        self.k = int(spec.parameters.get("k", 8))
        self._generator: Any = None
        gen_id = "extractive"
        if generator != "extractive":
            self._generator = registered_generator(self.session, generator)
            gen_id = self._generator.opened.version.id
        self.version = f"garrison-{__version__}/assistant/{gen_id}"
        self._ceiling = session.parse_marking(spec.ceiling) if spec.ceiling else None

    def respond(self, item: ItemView, *, seed: int, timeout: float) -> Response:
        from garrison.assist import ask

        question = first(item.input, "question", "query", "prompt", "text")
        if not isinstance(question, str) or not question.strip():
            raise InvalidInput(f"Item {item.id} has no question.")
        if not self.session.can_read(item.marking):
            raise NotEligible("the acting subject may not read the item")
        if self._ceiling is not None and not system_high_dominates(self._ceiling, item.marking):
            raise NotEligible("the item's marking is above the run's ceiling")
        try:
            answer = ask(
                self.session,
                question,
                k=self.k,
                max_marking=self.spec.ceiling,
                question_marking=item.marking.banner(),
                generator=self._generator,
            )
        except NotPermitted as exc:
            raise NotEligible(str(exc)) from None
        marking = self.session.parse_marking(answer.marking)
        data = answer.to_dict()
        citations = [
            {"chunk_id": c.chunk_id, "document_id": c.doc_id, "quote": c.quote, "n": c.n}
            for c in answer.citations
        ]
        by_n = {c.n: c.chunk_id for c in answer.citations}
        sentences = [
            {
                "text": s.text,
                "supported": bool(s.citations) and not s.unsupported,
                "citations": [by_n[n] for n in s.citations if n in by_n],
            }
            for s in answer.sentences
        ]
        response = {
            "text": " ".join(s.text for s in answer.sentences),
            "citations": citations,
            "sentences": sentences,
            "retrieved": [c.chunk_id for c in answer.context],
            "refused": answer.refused,
        }
        return Response(response, marking, context=data["context"])


class GeneratorSystem:
    """A registered generator on prompts made from the items."""

    PROMPTS: ClassVar[dict[str, str]] = {
        "qa": "Answer the question in one or two sentences.",
        "generation": "Respond to the request.",
        "extraction": "Extract the requested fields from the text. Answer with one JSON object.",
    }

    def __init__(self, session: Session, spec: SystemSpec, timeout: float) -> None:
        from garrison.models import open_generator

        self.spec = spec
        self.session = _acting(session, spec)
        self.opened = open_generator(self.session, spec.ref, purpose="evaluate", timeout=timeout)
        self.version = self.opened.version.id
        self.max_tokens = int(spec.parameters.get("max_tokens", 256))
        self._ceiling = session.parse_marking(spec.ceiling) if spec.ceiling else None

    def messages(self, item: ItemView) -> list[dict[str, str]]:
        instruction = self.PROMPTS.get(item.kind, self.PROMPTS["generation"])
        if item.kind == "extraction":
            text = first(item.input, "text", "prompt") or ""
            fields = first(item.input, "fields", "schema")
            ask = f"{text}\n\nFields: {json.dumps(fields)}" if fields else str(text)
        else:
            ask = str(first(item.input, "question", "prompt", "query", "text") or "")
        return [{"role": "system", "content": instruction}, {"role": "user", "content": ask}]

    def respond(self, item: ItemView, *, seed: int, timeout: float) -> Response:
        # Decided before anything is sent: an item above the accreditation never leaves.
        if not system_high_dominates(self.opened.accredited, item.marking):
            raise NotEligible("the item's marking is above the generator's accreditation")
        output = self.opened.output_marking(item.marking)
        if not self.session.can_read(output) or (
            self._ceiling is not None and not system_high_dominates(self._ceiling, output)
        ):
            raise NotEligible("the response would be marked above the ceiling")
        result = self.opened.generate(
            self.messages(item),
            content_marking=item.marking,
            max_tokens=self.max_tokens,
            seed=seed,
        )
        response: dict[str, Any] = {"text": result.text, "refused": False}
        if item.kind == "extraction":
            response["json"] = _parse_json(result.text)
        usage = result.usage or {}
        tokens = usage.get("total_tokens")
        if tokens is None and usage:
            tokens = int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))
        return Response(response, result.marking, tokens=int(tokens) if tokens else None)


def _parse_json(text: str) -> Any:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        return json.loads(text[start : end + 1])
    except ValueError:
        return None


class ClassifierSystem:
    """A registered classifier on classification items."""

    def __init__(self, session: Session, spec: SystemSpec) -> None:
        from garrison.models import open_classifier

        self.spec = spec
        self.session = _acting(session, spec)
        self.classifier = open_classifier(self.session, spec.ref, purpose="evaluate")
        self.version = self.classifier.version.id
        self._ceiling = session.parse_marking(spec.ceiling) if spec.ceiling else None
        self._lock = threading.Lock()

    def respond(self, item: ItemView, *, seed: int, timeout: float) -> Response:
        from garrison.models import output_marking

        text = first(item.input, "text", "prompt")
        if not isinstance(text, str):
            raise InvalidInput(f"Item {item.id} has no text to classify.")
        models = [self.classifier.version]
        if self.classifier.embedder_version is not None:
            models.append(self.classifier.embedder_version)
        marking = output_marking(item.marking, *models)
        if not self.session.can_read(marking) or (
            self._ceiling is not None and not system_high_dominates(self._ceiling, marking)
        ):
            raise NotEligible("the prediction would be marked above the ceiling")
        with self._lock:  # one encoder, not made for concurrent calls
            (prediction,) = self.classifier.predict([text], [item.marking])
        response = {
            "label": prediction.label,
            "probabilities": dict(prediction.probabilities),
            "text": prediction.label,
        }
        return Response(response, join(marking, prediction.marking))


class EmbedderSystem:
    """An embedder ranking the readable chunks of the suite's source documents."""

    def __init__(self, session: Session, spec: SystemSpec, items: Sequence[ItemView]) -> None:
        from garrison.models import open_embedder

        self.spec = spec
        self.session = _acting(session, spec)
        self.model_version, self.model = open_embedder(self.session, spec.ref, purpose="evaluate")
        self.version = self.model_version.id
        self.k = int(spec.parameters.get("k", 10))
        self._ceiling = session.parse_marking(spec.ceiling) if spec.ceiling else None
        self._lock = threading.Lock()
        self._pool: tuple[list[str], list[Marking], np.ndarray[Any, Any]] | None = None
        self._sources = sorted({s for item in items for s in item.sources})

    def _candidates(self) -> tuple[list[str], list[Marking], np.ndarray[Any, Any]]:
        from garrison.store.predictions import documents_of_chunks, stored_chunks

        with self._lock:
            if self._pool is not None:
                return self._pool
            docs = documents_of_chunks(self.session, self._sources)
            chunks = stored_chunks(self.session, docs)
            if self._ceiling is not None:
                chunks = [(c, m) for c, m in chunks if system_high_dominates(self._ceiling, m)]
            ids = [c.id for c, _ in chunks]
            markings = [m for _, m in chunks]
            vectors = (
                np.asarray(self.model.encode([c.text for c, _ in chunks]), dtype=np.float64)
                if chunks
                else np.zeros((0, 1))
            )
            self._pool = (ids, markings, vectors)
            return self._pool

    def respond(self, item: ItemView, *, seed: int, timeout: float) -> Response:
        query = first(item.input, "query", "question", "text")
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput(f"Item {item.id} has no query.")
        if not self.session.can_read(item.marking):
            raise NotEligible("the acting subject may not read the item")
        ids, markings, vectors = self._candidates()
        if not ids:
            return Response(
                {"retrieved": [], "text": ""}, join(item.marking, self.model_version.marking)
            )
        with self._lock:
            q = np.asarray(self.model.encode([query]), dtype=np.float64)[0]
        scores = vectors @ q
        order = sorted(range(len(ids)), key=lambda i: (-float(scores[i]), ids[i]))[: self.k]
        marking = join(item.marking, self.model_version.marking, *(markings[i] for i in order))
        retrieved = [ids[i] for i in order]
        context = [{"chunk_id": ids[i], "score": round(float(scores[i]), 6)} for i in order]
        return Response({"retrieved": retrieved, "text": ""}, marking, context=context)


def open_system(
    session: Session,
    spec: SystemSpec,
    suite_kind: str,
    items: Sequence[ItemView],
    *,
    timeout: float = 60.0,
) -> System:
    """The system ``spec`` names, opened for the session (NotFound: a model it may not read)."""
    _check_kind(spec, suite_kind)
    if spec.ceiling is not None:
        session.parse_marking(spec.ceiling)  # a malformed ceiling is InvalidInput up front
    if spec.kind == "assistant":
        return AssistantSystem(session, spec)
    if spec.kind == "generator":
        return GeneratorSystem(session, spec, timeout)
    if spec.kind == "classifier":
        return ClassifierSystem(session, spec)
    return EmbedderSystem(session, spec, items)
