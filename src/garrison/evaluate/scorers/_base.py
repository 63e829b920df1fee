"""What scorers take and give, and the registry they are found in.

A scorer turns one :class:`Scored` item (the suite item's input and expected output, the system's
response, and the marking of it all) into a :class:`Score`. Scorers register a factory under a
name (:func:`register`); :func:`get_scorer` builds one with its parameters. A scorer that cannot
score an item -- its expected output lacks what the scorer compares against, or the response
lacks what it reads -- raises :class:`NotApplicable` (one sentence saying what is missing), so a
runner can skip that scorer for that item instead of inventing a number.

The keys scorers read (suites and runners fill them):

- ``expected``: ``answer`` / ``answers`` (qa), ``reference`` / ``references`` (generation),
  ``sources`` (gold source chunk ids), ``documents`` (gold source document ids), ``answerable``
  (bool, default true), ``label`` (classification), ``relevant`` (retrieval: chunk ids, or chunk
  id -> graded relevance), ``json`` and ``schema`` (extraction), ``regex``, ``includes``;
- ``response``: ``text``, ``citations`` (``[{"chunk_id", "document_id", "quote"}]``),
  ``sentences`` (``[{"text", "supported", "citations": [chunk ids]}]``), ``retrieved`` (ranked
  chunk ids), ``label``, ``probabilities`` (label -> p), ``refused``, ``json`` (parsed or None).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from garrison.core.errors import InvalidInput
from garrison.security.markings import Marking

__all__ = [
    "KINDS",
    "NotApplicable",
    "Score",
    "Scored",
    "Scorer",
    "default_scorers",
    "get_scorer",
    "register",
    "score_all",
    "scorer_names",
]

#: The kinds of suite item.
KINDS = frozenset({"qa", "classification", "retrieval", "extraction", "generation"})


class NotApplicable(InvalidInput):
    """A scorer cannot score an item: what it compares against or reads is missing."""

    code = "not-applicable"


@dataclass(frozen=True)
class Score:
    """One scorer's result on one item: ``value`` in [0, 1] (0 or 1 when ``binary``)."""

    name: str
    value: float
    binary: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "binary": self.binary,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Scored:
    """What a scorer sees of one item: its ``kind``, ``input``, ``expected`` output, the system's
    ``response``, and ``marking`` -- the item's marking joined with the response's (a model-
    graded scorer refuses an item without one)."""

    kind: str
    input: Mapping[str, Any]
    expected: Mapping[str, Any]
    response: Mapping[str, Any]
    marking: Marking | None = None


@runtime_checkable
class Scorer(Protocol):
    """A per-item scorer: ``name`` and ``version`` (recorded with every run), whether its
    scores are ``binary``, the item ``kinds`` it applies to, and ``score(item)``."""

    name: str
    version: str
    binary: bool
    kinds: frozenset[str]

    def score(self, item: Scored) -> Score: ...


Factory = Callable[..., Scorer]
_REGISTRY: dict[str, Factory] = {}
#: ``recall@10`` is ``recall@k`` with ``k=10``.
_AT_K = re.compile(r"^(?P<base>[a-z]+)@(?P<k>[0-9]{1,4})$")

_DEFAULTS: dict[str, tuple[str, ...]] = {
    "qa": (
        "normalized",
        "token-f1",
        "citation-precision",
        "citation-recall",
        "supported",
        "refusal",
    ),
    "classification": ("accuracy",),
    "retrieval": ("recall@10", "mrr", "ndcg@10"),
    "extraction": ("json-valid", "json-fields"),
    "generation": ("token-f1", "rouge-l", "chrf"),
}


def register(name: str) -> Callable[[Factory], Factory]:
    """Register ``factory(**params) -> Scorer`` under ``name`` (built-ins register this way)."""

    def decorate(factory: Factory) -> Factory:
        if name in _REGISTRY:
            raise ValueError(f"A scorer named {name!r} is already registered.")
        _REGISTRY[name] = factory
        return factory

    return decorate


def scorer_names() -> list[str]:
    """The registered scorer names, sorted (``recall@k`` and ``ndcg@k`` take ``k``)."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_scorer(name: str, **params: Any) -> Scorer:
    """The scorer registered as ``name``, built with ``params``; ``recall@5`` means
    ``recall@k`` with ``k=5``. An unknown name or parameter raises InvalidInput."""
    _load_builtins()
    factory = _REGISTRY.get(name)
    if factory is None:
        match = _AT_K.match(name)
        if match is not None and f"{match['base']}@k" in _REGISTRY:
            if "k" in params:
                raise InvalidInput(f"Scorer {name} already names its k; do not pass k again.")
            factory = _REGISTRY[f"{match['base']}@k"]
            params = {**params, "k": int(match["k"])}
    if factory is None:
        raise InvalidInput(
            f"There is no scorer named {name!r}; the scorers are: {', '.join(scorer_names())}."
        )
    try:
        return factory(**params)
    except TypeError as exc:
        raise InvalidInput(f"Scorer {name} does not take these parameters: {exc}.") from exc


def default_scorers(kind: str) -> list[str]:
    """The scorer names run on a suite of ``kind`` when none are named."""
    if kind not in _DEFAULTS:
        raise InvalidInput(
            f"There is no suite kind {kind!r}; the kinds are: {', '.join(sorted(KINDS))}."
        )
    return list(_DEFAULTS[kind])


def score_all(scorers: Iterable[Scorer], item: Scored) -> dict[str, Score]:
    """Each scorer's score of ``item``, by scorer name, leaving out the scorers that do not
    apply to it (:class:`NotApplicable`: nothing to compare against); any other error -- a
    judge that gave no valid verdict, an item above a judge's accreditation -- propagates, for
    the caller to record as the item's error."""
    out: dict[str, Score] = {}
    for scorer in scorers:
        if item.kind not in scorer.kinds:
            continue
        try:
            out[scorer.name] = scorer.score(item)
        except NotApplicable:
            continue
    return out


def _load_builtins() -> None:
    # The built-in scorers register on import; importing here keeps the registry complete for
    # callers that import only this module.
    from garrison.evaluate.scorers import (  # noqa: F401
        _grounding,
        _judge,
        _retrieval,
        _structured,
        _text,
    )


# -- helpers the built-ins share ---------------------------------------------------------------


def response_text(item: Scored) -> str:
    text = item.response.get("text")
    if not isinstance(text, str):
        raise NotApplicable("The response has no text to score.")
    return text


def references(item: Scored) -> list[str]:
    """The item's reference answers (``answers``, ``answer``, ``references``, ``reference``)."""
    for key in ("answers", "references"):
        many = item.expected.get(key)
        if isinstance(many, list | tuple) and many and all(isinstance(r, str) for r in many):
            return list(many)
    for key in ("answer", "reference"):
        one = item.expected.get(key)
        if isinstance(one, str):
            return [one]
    raise NotApplicable("The item has no reference answer to compare with.")


def unanswerable(item: Scored) -> bool:
    """A QA item whose question the sources cannot answer (``answerable`` false)."""
    return item.kind == "qa" and item.expected.get("answerable", True) is False


def refused(item: Scored) -> bool:
    return bool(item.response.get("refused", False))


def refusal_score(name: str, item: Scored, *, binary: bool) -> Score:
    """On an unanswerable item, an answer-quality scorer credits a refusal and nothing else."""
    ok = refused(item)
    return Score(name, 1.0 if ok else 0.0, binary, {"unanswerable": True, "refused": ok})


def string_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        out = list(value)
        if all(isinstance(v, str) for v in out):
            return out
    raise InvalidInput(f"The {what} must be a string or a list of strings.")
