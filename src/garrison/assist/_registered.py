"""Registered generators as the assistant's :class:`~garrison.assist.Generator`.

:func:`registered_generator` opens a generator version from the model registry with the
asker's session (:func:`garrison.models.open_generator`: one the asker may not read looks
missing, NotFound) and adapts it to what the assistant needs:

- ``name`` -- the version's reference, ``NAME@ID-PREFIX``, shown as the generator used;
- ``accredited`` -- an endpoint's declared accreditation; a local model's is the workspace's
  system high (it runs inside Garrison);
- ``marking`` -- what its weights are marked;
- ``context_tokens`` -- a local model's context from its config (``max_position_embeddings``),
  counted with its own tokenizer; an endpoint's configured context size (its manifest's
  ``context_tokens``, else :data:`ENDPOINT_CONTEXT_TOKENS`), counted with the conservative
  estimate :func:`garrison.assist._text.estimate_tokens` (Garrison does not hold the endpoint's
  tokenizer, so it over-counts rather than overflow);
- ``max_new_tokens`` -- the room kept for the answer: :data:`MAX_NEW_TOKENS`, but never more
  than a quarter of the context;
- ``generate`` -- one call through the opened generator, which checks again, and audits, that
  the content's marking is dominated by its accreditation and that the asker may read the
  output before anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from garrison.assist._generator import Generation
from garrison.assist._text import estimate_tokens
from garrison.core.errors import CheckFailed, InvalidInput
from garrison.models import Generator as OpenedGenerator
from garrison.models import open_generator
from garrison.models._gen_local import LocalLM
from garrison.models.embedding import _quiet
from garrison.security.markings import Marking
from garrison.store.session import Session

__all__ = [
    "ENDPOINT_CONTEXT_TOKENS",
    "MAX_NEW_TOKENS",
    "RegisteredGenerator",
    "registered_generator",
]

#: The context size assumed for an endpoint registered without one (tokens).
ENDPOINT_CONTEXT_TOKENS = 4096
#: The most new tokens asked for an answer (a quarter of a small context at most).
MAX_NEW_TOKENS = 256
#: The smallest context a generator can answer in (tokens): the prompt alone needs most of it.
MIN_CONTEXT_TOKENS = 256


class RegisteredGenerator:
    """A registered generator version, opened for the asker, as the assistant calls it."""

    def __init__(self, opened: OpenedGenerator) -> None:
        self.opened = opened
        self.name = opened.version.ref
        self.accredited: Marking = opened.accredited
        self.marking: Marking = opened.marking
        backend = opened.backend
        self._tokenizer: Any = backend.tokenizer if isinstance(backend, LocalLM) else None
        if isinstance(backend, LocalLM):
            context = backend.max_positions
            if context is None:  # no position limit in the config: the tokenizer's, if real
                limit = getattr(self._tokenizer, "model_max_length", None)
                context = limit if isinstance(limit, int) and limit < 10**7 else None
        else:
            context = opened.version.manifest.get("parameters", {}).get("context_tokens")
            if context is None:
                context = ENDPOINT_CONTEXT_TOKENS
        if isinstance(context, bool) or not isinstance(context, int):
            raise CheckFailed(f"Generator {self.name} declares no usable context size.")
        if context < MIN_CONTEXT_TOKENS:
            raise CheckFailed(
                f"Generator {self.name} has a context of {context} tokens, too small to answer "
                f"from sources (at least {MIN_CONTEXT_TOKENS})."
            )
        self.context_tokens: int = context
        self.max_new_tokens: int = min(MAX_NEW_TOKENS, context // 4)

    @property
    def local(self) -> bool:
        """Whether it runs inside Garrison (then its tokenizer counts)."""
        return self._tokenizer is not None

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text``: the local model's tokenizer, or a conservative estimate."""
        if self._tokenizer is None:
            return estimate_tokens(text)
        with _quiet():
            ids = self._tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        return len(ids)

    def generate(
        self, messages: Sequence[dict[str, str]], *, content_marking: Marking
    ) -> Generation:
        """The model's answer to ``messages`` (greedy), with the marking it is given."""
        result = self.opened.generate(
            [dict(m) for m in messages],
            content_marking=content_marking,
            max_tokens=self.max_new_tokens,
        )
        return Generation(text=result.text, marking=result.marking)


def registered_generator(
    session: Session, ref: str, *, timeout: float = 120.0
) -> RegisteredGenerator:
    """The generator version ``ref`` (``NAME`` or ``NAME@VERSION``) names, opened for the
    session's subject; NotFound when there is none they may read."""
    ref = ref.strip()
    if not ref:
        raise InvalidInput("A generator is named NAME or NAME@VERSION.")
    return RegisteredGenerator(open_generator(session, ref, purpose="ask", timeout=timeout))
