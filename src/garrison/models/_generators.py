"""Generators: the language models Garrison calls but does not train.

A generator is a model version of kind ``generator``, registered by an admin (registering one
and setting its accreditation is an admin action), in one of two runtimes:

- an **endpoint** (``runtime: openai``): any OpenAI-compatible server. It has no weight files;
  its manifest's parameters hold ``{"runtime": "openai", "endpoint": {"base_url", "model"},
  "accredited": BANNER, "api_key_file": PATH | null}``. Only the key file's path is stored --
  never the key, which is read from the file at each call (:mod:`garrison.models._gen_http`).
- a **local** model (``runtime: transformers``): a Hugging Face causal-LM directory whose every
  file is hashed at registration, stored as encrypted blobs, and verified at load
  (:mod:`garrison.models._gen_local`). It runs inside Garrison, so it is accredited at the
  workspace's system high.

Two markings are kept apart. ``accredited`` is the most a generator may *receive*: Garrison
never sends it content whose marking that does not dominate (no write-down to a model), and
it is never above system high. ``marking`` is what its *weights* are marked (UNCLASSIFIED for a
public base model); like any model's, it is joined into everything it produces, and a subject
who does not dominate it cannot see or use the generator (it looks missing). An endpoint's
weights run on the endpoint, so its accreditation must dominate its marking.

The registrant must be able to read the registration (the version is a record marked with
``marking``, and the command shows it back); they need not dominate ``accredited``, which is a
property of the endpoint's network, declared like a workspace's system high, not data.

Every call checks, before anything is sent: the content's marking is dominated by the
accreditation, and the output's marking -- join(content, model) -- is one the subject may read.
A refusal is audited (``model.use``, deny) and sends nothing; an allowed call is audited before
it is sent, so a call the audit log cannot record is not made.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Generator as PyGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from garrison.core.errors import CheckFailed, InvalidInput, NotPermitted
from garrison.models._files import manifest_files, store_files
from garrison.models._gen_http import (
    Completion,
    OpenAIClient,
    Piece,
    SamplingOptions,
    normalize_base_url,
    read_api_key,
)
from garrison.models._gen_local import LocalLM, check_local_files, check_local_folder
from garrison.models._registry import _NAME, Models, ModelVersion, weight_files
from garrison.security.audit import AuditAction
from garrison.security.markings import UNCLASSIFIED, Marking, join, system_high_dominates
from garrison.security.policy import Action
from garrison.store.session import Session

__all__ = [
    "ENDPOINT_RUNTIME",
    "LOCAL_RUNTIME",
    "Generation",
    "GenerationStream",
    "Generator",
    "GeneratorBackend",
    "open_generator",
    "register_endpoint",
    "register_local",
]

ENDPOINT_RUNTIME = "openai"
LOCAL_RUNTIME = "transformers"
ROLES = ("system", "user", "assistant")
MAX_TOKENS = 32768
_MODEL_ID_MAX = 256

_lock = threading.Lock()
_local: dict[str, LocalLM] = {}


class GeneratorBackend(Protocol):
    """What runs a generation: an endpoint client or a local model."""

    def complete(self, messages: list[dict[str, str]], options: SamplingOptions) -> Completion:
        """One whole answer."""
        ...

    def stream(self, messages: list[dict[str, str]], options: SamplingOptions) -> Iterator[Piece]:
        """The answer piece by piece (the last piece may carry only usage)."""
        ...


@dataclass(frozen=True)
class Generation:
    """A generated text and its marking: the join of its input's and the generator's."""

    text: str
    marking: Marking
    model_ref: str
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "marking": self.marking.banner(),
            "model": self.model_ref,
            "usage": dict(self.usage),
            "finish_reason": self.finish_reason,
        }


class _StopCutter:
    """Cuts streamed text at the first stop string, holding back what may start one."""

    def __init__(self, stop: Sequence[str]) -> None:
        self.stop = [s for s in stop if s]
        self.held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        self.held += text
        hits = [i for i in (self.held.find(s) for s in self.stop) if i >= 0]
        if hits:
            self.stopped = True
            out, self.held = self.held[: min(hits)], ""
            return out
        keep = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self.held)), 0, -1):
                if self.held.endswith(s[:n]):
                    keep = max(keep, n)
                    break
        out = self.held[: len(self.held) - keep]
        self.held = self.held[len(self.held) - keep :]
        return out

    def flush(self) -> str:
        out, self.held = ("" if self.stopped else self.held), ""
        return out


class GenerationStream:
    """A generation as it comes: iterate for text pieces; the marking is known before the first.

    After the iteration ends, :attr:`text`, :attr:`usage` and :attr:`finish_reason` are set;
    :meth:`result` consumes what is left and returns the :class:`Generation`.
    """

    def __init__(
        self, pieces: Iterator[Piece], marking: Marking, model_ref: str, stop: Sequence[str]
    ) -> None:
        self.marking = marking
        self.model_ref = model_ref
        self.text = ""
        self.usage: dict[str, int] = {}
        self.finish_reason: str | None = None
        self.done = False
        self._pieces = pieces
        self._cutter = _StopCutter(stop)
        self._iter = self._run()

    def _run(self) -> PyGenerator[str, None, None]:
        try:
            for piece in self._pieces:
                if piece.usage:
                    self.usage = dict(piece.usage)
                if piece.finish_reason:
                    self.finish_reason = piece.finish_reason
                out = self._cutter.feed(piece.text)
                if out:
                    self.text += out
                    yield out
                if self._cutter.stopped:
                    self.finish_reason = "stop"
                    break
            rest = self._cutter.flush()
            if rest:
                self.text += rest
                yield rest
            self.done = True
        finally:
            close = getattr(self._pieces, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[str]:
        return self._iter

    def close(self) -> None:
        """Stop early (the backend stops generating)."""
        self._iter.close()

    def result(self) -> Generation:
        for _ in self._iter:
            pass
        return Generation(self.text, self.marking, self.model_ref, self.usage, self.finish_reason)


def _cut(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


def _check_messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("A generation needs a non-empty list of messages.")
    out: list[dict[str, str]] = []
    for m in messages:
        if not isinstance(m, Mapping) or set(m) - {"role", "content"}:
            raise InvalidInput('Each message is {"role": ..., "content": ...} and nothing else.')
        role, content = m.get("role"), m.get("content")
        if role not in ROLES or not isinstance(content, str):
            raise InvalidInput(
                "Each message needs a role (system, user or assistant) and a text content."
            )
        out.append({"role": str(role), "content": content})
    return out


def _options(
    max_tokens: int, temperature: float, seed: int, stop: Sequence[str] | None
) -> SamplingOptions:
    if (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or not 1 <= max_tokens <= MAX_TOKENS
    ):
        raise InvalidInput(f"max_tokens is a whole number from 1 to {MAX_TOKENS}.")
    if not 0.0 <= float(temperature) <= 2.0:
        raise InvalidInput("temperature is from 0 to 2.")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise InvalidInput("seed is a whole number from 0 to 2**63 - 1.")
    stops = tuple(stop or ())
    if len(stops) > 4 or not all(isinstance(s, str) and s for s in stops):
        raise InvalidInput("stop is at most four non-empty strings.")
    return SamplingOptions(int(max_tokens), float(temperature), int(seed), stops)


class Generator:
    """An opened generator: it checks every call's marking before anything is sent."""

    def __init__(
        self,
        session: Session,
        version: ModelVersion,
        backend: GeneratorBackend,
        accredited: Marking,
        purpose: str,
    ) -> None:
        self.session = session
        self.version = version
        self.backend = backend
        self.accredited = accredited
        self.purpose = purpose

    @property
    def runtime(self) -> str:
        return str(self.version.manifest.get("parameters", {}).get("runtime"))

    @property
    def marking(self) -> Marking:
        """The generator's own marking, joined into everything it produces."""
        return self.version.marking

    def output_marking(self, content_marking: Marking) -> Marking:
        """What a generation over content marked ``content_marking`` is marked."""
        return join(content_marking, self.version.marking)

    def _admit(self, content_marking: Marking, call: str) -> Marking:
        """Decide (and audit) a call before anything is sent; the output's marking."""
        details = {
            "purpose": self.purpose,
            "call": call,
            "runtime": self.runtime,
            "content_marking": content_marking.banner(),
            "accredited": self.accredited.banner(),
        }
        if not system_high_dominates(self.accredited, content_marking):
            self.session.audit(
                AuditAction.MODEL_USE,
                object_id=self.version.id,
                object_marking=self.version.marking.banner(),
                decision="deny",
                reason="content above the generator's accreditation",
                details=details,
            )
            raise NotPermitted(
                f"Generator {self.version.ref} is accredited for {self.accredited.banner()}; "
                f"content marked {content_marking.banner()} is never sent to it."
            )
        output = self.output_marking(content_marking)
        if not self.session.can_read(output):
            self.session.audit(
                AuditAction.MODEL_USE,
                object_id=self.version.id,
                object_marking=self.version.marking.banner(),
                decision="deny",
                reason="the output would be marked above what the subject may read",
                details=details,
            )
            raise NotPermitted(
                f"{self.session.subject.name} may not read a generation marked {output.banner()}."
            )
        self.session.audit(
            AuditAction.MODEL_USE,
            object_id=self.version.id,
            object_marking=output.banner(),
            details={**details, "output_marking": output.banner()},
        )
        return output

    def generate(
        self,
        messages: list[dict[str, str]],
        *,
        content_marking: Marking,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
        stop: Sequence[str] | None = None,
    ) -> Generation:
        """Generate a reply to ``messages`` (content marked ``content_marking``).

        NotPermitted -- nothing sent -- when the accreditation does not dominate the content's
        marking or the subject could not read the output. Greedy at temperature 0.
        """
        checked = _check_messages(messages)
        options = _options(max_tokens, temperature, seed, stop)
        marking = self._admit(content_marking, "generate")
        answer = self.backend.complete(checked, options)
        text, cut = _cut(answer.text, options.stop)
        return Generation(
            text, marking, self.version.ref, answer.usage, "stop" if cut else answer.finish_reason
        )

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        content_marking: Marking,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
        stop: Sequence[str] | None = None,
    ) -> GenerationStream:
        """Like :meth:`generate`, piece by piece; every check is made (and audited) here, before
        the stream is returned, and the request goes out on the first piece asked for."""
        checked = _check_messages(messages)
        options = _options(max_tokens, temperature, seed, stop)
        marking = self._admit(content_marking, "stream")
        return GenerationStream(
            self.backend.stream(checked, options), marking, self.version.ref, options.stop
        )


# -- opening -----------------------------------------------------------------------------------


def _endpoint_backend(
    session: Session, models: Models, version: ModelVersion, timeout: float
) -> tuple[GeneratorBackend, Marking]:
    params = version.manifest.get("parameters", {})
    try:
        endpoint = params["endpoint"]
        accredited = session.parse_marking(str(params["accredited"]))
        key_file = params.get("api_key_file")
        client = OpenAIClient(
            str(endpoint["base_url"]),
            str(endpoint["model"]),
            api_key_file=Path(key_file) if key_file else None,
            timeout=timeout,
        )
    except (KeyError, TypeError, InvalidInput) as exc:
        raise CheckFailed(
            f"Generator {version.ref} has no usable endpoint in its manifest."
        ) from exc
    if not system_high_dominates(session.workspace.system_high, accredited):
        raise CheckFailed(
            f"Generator {version.ref} claims an accreditation above system high; it is not used."
        )
    return client, accredited


def _local_backend(
    session: Session, models: Models, version: ModelVersion, timeout: float
) -> tuple[GeneratorBackend, Marking]:
    check_local_files(version.ref, manifest_files(version.manifest), error=CheckFailed)
    with _lock:
        cached = _local.get(version.id)
    if cached is None:
        folder = models.folder(version)  # every file checked against the manifest
        loaded = LocalLM(version.ref, folder)
        with _lock:
            cached = _local.setdefault(version.id, loaded)
    return cached, session.workspace.system_high


#: How each runtime opens; a new runtime registers here.
RUNTIMES: dict[
    str, Callable[[Session, Models, ModelVersion, float], tuple[GeneratorBackend, Marking]]
] = {ENDPOINT_RUNTIME: _endpoint_backend, LOCAL_RUNTIME: _local_backend}


def open_generator(
    session: Session, ref: str, *, purpose: str = "generate", timeout: float = 120.0
) -> Generator:
    """The readable generator ``ref`` names, ready to call (audited as ``model.use``).

    NotFound for one the subject may not read; a local model's files are verified before it
    loads (CheckFailed when one changed). ``timeout`` bounds each endpoint call, in seconds.
    """
    models = Models(session)
    version = models.use(ref, purpose)
    if version.kind != "generator":
        raise InvalidInput(f"Model {version.ref} is a {version.kind}, not a generator.")
    runtime = version.manifest.get("parameters", {}).get("runtime")
    opener = RUNTIMES.get(str(runtime))
    if opener is None:
        raise CheckFailed(f"Generator {version.ref} has an unknown runtime {runtime!r}.")
    backend, accredited = opener(session, models, version, timeout)
    return Generator(session, version, backend, accredited, purpose)


# -- registering -------------------------------------------------------------------------------


def _check_name_and_marking(session: Session, name: str, marking: Marking) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            "A model name is 1-128 letters, digits, '.', '_' or '-', not starting with a symbol."
        )
    high = session.workspace.system_high
    if not system_high_dominates(high, marking):
        raise InvalidInput(
            f"A generator cannot be marked {marking.banner()}: that is above this workspace's "
            f"system high {high.banner()}."
        )
    if not session.can_read(marking):
        raise NotPermitted(
            f"{session.subject.name} may not register a model marked {marking.banner()}."
        )


def register_endpoint(
    session: Session,
    name: str,
    *,
    base_url: str,
    model: str,
    accredited: Marking,
    marking: Marking = UNCLASSIFIED,
    api_key_file: Path | None = None,
    probe: bool = True,
    card: Mapping[str, Any] | None = None,
    timeout: float = 30.0,
    context_tokens: int | None = None,
) -> ModelVersion:
    """Register an OpenAI-compatible endpoint as a generator (admins; audited).

    ``accredited`` (never above system high, and dominating ``marking``) is the most the
    endpoint may receive; ``marking`` is what its weights are marked. Unless ``probe`` is
    False the endpoint must list ``model`` and answer a one-token completion, or nothing is
    registered (ServiceUnavailable). ``context_tokens`` is the endpoint's context size (kept
    in the parameters; the assistant assumes 4096 tokens when it is not given).
    """
    session.require(Action.GENERATOR_REGISTER, AuditAction.MODEL_REGISTER, object_id=name[:128])
    _check_name_and_marking(session, name, marking)
    url = normalize_base_url(base_url)
    model_id = model.strip()
    if not model_id or len(model_id) > _MODEL_ID_MAX or not model_id.isprintable():
        raise InvalidInput(f"A model id is 1-{_MODEL_ID_MAX} printable characters.")
    high = session.workspace.system_high
    if not system_high_dominates(high, accredited):
        raise InvalidInput(
            f"A generator cannot be accredited for {accredited.banner()}: that is above this "
            f"workspace's system high {high.banner()}."
        )
    if not system_high_dominates(accredited, marking):
        raise InvalidInput(
            f"A generator whose weights are marked {marking.banner()} cannot run on an "
            f"endpoint accredited for {accredited.banner()} only."
        )
    if context_tokens is not None and (
        isinstance(context_tokens, bool)
        or not isinstance(context_tokens, int)
        or not 256 <= context_tokens <= 10_000_000
    ):
        raise InvalidInput("A context size is a whole number of tokens from 256 to 10,000,000.")
    key_path: Path | None = None
    if api_key_file is not None:
        key_path = Path(api_key_file).expanduser().resolve()
        read_api_key(key_path)  # readable and well-formed now; read again at every call
    if probe:
        OpenAIClient(url, model_id, api_key_file=key_path, timeout=timeout).probe()
    parameters: dict[str, Any] = {
        "runtime": ENDPOINT_RUNTIME,
        "endpoint": {"base_url": url, "model": model_id},
        "accredited": accredited.banner(),
        "api_key_file": str(key_path) if key_path else None,
    }
    if context_tokens is not None:
        parameters["context_tokens"] = int(context_tokens)
    return Models(session)._register(
        kind="generator",
        name=name,
        files={},
        marking=marking,
        base=None,
        datasets=(),
        parameters=parameters,
        seeds=None,
        card=dict(card or {"source": f"OpenAI-compatible endpoint {url}, model {model_id}"}),
    )


def register_local(
    session: Session,
    name: str,
    *,
    path: Path,
    marking: Marking = UNCLASSIFIED,
    card: Mapping[str, Any] | None = None,
) -> ModelVersion:
    """Register a Hugging Face causal-LM directory as a local generator (admins; audited).

    Every file is hashed and stored in the workspace's encrypted blob store (``path`` may go
    afterwards); pickle weights and model code are refused. It is accredited at system high.
    """
    session.require(Action.GENERATOR_REGISTER, AuditAction.MODEL_REGISTER, object_id=name[:128])
    folder = Path(path).expanduser()
    _check_name_and_marking(session, name, marking)
    files = weight_files(folder)
    model_type = check_local_folder(folder, files)
    store_files(session, folder, files)
    return Models(session)._register(
        kind="generator",
        name=name,
        files=files,
        marking=marking,
        base=None,
        datasets=(),
        parameters={"runtime": LOCAL_RUNTIME, "model_type": model_type},
        seeds=None,
        card=dict(card or {"source": f"local {model_type} model registered from {folder.name}"}),
    )
