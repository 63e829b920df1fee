"""Generators: local models and OpenAI-compatible endpoints, registered by admins, verified at
load, never sent content above their accreditation, their outputs marked with the join.

Every test runs a real model: a tiny Llama built from a config (tests/models/tiny_lm.py),
loaded with transformers, and served over real HTTP by a loopback server
(tests/models/openai_server.py).
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.core.errors import (
    CheckFailed,
    InvalidInput,
    KeyFileError,
    NotFound,
    NotPermitted,
    ServiceUnavailable,
)
from garrison.models import (
    Models,
    _generators,
    open_generator,
    register_endpoint,
    register_local,
)
from garrison.models._files import CACHE_DIR, store_files
from garrison.models._gen_local import plain_prompt
from garrison.models._registry import weight_files
from garrison.security.markings import join, parse_marking
from garrison.store.session import Session, SubjectSpec
from garrison.store.workspace import Workspace
from tests.models.openai_server import ChatServer, serve
from tests.models.tiny_lm import tiny_causal_lm

M = parse_marking
HIGH = "SECRET//NOFORN"
ASK = [{"role": "user", "content": "convoy fuel report"}]


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_causal_lm(tmp_path_factory.mktemp("lm") / "tiny")


@pytest.fixture(autouse=True)
def _fresh_models() -> Iterator[None]:
    # Loaded local models are cached per process by version id; each test loads its own.
    _generators._local.clear()
    yield
    _generators._local.clear()


def _users(ws: Workspace) -> None:
    system = ws.session()
    system.add_user("ada", SubjectSpec(clearance="S", roles=("admin",)))
    system.add_user("uma", SubjectSpec(clearance="U", roles=("admin",)))
    system.add_user("ursula", SubjectSpec(clearance="U"))
    system.add_user("sam", SubjectSpec(clearance="S"))
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high=HIGH)
    _users(workspace)
    yield workspace
    workspace.close()


@pytest.fixture
def server(lm: Path) -> Iterator[ChatServer]:
    with serve(lm) as running:
        yield running


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _generators_of(session: Session) -> list[str]:
    return [v.name for v in Models(session).list(kind="generator")]


def _endpoint(ws: Workspace, server: ChatServer, name: str = "ep", **kw: Any) -> str:
    kw.setdefault("accredited", M(HIGH))
    version = register_endpoint(
        ws.session("ada"), name, base_url=server.base_url, model="tiny", **kw
    )
    return version.ref


def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith(".")
    assert "<html>" not in message and "Traceback" not in message


# -- local models ------------------------------------------------------------------------------


def test_a_local_model_registers_loads_and_generates_deterministically(
    ws: Workspace, lm: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(lm, copy)
    version = register_local(ws.session("ada"), "tiny", path=copy)
    assert version.kind == "generator" and version.marking.banner() == "UNCLASSIFIED"
    listed = {f["path"]: f["sha256"] for f in version.manifest["files"]}
    assert listed == weight_files(lm)  # every file hashed at registration
    assert version.manifest["parameters"] == {"runtime": "transformers", "model_type": "llama"}
    shutil.rmtree(copy)  # stored in the blob store: the folder may go

    generator = open_generator(ws.session("ursula"), "tiny")
    assert generator.accredited == ws.system_high  # it runs inside Garrison
    first = generator.generate(ASK, content_marking=M("U"), max_tokens=12)
    again = open_generator(ws.session("sam"), "tiny").generate(
        ASK, content_marking=M("U"), max_tokens=12
    )
    assert first.text and first.text == again.text
    assert first.model_ref == version.ref
    assert first.usage["completion_tokens"] == 12 and first.finish_reason == "length"
    assert first.marking.banner() == "UNCLASSIFIED"


def test_sampling_is_seeded_and_greedy_ignores_the_seed(ws: Workspace, lm: Path) -> None:
    register_local(ws.session("ada"), "tiny", path=lm)
    gen = open_generator(ws.session("sam"), "tiny")

    def text(**kw: Any) -> str:
        return gen.generate(ASK, content_marking=M("U"), max_tokens=10, **kw).text

    assert text(temperature=1.0, seed=7) == text(temperature=1.0, seed=7)
    assert len({text(temperature=1.5, seed=s) for s in range(4)}) > 1
    assert text(seed=1) == text(seed=2)


def test_without_a_chat_template_the_prompt_is_role_lines(ws: Workspace, tmp_path: Path) -> None:
    plain = tiny_causal_lm(tmp_path / "plain", chat_template=False)
    register_local(ws.session("ada"), "plain", path=plain)
    out = open_generator(ws.session(), "plain").generate(ASK, content_marking=M("U"), max_tokens=4)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(plain), local_files_only=True)
    assert not tok.chat_template
    assert out.usage["prompt_tokens"] == len(tok(plain_prompt(ASK))["input_ids"])


def test_stop_strings_cut_the_text_whole_and_streamed(ws: Workspace, lm: Path) -> None:
    register_local(ws.session("ada"), "tiny", path=lm)
    gen = open_generator(ws.session(), "tiny")
    full = gen.generate(ASK, content_marking=M("U"), max_tokens=12).text
    words = full.split()
    stop = " " + words[3]
    cut = full[: full.index(stop)]
    stopped = gen.generate(ASK, content_marking=M("U"), max_tokens=12, stop=[stop])
    assert stopped.text == cut and stopped.finish_reason == "stop"
    stream = gen.stream(ASK, content_marking=M("U"), max_tokens=12, stop=[stop])
    assert "".join(stream) == cut and stream.result().finish_reason == "stop"


def test_streaming_gives_the_same_text_and_its_marking_first(ws: Workspace, lm: Path) -> None:
    register_local(ws.session("ada"), "tiny", path=lm, marking=M("CONFIDENTIAL"))
    gen = open_generator(ws.session("sam"), "tiny")
    whole = gen.generate(ASK, content_marking=M("U"), max_tokens=10)
    stream = gen.stream(ASK, content_marking=M("U"), max_tokens=10)
    assert stream.marking.banner() == "CONFIDENTIAL"  # known before any text
    pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces) == whole.text
    result = stream.result()
    assert result.text == whole.text and result.usage == whole.usage


def test_closing_a_stream_early_stops_the_model(ws: Workspace, lm: Path) -> None:
    register_local(ws.session("ada"), "tiny", path=lm)
    gen = open_generator(ws.session(), "tiny")
    stream = gen.stream(ASK, content_marking=M("U"), max_tokens=200)
    first = next(iter(stream))
    stream.close()
    assert first and not stream.done
    # the model is free again at once
    assert gen.generate(ASK, content_marking=M("U"), max_tokens=2).text


def test_a_changed_weight_file_is_refused_at_load(ws: Workspace, lm: Path) -> None:
    version = register_local(ws.session("ada"), "tiny", path=lm)
    models = Models(ws.session())
    folder = models.folder(version)
    assert folder == ws.root / CACHE_DIR / version.id
    # A changed cached copy alone is re-made from the blob store, and loads.
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)
    assert open_generator(ws.session(), "tiny").generate(ASK, content_marking=M("U"), max_tokens=2)
    _generators._local.clear()
    # Changed in the cache AND in the blob store: refused, nothing loaded.
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)
    digest = next(
        f["sha256"] for f in version.manifest["files"] if f["path"] == "model.safetensors"
    )
    other = ws.blobs.put(b"not the weights")
    shutil.copyfile(ws.blobs.path(other), ws.blobs.path(digest))
    with pytest.raises(CheckFailed):
        open_generator(ws.session(), "tiny")
    assert version.id not in _generators._local


@pytest.mark.parametrize(
    ("extra", "content", "match"),
    [
        ("pytorch_model.bin", b"\x80\x02pickle", "pickle"),
        ("weights/part.pt", b"\x80\x02pickle", "pickle"),
        ("optimizer.pkl", b"\x80\x02pickle", "pickle"),
        ("modeling_evil.py", b"import os\n", "own code"),
    ],
)
def test_pickle_weights_and_model_code_are_refused_at_registration(
    ws: Workspace, lm: Path, tmp_path: Path, extra: str, content: bytes, match: str
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(lm, bad)
    (bad / extra).parent.mkdir(parents=True, exist_ok=True)
    (bad / extra).write_bytes(content)
    with pytest.raises(InvalidInput, match=match) as err:
        register_local(ws.session("ada"), "bad", path=bad)
    _one_sentence(str(err.value))
    assert _generators_of(ws.session()) == []


@pytest.mark.parametrize("case", ["no-safetensors", "auto-map", "not-causal", "no-config"])
def test_a_directory_that_is_no_usable_causal_lm_is_refused(
    ws: Workspace, lm: Path, tmp_path: Path, case: str
) -> None:
    import json

    bad = tmp_path / "bad"
    shutil.copytree(lm, bad)
    config = json.loads((bad / "config.json").read_text())
    if case == "no-safetensors":
        (bad / "model.safetensors").unlink()
    elif case == "auto-map":
        config["auto_map"] = {"AutoModelForCausalLM": "modeling.Evil"}
    elif case == "not-causal":
        config["model_type"] = "resnet"
    else:
        (bad / "config.json").unlink()
    if (bad / "config.json").exists():
        (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidInput) as err:
        register_local(ws.session("ada"), "bad", path=bad)
    _one_sentence(str(err.value))
    assert _generators_of(ws.session()) == []


def test_pickle_weights_are_refused_at_load_too(ws: Workspace, lm: Path, tmp_path: Path) -> None:
    # A version listing a pickle file (registered some other way) is never loaded.
    bad = tmp_path / "bad"
    shutil.copytree(lm, bad)
    (bad / "pytorch_model.bin").write_bytes(b"\x80\x02pickle")
    session = ws.session()
    files = weight_files(bad)
    store_files(session, bad, files)
    Models(session)._register(
        kind="generator",
        name="smuggled",
        files=files,
        marking=None,
        base=None,
        datasets=(),
        parameters={"runtime": "transformers", "model_type": "llama"},
        seeds=None,
        card=None,
    )
    with pytest.raises(CheckFailed, match="pickle"):
        open_generator(session, "smuggled")


# -- endpoints ---------------------------------------------------------------------------------


def test_an_endpoint_generates_the_same_text_as_the_local_model(
    ws: Workspace, lm: Path, server: ChatServer
) -> None:
    ref = _endpoint(ws, server)
    version = Models(ws.session()).get(ref)
    assert version.manifest["files"] == []
    assert version.manifest["parameters"] == {
        "runtime": "openai",
        "endpoint": {"base_url": server.base_url, "model": "tiny"},
        "accredited": HIGH,
        "api_key_file": None,
    }
    register_local(ws.session("ada"), "tiny", path=lm)
    remote = open_generator(ws.session("sam"), "ep").generate(
        ASK, content_marking=M("U"), max_tokens=12
    )
    local = open_generator(ws.session("sam"), "tiny").generate(
        ASK, content_marking=M("U"), max_tokens=12
    )
    assert remote.text and remote.text == local.text
    assert remote.usage == local.usage and remote.model_ref == ref
    sent = server.chat_requests[-1].body
    assert sent["messages"] == ASK and sent["max_tokens"] == 12 and sent["temperature"] == 0.0
    stream = open_generator(ws.session("sam"), "ep").stream(
        ASK, content_marking=M("U"), max_tokens=12
    )
    pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces) == local.text
    assert stream.result().usage == local.usage


def test_registration_probes_the_endpoint(ws: Workspace, server: ChatServer) -> None:
    _endpoint(ws, server)
    assert [(r.method, r.path) for r in server.requests] == [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
    ]
    assert server.requests[1].body["max_tokens"] == 1
    with pytest.raises(ServiceUnavailable, match="does not serve the model 'other'") as err:
        register_endpoint(
            ws.session("ada"), "x", base_url=server.base_url, model="other", accredited=M("U")
        )
    _one_sentence(str(err.value))


def test_an_unreachable_endpoint_is_refused_at_registration_and_at_use(ws: Workspace) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    with pytest.raises(ServiceUnavailable) as err:
        register_endpoint(ws.session("ada"), "gone", base_url=url, model="m", accredited=M("U"))
    assert err.value.reason == "unreachable" and err.value.exit_code == 5
    _one_sentence(str(err.value))
    assert _generators_of(ws.session()) == []
    register_endpoint(
        ws.session("ada"), "gone", base_url=url, model="m", accredited=M("U"), probe=False
    )
    gen = open_generator(ws.session(), "gone")
    with pytest.raises(ServiceUnavailable) as err:
        gen.generate(ASK, content_marking=M("U"))
    assert err.value.reason == "unreachable"
    _one_sentence(str(err.value))
    with pytest.raises(ServiceUnavailable):
        list(gen.stream(ASK, content_marking=M("U")))


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("garbage", "bad-answer"),
        ("no-choices", "bad-answer"),
        ("wrong-types", "bad-answer"),
        ("models-garbage", "bad-answer"),
        ("error-500", "http-status"),
    ],
)
def test_garbage_answers_are_refused_at_registration(
    ws: Workspace, server: ChatServer, mode: str, reason: str
) -> None:
    server.mode = mode
    with pytest.raises(ServiceUnavailable) as err:
        _endpoint(ws, server)
    assert err.value.reason == reason
    _one_sentence(str(err.value))
    assert _generators_of(ws.session()) == []


@pytest.mark.parametrize(
    ("mode", "reason", "streamed"),
    [
        ("garbage", "bad-answer", False),
        ("no-choices", "bad-answer", False),
        ("wrong-types", "bad-answer", False),
        ("error-500", "http-status", False),
        ("garbage", "bad-answer", True),
        ("error-500", "http-status", True),
        ("bad-stream", "bad-answer", True),
        ("truncated-stream", "bad-answer", True),
    ],
)
def test_garbage_answers_are_refused_at_use(
    ws: Workspace, server: ChatServer, mode: str, reason: str, streamed: bool
) -> None:
    _endpoint(ws, server)
    gen = open_generator(ws.session(), "ep")
    server.mode = mode

    def call() -> object:
        if streamed:
            return gen.stream(ASK, content_marking=M("U"), max_tokens=6).result()
        return gen.generate(ASK, content_marking=M("U"), max_tokens=6)

    with pytest.raises(ServiceUnavailable) as err:
        call()
    assert err.value.reason == reason and err.value.service == server.base_url
    _one_sentence(str(err.value))


def test_a_slow_endpoint_times_out(ws: Workspace, server: ChatServer) -> None:
    _endpoint(ws, server)
    server.mode, server.delay = "slow", 3.0
    gen = open_generator(ws.session(), "ep", timeout=0.5)
    with pytest.raises(ServiceUnavailable, match=r"within 0\.5 s") as err:
        gen.generate(ASK, content_marking=M("U"), max_tokens=2)
    assert err.value.reason == "timeout"
    assert len(server.chat_requests) == 2  # the probe and one try: a timeout is not retried


def test_a_busy_gateway_is_retried_a_bounded_number_of_times(
    ws: Workspace, server: ChatServer
) -> None:
    _endpoint(ws, server)
    gen = open_generator(ws.session(), "ep")
    server.fail_next = 2
    assert gen.generate(ASK, content_marking=M("U"), max_tokens=2).text
    server.fail_next = 10
    before = len(server.requests)
    with pytest.raises(ServiceUnavailable, match="HTTP 503"):
        gen.generate(ASK, content_marking=M("U"), max_tokens=2)
    assert len(server.requests) - before == 3


@pytest.mark.parametrize(
    "url",
    [
        "ftp://10.9.8.7/v1",
        "http:///v1",
        "http://user:secret@10.9.8.7:8000/v1",
        "http://10.9.8.7:8000/v1?key=secret",
        "not a url",
    ],
)
def test_malformed_endpoint_urls_are_refused(ws: Workspace, url: str) -> None:
    with pytest.raises(InvalidInput) as err:
        register_endpoint(ws.session("ada"), "x", base_url=url, model="m", accredited=M("U"))
    assert "secret" not in str(err.value) and "10.9.8.7" not in str(err.value)
    _one_sentence(str(err.value))


# -- who may register, and at which markings -----------------------------------------------------


@pytest.mark.parametrize("who", ["stew", "sam", "ursula"])
def test_only_an_admin_may_register_a_generator(
    ws: Workspace, lm: Path, server: ChatServer, who: str
) -> None:
    session = ws.session(who)
    with pytest.raises(NotPermitted):
        register_local(session, "tiny", path=lm)
    with pytest.raises(NotPermitted):
        register_endpoint(session, "ep", base_url=server.base_url, model="tiny", accredited=M("U"))
    assert server.requests == []  # not even probed
    denied = [e for e in ws.audit.tail() if e.action == "model.register" and e.decision == "deny"]
    assert [(e.actor, e.object_id) for e in denied] == [(who, "tiny"), (who, "ep")]
    assert _generators_of(ws.session()) == []


@pytest.mark.parametrize("accredited", ["TOP SECRET", "SECRET//SI//NOFORN"])
def test_an_accreditation_above_system_high_is_refused(
    ws: Workspace, server: ChatServer, accredited: str
) -> None:
    with pytest.raises(InvalidInput, match="above this workspace's system high"):
        _endpoint(ws, server, accredited=M(accredited))
    assert server.requests == [] and _generators_of(ws.session()) == []


def test_weights_marked_above_the_accreditation_are_refused(
    ws: Workspace, server: ChatServer
) -> None:
    with pytest.raises(InvalidInput, match="accredited for UNCLASSIFIED only"):
        _endpoint(ws, server, accredited=M("U"), marking=M("CONFIDENTIAL"))
    assert server.requests == []


def test_the_registrant_must_read_the_weights_marking_not_the_accreditation(
    ws: Workspace, lm: Path, server: ChatServer
) -> None:
    # uma (an admin cleared for UNCLASSIFIED) may declare an endpoint accredited at SECRET...
    version = register_endpoint(
        ws.session("uma"), "ep", base_url=server.base_url, model="tiny", accredited=M(HIGH)
    )
    assert version.marking.banner() == "UNCLASSIFIED"
    # ...but not register a model marked above what she may read.
    with pytest.raises(NotPermitted):
        register_local(ws.session("uma"), "hush", path=lm, marking=M("SECRET"))
    with pytest.raises(InvalidInput, match="above this workspace's system high"):
        register_local(ws.session("ada"), "hush", path=lm, marking=M("TOP SECRET"))
    assert _generators_of(ws.session()) == ["ep"]


# -- no write-down, the join, no read-up ---------------------------------------------------------


@pytest.mark.parametrize(
    ("accredited", "content"),
    [
        ("UNCLASSIFIED", "SECRET"),
        ("UNCLASSIFIED", "UNCLASSIFIED//FOUO"),
        ("CONFIDENTIAL", "SECRET//NOFORN"),
        ("SECRET//NOFORN", "SECRET//SI//NOFORN"),
    ],
)
def test_content_above_the_accreditation_is_never_sent(
    ws: Workspace, server: ChatServer, accredited: str, content: str
) -> None:
    _endpoint(ws, server, accredited=M(accredited))
    before = len(server.requests)
    gen = open_generator(ws.session(), "ep")
    with pytest.raises(NotPermitted, match="never sent") as err:
        gen.generate(ASK, content_marking=M(content))
    _one_sentence(str(err.value))
    with pytest.raises(NotPermitted):
        gen.stream(ASK, content_marking=M(content))  # refused before a stream exists
    assert len(server.requests) == before
    denied = [e for e in ws.audit.tail() if e.action == "model.use" and e.decision == "deny"]
    assert len(denied) == 2
    assert denied[0].reason == "content above the generator's accreditation"
    assert denied[0].details["content_marking"] == M(content).banner()
    assert denied[0].details["accredited"] == M(accredited).banner()


def test_content_above_system_high_never_reaches_a_local_model(ws: Workspace, lm: Path) -> None:
    register_local(ws.session("ada"), "tiny", path=lm)
    gen = open_generator(ws.session(), "tiny")

    class Spy:
        calls = 0

        def complete(self, *a: Any) -> Any:
            Spy.calls += 1
            raise AssertionError("sent")

        stream = complete

    gen.backend = Spy()
    for content in ("TOP SECRET", "SECRET//SI//NOFORN"):
        with pytest.raises(NotPermitted):
            gen.generate(ASK, content_marking=M(content))
    assert Spy.calls == 0


@pytest.mark.parametrize(
    ("weights", "content"),
    [
        ("UNCLASSIFIED", "SECRET"),
        ("CONFIDENTIAL", "UNCLASSIFIED"),
        ("CONFIDENTIAL", "UNCLASSIFIED//FOUO"),
        ("SECRET", "CONFIDENTIAL//NOFORN"),
    ],
)
def test_the_output_is_marked_with_the_join_of_content_and_model(
    ws: Workspace, server: ChatServer, weights: str, content: str
) -> None:
    _endpoint(ws, server, marking=M(weights))
    gen = open_generator(ws.session("ada"), "ep")
    out = gen.generate(ASK, content_marking=M(content), max_tokens=3)
    assert out.marking == join(M(content), M(weights))
    assert gen.stream(ASK, content_marking=M(content)).marking == out.marking
    assert out.to_dict()["marking"] == out.marking.banner()
    allowed = [e for e in ws.audit.tail() if e.action == "model.use" and e.details.get("call")]
    assert allowed[-1].details["output_marking"] == out.marking.banner()


def test_an_output_the_subject_could_not_read_is_refused_before_sending(
    ws: Workspace, server: ChatServer
) -> None:
    _endpoint(ws, server)
    before = len(server.requests)
    gen = open_generator(ws.session("ursula"), "ep")
    with pytest.raises(NotPermitted, match="may not read a generation marked SECRET"):
        gen.generate(ASK, content_marking=M("SECRET"))
    assert len(server.requests) == before


def test_an_unreadable_generator_looks_missing(ws: Workspace, lm: Path, server: ChatServer) -> None:
    _endpoint(ws, server, marking=M("SECRET"))
    register_local(ws.session("ada"), "tiny", path=lm, marking=M("SECRET"))
    for ref in ("ep", "tiny"):
        with pytest.raises(NotFound) as hidden:
            open_generator(ws.session("ursula"), ref)
        with pytest.raises(NotFound) as missing:
            open_generator(ws.session("ursula"), ref + "-none")
        assert str(hidden.value) == str(missing.value).replace(ref + "-none", ref)
    assert _generators_of(ws.session("ursula")) == []
    assert sorted(_generators_of(ws.session("sam"))) == ["ep", "tiny"]


def test_opening_something_else_as_a_generator_is_refused(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "clf"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x")
    Models(ws.session("stew")).register(kind="classifier", name="clf", folder=folder)
    with pytest.raises(InvalidInput, match="not a generator"):
        open_generator(ws.session(), "clf")


@pytest.mark.parametrize(
    ("messages", "kw"),
    [
        ([], {}),
        ([{"role": "wizard", "content": "x"}], {}),
        ([{"role": "user", "content": 3}], {}),
        ([{"role": "user", "content": "x", "name": "n"}], {}),
        (ASK, {"max_tokens": 0}),
        (ASK, {"temperature": 3.0}),
        (ASK, {"stop": [""]}),
        (ASK, {"seed": -1}),
    ],
)
def test_malformed_calls_are_refused_before_sending(
    ws: Workspace, server: ChatServer, messages: Any, kw: dict[str, Any]
) -> None:
    _endpoint(ws, server)
    before = len(server.requests)
    with pytest.raises(InvalidInput):
        open_generator(ws.session(), "ep").generate(messages, content_marking=M("U"), **kw)
    assert len(server.requests) == before


# -- the API key -------------------------------------------------------------------------------

KEY = "sk-garrison-test-7f3a9c"


def _key_file(tmp_path: Path, key: str = KEY) -> Path:
    path = tmp_path / "key"
    path.write_text(key + "\n")
    path.chmod(0o600)
    return path


def test_the_api_key_is_read_at_each_call_and_never_stored(
    ws: Workspace, lm: Path, tmp_path: Path
) -> None:
    key = _key_file(tmp_path)
    with serve(lm, api_key=KEY) as server:
        ref = _endpoint(ws, server, api_key_file=key)
        version = Models(ws.session()).get(ref)
        assert version.manifest["parameters"]["api_key_file"] == str(key.resolve())
        gen = open_generator(ws.session(), "ep")
        assert gen.generate(ASK, content_marking=M("U"), max_tokens=2).text
        assert server.chat_requests[-1].headers["Authorization"] == f"Bearer {KEY}"
        # Rotated: the new key is used at once, the old one is refused with one sentence.
        server.api_key = "sk-rotated"
        with pytest.raises(ServiceUnavailable, match="check the API key") as err:
            gen.generate(ASK, content_marking=M("U"), max_tokens=2)
        assert KEY not in str(err.value)
        key.write_text("sk-rotated\n")
        assert gen.generate(ASK, content_marking=M("U"), max_tokens=2).text
    ws.close()
    for path in ws.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert KEY.encode() not in data and b"sk-rotated" not in data, path


@pytest.mark.parametrize("problem", ["world-readable", "empty", "two-keys", "missing"])
def test_a_bad_key_file_is_refused_without_showing_the_key(
    ws: Workspace, server: ChatServer, tmp_path: Path, problem: str
) -> None:
    key = _key_file(tmp_path, {"empty": "", "two-keys": f"{KEY} {KEY}"}.get(problem, KEY))
    if problem == "world-readable":
        key.chmod(0o644)
    if problem == "missing":
        key.unlink()
    with pytest.raises(KeyFileError) as err:
        _endpoint(ws, server, api_key_file=key)
    assert KEY not in str(err.value)
    _one_sentence(str(err.value))
    assert server.requests == []


# -- audit -------------------------------------------------------------------------------------


def test_registration_and_every_call_are_audited(
    ws: Workspace, lm: Path, server: ChatServer
) -> None:
    ref = _endpoint(ws, server, accredited=M("CONFIDENTIAL"))
    local = register_local(ws.session("ada"), "tiny", path=lm)
    registered = [e for e in ws.audit.tail() if e.action == "model.register"]
    assert [(e.actor, e.details["kind"], e.decision) for e in registered[-2:]] == [
        ("ada", "generator", "allow"),
        ("ada", "generator", "allow"),
    ]
    assert registered[-1].object_id == local.id
    gen = open_generator(ws.session("sam"), ref, purpose="assist")
    gen.generate(ASK, content_marking=M("CONFIDENTIAL"), max_tokens=2)
    uses = [e for e in ws.audit.tail() if e.action == "model.use"]
    opened, called = uses[-2:]
    assert opened.actor == "sam" and opened.details["purpose"] == "assist"
    assert called.decision == "allow" and called.details == {
        "purpose": "assist",
        "call": "generate",
        "runtime": "openai",
        "content_marking": "CONFIDENTIAL",
        "accredited": "CONFIDENTIAL",
        "output_marking": "CONFIDENTIAL",
    }
    assert ws.session().audit_verify().ok


def test_generators_on_both_catalogs(
    tmp_path: Path, catalog_url: str | None, lm: Path, server: ChatServer
) -> None:
    workspace = Workspace.init(tmp_path / "ws", system_high=HIGH, db_url=catalog_url)
    try:
        _users(workspace)
        _endpoint(workspace, server, marking=M("CONFIDENTIAL"))
        register_local(workspace.session("ada"), "tiny", path=lm, marking=M("SECRET"))
        assert _generators_of(workspace.session("ursula")) == []
        with pytest.raises(NotFound):
            open_generator(workspace.session("ursula"), "ep")
        sam = workspace.session("sam")
        remote = open_generator(sam, "ep").generate(ASK, content_marking=M("U"), max_tokens=5)
        local = open_generator(sam, "tiny").generate(ASK, content_marking=M("U"), max_tokens=5)
        assert remote.text == local.text
        assert (remote.marking.banner(), local.marking.banner()) == ("CONFIDENTIAL", "SECRET")
    finally:
        workspace.close()


def test_admins_retire_generators_and_only_generators(
    ws: Workspace, server: ChatServer, tmp_path: Path
) -> None:
    ref = _endpoint(ws, server)
    with pytest.raises(NotPermitted):
        Models(ws.session("stew")).remove(ref, "de-accredited")
    folder = tmp_path / "clf"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x")
    Models(ws.session("stew")).register(kind="classifier", name="clf", folder=folder)
    with pytest.raises(NotPermitted):
        Models(ws.session("ada")).remove("clf", "not mine")
    Models(ws.session("ada")).remove(ref, "de-accredited")
    with pytest.raises(NotFound):
        open_generator(ws.session("ada"), "ep")
    denied = [e for e in ws.audit.tail() if e.action == "model.remove" and e.decision == "deny"]
    assert [e.actor for e in denied] == ["stew", "ada"]


def test_the_test_server_can_answer_with_a_fixed_reply(ws: Workspace) -> None:
    # For tests of code above generators (the assistant, evaluations) that need known text.
    with serve(reply=lambda messages: "echo: " + messages[-1]["content"]) as fixed:
        _endpoint(ws, fixed)
        gen = open_generator(ws.session(), "ep")
        assert gen.generate(ASK, content_marking=M("U")).text == "echo: convoy fuel report"
        stream = gen.stream(ASK, content_marking=M("U"), stop=[" fuel"])
        assert "".join(stream) == "echo: convoy"
