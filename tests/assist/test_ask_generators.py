"""The assistant answering with registered generators: a real tiny local model and a loopback
OpenAI-compatible endpoint, each registered by an admin and named by the asker.

The endpoint server records every request it receives, so a test asserts on what actually went
over the wire: no canary of a document above the endpoint's accreditation, and nothing at all
for a question marked above it. ``server.reply`` scripts the endpoint's answer where a test
needs one (a supported sentence, an unsupported one); left ``None``, the tiny model answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from garrison.api import MARKING_HEADER, create_app
from garrison.assist import (
    EXTRACTIVE,
    NEW_CONVERSATION,
    REFUSAL,
    SYSTEM_PROMPT,
    WITHHELD_NOTE,
    ask,
)
from garrison.assist._registered import (
    ENDPOINT_CONTEXT_TOKENS,
    RegisteredGenerator,
    registered_generator,
)
from garrison.assist._text import estimate_tokens
from garrison.cli.main import main
from garrison.core.errors import InvalidInput, NotFound, NotPermitted, ServiceUnavailable
from garrison.models import register_endpoint, register_local
from garrison.security.markings import UNCLASSIFIED, join, parse_marking
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from tests.assist.conftest import CANARIES, INJECTION, MEMO_S, READS
from tests.models.openai_server import ChatServer, serve
from tests.models.tiny_lm import tiny_causal_lm

M = parse_marking
HARBOR = "harbor ferry north pier cargo manifest crates"
#: Words of documents above UNCLASSIFIED: none may reach an endpoint accredited UNCLASSIFIED.
ABOVE_U = sorted({*CANARIES} - READS["U"] | {MEMO_S, INJECTION})


@dataclass(frozen=True)
class Registered:
    local: str  # the tiny model, weights marked CONFIDENTIAL, accredited at system high
    open_u: str  # an endpoint accredited UNCLASSIFIED
    open_ts: str  # an endpoint accredited TOP SECRET, answered by the tiny model
    secret_weights: str  # an endpoint whose weights are marked SECRET


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    lm = tiny_causal_lm(tmp_path_factory.mktemp("lm") / "tiny")
    with serve(lm) as running:
        running.folder = lm  # type: ignore[attr-defined]
        yield running


@pytest.fixture(scope="module")
def gens(ws: Workspace, server: ChatServer) -> Registered:
    ws.session().add_user("ada", SubjectSpec(clearance="TS", roles=("admin",)))
    admin = ws.session("ada")
    folder: Path = server.folder  # type: ignore[attr-defined]
    local = register_local(admin, "tiny", path=folder, marking=M("CONFIDENTIAL"))
    url = server.base_url

    def endpoint(name: str, accredited: str, marking: str = "UNCLASSIFIED", **kw: int) -> str:
        version = register_endpoint(
            admin, name, base_url=url, model="tiny", accredited=M(accredited), marking=M(marking),
            **kw,
        )  # fmt: skip
        return version.name

    return Registered(
        local=local.name,
        open_u=endpoint("ep-u", "UNCLASSIFIED"),
        # The server's tiny model takes 512 positions: configured so.
        open_ts=endpoint("ep-ts", "TOP SECRET", context_tokens=512),
        secret_weights=endpoint("ep-secret", "SECRET", "SECRET"),
    )


@pytest.fixture(autouse=True)
def _fresh_server(server: ChatServer) -> Iterator[None]:
    server.reply = None
    server.requests.clear()
    yield
    server.reply = None


def _sent(server: ChatServer) -> str:
    """Everything the endpoint received in chat requests."""
    return "\n".join(
        str(m.get("content", "")) for r in server.chat_requests for m in r.body["messages"]
    )


def _source_sentence(messages: Sequence[dict[str, str]]) -> str:
    """The first sentence of the first source in the prompt."""
    body = messages[-1]["content"].split(">\n", 1)[1].split("\n</source>", 1)[0]
    return body.split(". ")[0].rstrip(".") + "."


def _reply(extra: str = "") -> Callable[[list[dict[str, str]]], str]:
    def reply(messages: list[dict[str, str]]) -> str:
        return f"{_source_sentence(messages)} {extra}".strip()

    return reply


# -- the adapter -------------------------------------------------------------------------------


def test_the_adapter_reports_what_the_assistant_needs(ws: Workspace, gens: Registered) -> None:
    local = registered_generator(ws.session("sam"), gens.local)
    assert isinstance(local, RegisteredGenerator) and local.local
    assert local.name.startswith("tiny@") and local.marking == M("CONFIDENTIAL")
    assert local.accredited == ws.session().workspace.system_high  # runs inside Garrison
    assert local.context_tokens == 512  # max_position_embeddings of its config
    assert local.max_new_tokens == 128  # a quarter of the context at most
    words = "harbor ferry pier " * 20
    assert local.count_tokens(words) == 60  # its word-level tokenizer, not an estimate
    endpoint = registered_generator(ws.session("sam"), gens.open_u)
    assert not endpoint.local and endpoint.accredited == UNCLASSIFIED
    assert endpoint.context_tokens == ENDPOINT_CONTEXT_TOKENS == 4096
    assert endpoint.max_new_tokens == 256
    assert endpoint.count_tokens(words) == estimate_tokens(words) >= len(words) // 3
    same = registered_generator(ws.session("sam"), endpoint.name)  # NAME@VERSION
    assert same.name == endpoint.name


def test_an_endpoint_context_size_is_configured_at_registration(
    ws: Workspace, server: ChatServer, gens: Registered
) -> None:
    admin = ws.session("ada")
    version = register_endpoint(
        admin, "ep-wide", base_url=server.base_url, model="tiny", accredited=UNCLASSIFIED,
        context_tokens=8192, probe=False,
    )  # fmt: skip
    assert version.manifest["parameters"]["context_tokens"] == 8192
    assert registered_generator(ws.session("uma"), "ep-wide").context_tokens == 8192
    for bad in (0, 100, True):
        with pytest.raises(InvalidInput):
            register_endpoint(
                admin, "ep-bad", base_url=server.base_url, model="tiny",
                accredited=UNCLASSIFIED, context_tokens=bad, probe=False,
            )  # fmt: skip


# -- end to end --------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["local", "open_ts"])
def test_answers_are_marked_with_the_whole_context_and_the_weights(
    ws: Workspace, server: ChatServer, gens: Registered, which: str
) -> None:
    name = getattr(gens, which)
    weights = M("CONFIDENTIAL") if which == "local" else UNCLASSIFIED
    answer = ask(ws.session("tess"), HARBOR, generator=name)
    assert answer.generator.startswith(f"{name}@")
    assert answer.context and WITHHELD_NOTE not in answer.notes  # accredited for everything
    context = join(*(M(c.marking) for c in answer.context))
    assert M(answer.context_marking) == context
    assert M(answer.marking) == join(context, weights, UNCLASSIFIED)
    for sentence in answer.sentences:
        if not answer.refused:
            assert sentence.marking == answer.marking  # the model saw the whole context
    if which == "open_ts":
        assert len(server.chat_requests) == 1  # the tiny model answered over HTTP
        body = server.chat_requests[0].body
        assert body["max_tokens"] == 128  # a quarter of its configured context
        assert "zebrafox" in _sent(server) and SYSTEM_PROMPT in _sent(server)
    # The weights' marking shows when the context is below it.
    small = ask(ws.session("sam"), "greenhouse tomatoes water morning", k=1, generator=name)
    assert small.context_marking == "UNCLASSIFIED"
    assert M(small.marking) == weights


def test_an_unclassified_endpoint_never_receives_a_chunk_above_it(
    ws: Workspace, server: ChatServer, gens: Registered
) -> None:
    server.reply = _reply()
    answer = ask(ws.session("tess"), HARBOR, generator=gens.open_u)
    assert len(server.chat_requests) == 1
    sent = _sent(server)
    assert "zebrafox" in sent  # the readable UNCLASSIFIED source went
    for word in ABOVE_U:
        assert word not in sent, word
    assert all(c.marking == "UNCLASSIFIED" for c in answer.context)
    assert answer.marking == "UNCLASSIFIED"
    # The answer says more exists, and not what.
    assert WITHHELD_NOTE in answer.notes and answer.text.endswith(WITHHELD_NOTE)
    shown = json.dumps(answer.to_dict())
    for word in ABOVE_U:
        assert word not in shown
    assert not answer.refused and answer.citations
    assert not any(s.unsupported for s in answer.sentences)


@pytest.mark.parametrize("form", ["question_marking", "portion_mark", "conversation"])
def test_a_question_above_the_accreditation_is_refused_and_nothing_is_sent(
    ws: Workspace, server: ChatServer, gens: Registered, form: str
) -> None:
    server.reply = _reply()
    session = ws.session("sam")
    kwargs: dict[str, str] = {}
    question = HARBOR
    if form == "question_marking":
        kwargs["question_marking"] = "CONFIDENTIAL"
    elif form == "portion_mark":
        question = f"(C) {HARBOR}"
    else:  # a conversation whose history is SECRET
        first = ask(session, "walruspeak crates", conversation=NEW_CONVERSATION)
        assert first.marking == "SECRET" and first.conversation_id
        kwargs["conversation"] = first.conversation_id
    with pytest.raises(NotPermitted) as raised:
        ask(session, question, generator=gens.open_u, **kwargs)
    assert raised.value.exit_code == 4 and "not sent" in str(raised.value)
    assert "walruspeak" not in str(raised.value)
    assert server.chat_requests == []


def test_generated_sentences_without_support_are_flagged(
    ws: Workspace, server: ChatServer, gens: Registered
) -> None:
    server.reply = _reply("The moon is made of green cheese and violins.")
    answer = ask(ws.session("sam"), HARBOR, generator=gens.open_u)
    assert [s.unsupported for s in answer.sentences] == [False, True]
    made_up = answer.sentences[1]
    assert made_up.citations == () and "[unsupported]" in made_up.marked()
    assert answer.sentences[0].citations == (1,) and len(answer.citations) == 1
    # Only an unsupported answer: every sentence flagged, still marked with the context.
    server.reply = lambda messages: "Penguins juggle lanterns. Volcanoes hum lullabies."
    answer = ask(ws.session("sam"), HARBOR, generator=gens.open_u)
    assert answer.sentences and all(s.unsupported for s in answer.sentences)
    assert not answer.citations and answer.marking == "UNCLASSIFIED"


@pytest.mark.parametrize(("which", "user"), [("open_u", "uma"), ("local", "cal")])
def test_the_refusal_is_the_same_with_and_without_unreadable_matches(
    ws: Workspace, server: ChatServer, gens: Registered, which: str, user: str
) -> None:
    server.reply = _reply()
    name = getattr(gens, which)
    unreadable = ask(ws.session(user), "walruspeak", generator=name)  # a SECRET canary
    nothing = ask(ws.session(user), "xylophonequartz", generator=name)  # in no document
    for answer in (unreadable, nothing):
        assert answer.refused and answer.text == f"(U) {REFUSAL}"
        assert answer.context == [] and answer.citations == [] and answer.notes == []
    a, b = unreadable.to_dict(), nothing.to_dict()
    for data in (a, b):
        data.pop("question"), data.pop("timings")
    assert a == b
    assert server.chat_requests == []  # nothing reached a generator


def test_a_generator_the_asker_may_not_read_looks_missing(ws: Workspace, gens: Registered) -> None:
    with pytest.raises(NotFound) as hidden:
        ask(ws.session("uma"), HARBOR, generator=gens.local)  # weights CONFIDENTIAL
    with pytest.raises(NotFound) as missing:
        ask(ws.session("uma"), HARBOR, generator="nosuch")
    assert hidden.value.exit_code == missing.value.exit_code == 3
    assert str(hidden.value).replace(gens.local, "X") == str(missing.value).replace("nosuch", "X")
    with pytest.raises(NotFound):
        ask(ws.session("cal"), HARBOR, generator=gens.secret_weights)
    assert ask(ws.session("uma"), "tomatoes", generator=EXTRACTIVE).generator == EXTRACTIVE


def test_an_endpoint_that_fails_fails_the_question_in_one_sentence(
    ws: Workspace, server: ChatServer, gens: Registered
) -> None:
    server.mode = "error-500"
    try:
        with pytest.raises(ServiceUnavailable) as raised:
            ask(ws.session("sam"), HARBOR, generator=gens.open_u)
    finally:
        server.mode = "ok"
    message = str(raised.value)
    assert raised.value.exit_code == 5 and "\n" not in message and "internal" not in message


# -- interfaces --------------------------------------------------------------------------------


def test_cli_ask_with_a_generator(
    ws: Workspace, server: ChatServer, gens: Registered, capsys: pytest.CaptureFixture[str]
) -> None:
    server.reply = _reply()
    code = main(["-w", str(ws.root), "ask", HARBOR, "--as", "sam", "--generator", gens.open_u])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == lines[-1] == "UNCLASSIFIED" and WITHHELD_NOTE in lines
    assert any(line.startswith("[1] (U)") for line in lines)
    code = main(
        ["-w", str(ws.root), "ask", HARBOR, "--as", "sam", "--generator", gens.open_u, "--json"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["generator"].startswith("ep-u@")
    requests = len(server.chat_requests)
    code = main(
        ["-w", str(ws.root), "ask", f"(C) {HARBOR}", "--as", "sam", "--generator", gens.open_u]
    )
    _, err = capsys.readouterr()
    assert code == 4 and len(server.chat_requests) == requests
    code = main(["-w", str(ws.root), "ask", HARBOR, "--as", "uma", "--generator", gens.local])
    _, err = capsys.readouterr()
    assert code == 3 and "Traceback" not in err
    code = main(
        ["-w", str(ws.root), "model", "add-endpoint", "ep-cli", "--base-url", server.base_url,
         "--model", "tiny", "--accredited", "UNCLASSIFIED", "--context-tokens", "2048",
         "--no-probe", "--as", "ada", "--json"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["manifest"]["parameters"]["context_tokens"] == 2048
    assert registered_generator(ws.session("uma"), "ep-cli").context_tokens == 2048


def test_api_ask_with_a_generator(ws: Workspace, server: ChatServer, gens: Registered) -> None:
    server.reply = _reply()
    system = ws.session()
    tokens = {u: create_token(system, u, 1)[1] for u in ("sam", "uma")}

    def auth(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[user]}"}

    with TestClient(create_app(ws.root), raise_server_exceptions=False) as client:
        response = client.post(
            "/v1/ask", json={"question": HARBOR, "generator": gens.open_u}, headers=auth("sam")
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["generator"].startswith("ep-u@") and WITHHELD_NOTE in body["notes"]
        assert response.headers[MARKING_HEADER] == body["marking"] == "UNCLASSIFIED"
        requests = len(server.chat_requests)
        too_high = client.post(
            "/v1/ask",
            json={"question": HARBOR, "generator": gens.open_u, "question_marking": "C"},
            headers=auth("sam"),
        )
        assert too_high.status_code == 403 and len(server.chat_requests) == requests
        with client.stream(
            "POST",
            "/v1/ask",
            json={"question": HARBOR, "generator": gens.open_u},
            headers={**auth("sam"), "Accept": "text/event-stream"},
        ) as streamed:
            assert streamed.status_code == 200
            assert streamed.headers[MARKING_HEADER] == "UNCLASSIFIED"
            events = streamed.read().decode()
        assert events.startswith("event: marking\n") and WITHHELD_NOTE in events
        hidden = client.post(
            "/v1/ask", json={"question": HARBOR, "generator": gens.local}, headers=auth("uma")
        )
        assert hidden.status_code == 404
    sent = _sent(server)
    for word in ABOVE_U:
        assert word not in sent
