"""A client for OpenAI-compatible chat endpoints (vLLM, llama.cpp, Ollama, TGI).

One request shape: ``POST {base_url}/chat/completions`` with ``model``, ``messages``,
``max_tokens``, ``temperature``, ``seed`` and ``stop``, non-streaming or ``stream: true``
(server-sent events, ``data: {...}`` lines ending with ``data: [DONE]``); and
``GET {base_url}/models`` to probe. The API key is read from its file at each call (so a
rotated key takes effect at once) and sent as ``Authorization: Bearer``; it is never stored,
logged or put in an error message.

Failures are :class:`~garrison.core.errors.ServiceUnavailable`, one sentence each, by
``reason``: ``unreachable`` (connection refused or reset, retried a bounded number of times),
``timeout`` (no answer in time; not retried: the server may still be working on it),
``http-status`` (an HTTP error other than a passing 502/503/504), ``bad-answer`` (not JSON,
no choices, wrong types). Nothing of a response body is echoed into a message.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from garrison.core.errors import InvalidInput, KeyFileError, MissingExtra, ServiceUnavailable

__all__ = [
    "Completion",
    "OpenAIClient",
    "Piece",
    "SamplingOptions",
    "normalize_base_url",
    "read_api_key",
]

#: Attempts for one request when the connection fails (or a gateway says it is busy).
ATTEMPTS = 3
_BACKOFF_S = 0.25
_RETRY_STATUSES = frozenset({502, 503, 504})
_MAX_KEY_BYTES = 4096


@dataclass(frozen=True)
class SamplingOptions:
    """How to decode: greedy at temperature 0, else seeded sampling; ``stop`` ends the text."""

    max_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completion:
    """A backend's raw answer: the text, token counts, and why it stopped."""

    text: str
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str | None = None


@dataclass(frozen=True)
class Piece:
    """One piece of a streamed answer; the last one may carry only usage or a finish reason."""

    text: str
    usage: dict[str, int] | None = None
    finish_reason: str | None = None


# -- what a server must answer ----------------------------------------------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Usage(_Answer):
    prompt_tokens: StrictInt | None = None
    completion_tokens: StrictInt | None = None
    total_tokens: StrictInt | None = None

    def counts(self) -> dict[str, int]:
        return {
            k: v
            for k, v in (
                ("prompt_tokens", self.prompt_tokens),
                ("completion_tokens", self.completion_tokens),
            )
            if v is not None
        }


class _Message(_Answer):
    content: StrictStr | None = None


class _Choice(_Answer):
    message: _Message
    finish_reason: StrictStr | None = None


class _ChatCompletion(_Answer):
    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage | None = None


class _Delta(_Answer):
    content: StrictStr | None = None


class _StreamChoice(_Answer):
    delta: _Delta = Field(default_factory=_Delta)
    finish_reason: StrictStr | None = None


class _ChatChunk(_Answer):
    choices: list[_StreamChoice] = Field(default_factory=list)
    usage: _Usage | None = None


class _ModelEntry(_Answer):
    id: StrictStr


class _ModelList(_Answer):
    data: list[_ModelEntry]


# -- helpers ----------------------------------------------------------------------------------


def normalize_base_url(url: str) -> str:
    """``url`` checked (http or https, a host, no credentials, query or fragment), no final '/'.

    Credentials in a URL would land in the catalog: an API key goes in a key file instead.
    """
    # A refused URL is never echoed: it may hold the very credentials it is refused for.
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (parsed only to reject a malformed port)
    except ValueError as exc:
        raise InvalidInput("The endpoint URL is malformed.") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            "The endpoint URL is not an http(s) URL with a host, such as http://127.0.0.1:8000/v1."
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            "An endpoint URL may not hold credentials: put the API key in a file and pass "
            "--api-key-file."
        )
    if parts.query or parts.fragment:
        raise InvalidInput(
            "An endpoint URL has no query or fragment (an API key goes in --api-key-file)."
        )
    return text.rstrip("/")


def read_api_key(path: Path) -> str:
    """The key in ``path``: one line, owner-only file. KeyFileError otherwise (key not shown)."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"The API key file {path} is not a regular file.")
        if os.name == "posix" and st.st_mode & 0o077:
            raise KeyFileError(
                f"The API key file {path} may be read by other users; make it owner-only "
                f"(chmod 600 {path})."
            )
        raw = path.read_bytes()[: _MAX_KEY_BYTES + 1]
    except OSError as exc:
        raise KeyFileError(f"The API key file {path} cannot be read.") from exc
    try:
        key = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        key = ""
    if not key or len(raw) > _MAX_KEY_BYTES or any(c.isspace() or ord(c) < 33 for c in key):
        raise KeyFileError(f"The API key file {path} does not hold one key on one line.")
    return key


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:
        raise MissingExtra("generate", "httpx") from exc
    return httpx


class OpenAIClient:
    """Calls one OpenAI-compatible server for one model id."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_file: Path | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        self.model = model
        self.api_key_file = api_key_file
        self.timeout = timeout
        self.connect_timeout = connect_timeout

    # -- plumbing ------------------------------------------------------------------------------

    def _fail(self, reason: str, what: str) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"The generator endpoint {self.base_url} {what}.", service=self.base_url, reason=reason
        )

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.api_key_file is not None:
            headers["Authorization"] = f"Bearer {read_api_key(self.api_key_file)}"
        return headers

    def _client(self) -> Any:
        httpx = _httpx()
        return httpx.Client(
            timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
            follow_redirects=False,
            trust_env=False,  # never route an enclave call through a proxy from the environment
        )

    def _status(self, response: Any) -> None:
        code = int(response.status_code)
        if code == 200:
            return
        if code in (401, 403):
            raise self._fail("http-status", f"refused the request (HTTP {code}); check the API key")
        if code == 404:
            raise self._fail(
                "http-status",
                f"has no such route or model (HTTP 404); check --base-url (it usually ends in "
                f"/v1) and the model id {self.model!r}",
            )
        raise self._fail("http-status", f"answered HTTP {code}")

    @staticmethod
    def _reason(exc: Exception) -> str:
        text = str(exc).strip()
        return text[:200] if text else type(exc).__name__

    def _send(self, client: Any, method: str, path: str, body: Mapping[str, Any] | None) -> Any:
        """One request, retried on connection failures and passing gateway errors; the
        response is open (streamed) and checked for HTTP 200."""
        httpx = _httpx()
        url = f"{self.base_url}{path}"
        headers = self._headers()
        for attempt in range(1, ATTEMPTS + 1):
            try:
                request = client.build_request(method, url, headers=headers, json=body)
                response = client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ConnectTimeout) and attempt < ATTEMPTS:
                    time.sleep(_BACKOFF_S * attempt)
                    continue
                raise self._fail("timeout", f"did not answer within {self.timeout:g} s") from exc
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                if attempt < ATTEMPTS:
                    time.sleep(_BACKOFF_S * attempt)
                    continue
                raise self._fail(
                    "unreachable",
                    f"could not be reached after {ATTEMPTS} attempts ({self._reason(exc)}); "
                    "check that its server is running and the URL",
                ) from exc
            except httpx.HTTPError as exc:
                raise self._fail("unreachable", f"failed ({self._reason(exc)})") from exc
            if response.status_code in _RETRY_STATUSES and attempt < ATTEMPTS:
                response.close()
                time.sleep(_BACKOFF_S * attempt)
                continue
            try:
                self._status(response)
            except ServiceUnavailable:
                response.close()
                raise
            return response
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _read_json(self, response: Any) -> Any:
        httpx = _httpx()
        try:
            raw = response.read()
        except httpx.TimeoutException as exc:
            raise self._fail("timeout", f"did not answer within {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise self._fail("unreachable", f"broke off its answer ({self._reason(exc)})") from exc
        finally:
            response.close()
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise self._fail("bad-answer", "answered with something that is not JSON") from exc

    def _body(self, messages: list[dict[str, str]], options: SamplingOptions) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "seed": options.seed,
        }
        if options.stop:
            body["stop"] = list(options.stop)
        return body

    # -- calls ---------------------------------------------------------------------------------

    def models(self) -> list[str]:
        """The model ids the server lists (``GET /models``)."""
        with self._client() as client:
            data = self._read_json(self._send(client, "GET", "/models", None))
        try:
            return [entry.id for entry in _ModelList.model_validate(data).data]
        except ValidationError as exc:
            raise self._fail(
                "bad-answer", "answered /models with something that is not a model list"
            ) from exc

    def complete(self, messages: list[dict[str, str]], options: SamplingOptions) -> Completion:
        """One chat completion."""
        with self._client() as client:
            data = self._read_json(
                self._send(client, "POST", "/chat/completions", self._body(messages, options))
            )
        try:
            answer = _ChatCompletion.model_validate(data)
        except ValidationError as exc:
            raise self._fail(
                "bad-answer", "answered with something that is not a chat completion"
            ) from exc
        choice = answer.choices[0]
        return Completion(
            choice.message.content or "",
            answer.usage.counts() if answer.usage else {},
            choice.finish_reason,
        )

    def stream(self, messages: list[dict[str, str]], options: SamplingOptions) -> Iterator[Piece]:
        """A streamed chat completion, piece by piece (the request is sent on first ``next``)."""
        httpx = _httpx()
        body = {**self._body(messages, options), "stream": True}
        with self._client() as client:
            response = self._send(client, "POST", "/chat/completions", body)
            done = False
            try:
                for line in response.iter_lines():
                    if not line.strip() or line.startswith(":"):
                        continue  # keep-alive or comment
                    if not line.startswith("data:"):
                        continue  # event:, id:, retry: -- nothing we use
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        done = True
                        break
                    try:
                        chunk = _ChatChunk.model_validate(json.loads(payload))
                    except (ValueError, ValidationError) as exc:
                        raise self._fail(
                            "bad-answer", "streamed something that is not a chat completion chunk"
                        ) from exc
                    usage = chunk.usage.counts() if chunk.usage else None
                    if not chunk.choices:
                        if usage is not None:
                            yield Piece("", usage=usage)
                        continue
                    choice = chunk.choices[0]
                    yield Piece(choice.delta.content or "", usage, choice.finish_reason)
            except httpx.TimeoutException as exc:
                raise self._fail("timeout", f"did not answer within {self.timeout:g} s") from exc
            except httpx.HTTPError as exc:
                raise self._fail(
                    "unreachable", f"broke off its answer ({self._reason(exc)})"
                ) from exc
            finally:
                response.close()
            if not done:
                raise self._fail("bad-answer", "ended its stream before saying it was done")

    def probe(self) -> None:
        """Check that the server lists the model and answers a one-token completion."""
        served = self.models()
        if self.model not in served:
            listed = ", ".join(repr(m) for m in served[:5]) or "none"
            raise self._fail(
                "bad-answer", f"does not serve the model {self.model!r} (it lists {listed})"
            )
        self.complete([{"role": "user", "content": "ping"}], SamplingOptions(max_tokens=1))
