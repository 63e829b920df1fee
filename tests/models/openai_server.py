"""A loopback OpenAI-compatible server for tests: real HTTP, a real (tiny) model, bad habits.

:func:`serve` starts a :class:`ChatServer` on ``127.0.0.1`` (a free port) in a thread and
stops it on exit::

    with serve(tiny_causal_lm(tmp / "lm")) as server:
        server.base_url        # "http://127.0.0.1:PORT/v1"
        server.requests        # every request received: method, path, headers, body

It serves ``GET /v1/models`` and ``POST /v1/chat/completions`` (whole, or ``stream: true`` as
server-sent events ending with ``data: [DONE]``). Answers come from a Hugging Face causal LM
folder, loaded with transformers directly (not through Garrison, so a test comparing the two
compares two implementations), decoded greedily at temperature 0 -- or from ``reply``, a
function of the messages, when a test needs a fixed answer.

``server.mode`` switches on misbehaviour for bad-input tests: ``garbage`` (not JSON),
``no-choices``, ``wrong-types`` (content is a number), ``error-500``, ``slow`` (waits
``server.delay`` seconds first), ``bad-stream`` (a chunk that is not JSON), ``truncated-stream``
(no ``[DONE]``), ``models-garbage`` (``/models`` is not a model list). ``server.fail_next = N``
answers the next N requests 503. ``api_key`` makes it demand ``Authorization: Bearer KEY``.
Everything is bounded in time: the server thread is a daemon, requests time out, and a slow
answer waits at most ``delay`` seconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["MODES", "ChatServer", "Received", "serve"]

MODES = (
    "ok",
    "garbage",
    "no-choices",
    "wrong-types",
    "error-500",
    "slow",
    "bad-stream",
    "truncated-stream",
    "models-garbage",
)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class _Model:
    """The tiny model, loaded with transformers on first use."""

    folder: Path
    _loaded: tuple[Any, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            tok = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                str(self.folder), local_files_only=True, use_safetensors=True
            )
            model.eval()
            self._loaded = (tok, model)
        return self._loaded

    def tokens(
        self, messages: list[dict[str, str]], max_tokens: int, temperature: float, seed: int
    ) -> tuple[str, list[str], int, int]:
        """The new text, as a whole and as pieces (cumulative decoding), the prompt's length
        and the number of new tokens."""
        import torch

        with self._lock:
            tok, model = self._load()
            if tok.chat_template:
                enc = tok.apply_chat_template(
                    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
                )
            else:
                prompt = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
                enc = tok(prompt + "\nassistant:", return_tensors="pt")
            prompt_len = int(enc["input_ids"].shape[1])
            kwargs: dict[str, Any] = {
                "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"],
                "max_new_tokens": max_tokens,
                "pad_token_id": tok.pad_token_id,
            }
            if temperature > 0:
                kwargs.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
            else:
                kwargs.update(do_sample=False, temperature=None, top_k=None, top_p=None)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                with torch.inference_mode():
                    out = model.generate(**kwargs)
            new = out[0][prompt_len:]
            pieces, before = [], ""
            for i in range(1, len(new) + 1):
                text = tok.decode(new[:i], skip_special_tokens=True)
                if text != before and not text.endswith("\ufffd"):
                    pieces.append(text[len(before) :])
                    before = text
            return tok.decode(new, skip_special_tokens=True), pieces, prompt_len, len(new)


class ChatServer:
    """The server's state: what it received, how it should (mis)behave."""

    def __init__(
        self,
        folder: Path | None = None,
        *,
        model_id: str = "tiny",
        api_key: str | None = None,
        reply: Callable[[list[dict[str, str]]], str] | None = None,
    ) -> None:
        if folder is None and reply is None:
            raise ValueError("A test server needs a model folder or a reply function.")
        self.model = _Model(folder) if folder is not None else None
        self.model_id = model_id
        self.api_key = api_key
        self.reply = reply
        self.mode = "ok"
        self.delay = 2.0
        self.fail_next = 0
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "the server is not running"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def chat_requests(self) -> list[Received]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def start(self) -> None:
        server = self

        class Handler(_Handler):
            state = server

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait(self) -> None:
        """The bounded delay of ``slow`` mode (cut short when the server stops)."""
        self._stopping.wait(self.delay)

    def answer(self, body: dict[str, Any]) -> tuple[str, list[str], dict[str, int]]:
        """The reply (whole and in pieces) and its usage for a chat request."""
        messages = body["messages"]
        if self.reply is not None:
            text = self.reply(messages)
            return text, [text], {"prompt_tokens": 0, "completion_tokens": len(text.split())}
        assert self.model is not None
        text, pieces, prompt_len, count = self.model.tokens(
            messages,
            int(body.get("max_tokens") or 16),
            float(body.get("temperature") or 0.0),
            int(body.get("seed") or 0),
        )
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else stops
        hits = [i for i in (text.find(s) for s in stops) if i >= 0]
        if hits:  # cut the text and the pieces at the first stop string
            cut, kept, total = min(hits), [], 0
            for p in pieces:
                if total + len(p) >= cut:
                    kept.append(p[: cut - total])
                    break
                kept.append(p)
                total += len(p)
            text, pieces = text[:cut], [p for p in kept if p]
        return text, pieces, {"prompt_tokens": prompt_len, "completion_tokens": count}


class _QuietServer(ThreadingHTTPServer):
    """Drops a client that went away (a test's timeout) without a traceback on stderr."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


class _Handler(BaseHTTPRequestHandler):
    state: ChatServer
    protocol_version = "HTTP/1.1"
    timeout = 10  # a stuck client is dropped

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _record(self, body: Any) -> None:
        with self.state._lock:
            self.state.requests.append(
                Received(self.command, self.path, {k: v for k, v in self.headers.items()}, body)
            )

    def _send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode())

    def _gate(self) -> bool:
        """Auth and the failure switches every route shares; True when handled already."""
        state = self.state
        if state.fail_next > 0:
            state.fail_next -= 1
            self._json(503, {"error": {"message": "busy"}})
            return True
        expected = f"Bearer {state.api_key}"
        if state.api_key is not None and self.headers.get("Authorization") != expected:
            self._json(401, {"error": {"message": "bad key"}})
            return True
        if state.mode == "slow":
            state.wait()
        if state.mode == "error-500":
            self._json(500, {"error": {"message": "internal"}})
            return True
        if state.mode == "garbage":
            self._send(200, b"<html>not json</html>", "text/html")
            return True
        return False

    def do_GET(self) -> None:
        self._record(None)
        if self._gate():
            return
        if self.path.rstrip("/") != "/v1/models":
            self._json(404, {"error": {"message": "no such route"}})
            return
        if self.state.mode == "models-garbage":
            self._json(200, {"data": "tiny"})
            return
        self._json(
            200, {"object": "list", "data": [{"id": self.state.model_id, "object": "model"}]}
        )

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self._record(body)
        if self._gate():
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": "no such route"}})
            return
        if not isinstance(body, dict) or body.get("model") != self.state.model_id:
            self._json(404, {"error": {"message": "no such model"}})
            return
        mode = self.state.mode
        if mode == "no-choices":
            self._json(200, {"id": "x", "object": "chat.completion", "choices": []})
            return
        if mode == "wrong-types":
            self._json(200, {"choices": [{"index": 0, "message": {"content": 42}}]})
            return
        text, pieces, usage = self.state.answer(body)
        finish = (
            "length" if usage["completion_tokens"] >= int(body.get("max_tokens") or 16) else "stop"
        )
        created = int(time.time())
        if not body.get("stream"):
            self._json(
                200,
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": created,
                    "model": self.state.model_id,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": finish,
                        }
                    ],
                    "usage": {**usage, "total_tokens": sum(usage.values())},
                },
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def event(data: str) -> None:
            self.wfile.write(f"data: {data}\n\n".encode())
            self.wfile.flush()

        def chunk(delta: dict[str, Any], reason: str | None = None, **extra: Any) -> str:
            return json.dumps(
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": self.state.model_id,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
                    **extra,
                }
            )

        self.wfile.write(b": keep-alive\n\n")
        event(chunk({"role": "assistant"}))
        for i, piece in enumerate(pieces):
            if mode == "bad-stream" and i == 1:
                event("{not json")
                return
            event(chunk({"content": piece}))
        event(chunk({}, finish, usage={**usage, "total_tokens": sum(usage.values())}))
        if mode != "truncated-stream":
            event("[DONE]")


@contextmanager
def serve(
    folder: Path | None = None,
    *,
    model_id: str = "tiny",
    api_key: str | None = None,
    reply: Callable[[list[dict[str, str]]], str] | None = None,
) -> Iterator[ChatServer]:
    """A running :class:`ChatServer` for the ``with`` block."""
    server = ChatServer(folder, model_id=model_id, api_key=api_key, reply=reply)
    server.start()
    try:
        yield server
    finally:
        server.stop()
