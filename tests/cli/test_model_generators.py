"""``garrison model add-endpoint | add-local | generate``: output, --json, exit codes, and
one-line errors, against a real tiny model served over loopback HTTP."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.cli.main import main
from garrison.models import _generators
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace
from tests.models.openai_server import ChatServer, serve
from tests.models.tiny_lm import tiny_causal_lm

HIGH = "SECRET//NOFORN"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> None:
    assert err.startswith("garrison: ") and err.count("\n") == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_causal_lm(tmp_path_factory.mktemp("lm") / "tiny")


@pytest.fixture(autouse=True)
def _fresh_models() -> Iterator[None]:
    _generators._local.clear()
    yield
    _generators._local.clear()


@pytest.fixture
def ws(tmp_path: Path) -> str:
    workspace = Workspace.init(tmp_path / "ws", system_high=HIGH)
    system = workspace.session()
    system.add_user("ada", SubjectSpec(clearance="S", roles=("admin",)))
    system.add_user("ursula", SubjectSpec(clearance="U"))
    system.add_user("stew", SubjectSpec(clearance="S", roles=("steward",)))
    workspace.close()
    return str(tmp_path / "ws")


@pytest.fixture
def server(lm: Path) -> Iterator[ChatServer]:
    with serve(lm) as running:
        yield running


def _add_endpoint(
    capsys: pytest.CaptureFixture[str], ws: str, server: ChatServer, *extra: str
) -> tuple[int, str, str]:
    return run(
        capsys,
        "model",
        "add-endpoint",
        "ep",
        "--base-url",
        server.base_url,
        "--model",
        "tiny",
        "-w",
        ws,
        *extra,
    )


def test_add_local_and_generate(capsys: pytest.CaptureFixture[str], ws: str, lm: Path) -> None:
    code, out, err = run(
        capsys, "model", "add-local", "tiny", "--path", str(lm), "-w", ws, "--as", "ada", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["kind"] == "generator" and data["marking"] == "UNCLASSIFIED"
    assert data["manifest"]["parameters"]["runtime"] == "transformers"
    code, out, err = run(
        capsys, "model", "generate", "tiny", "--prompt", "convoy fuel report",
        "--marking", "U", "--max-tokens", "6", "-w", ws, "--as", "ursula", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["text"] and result["marking"] == "UNCLASSIFIED"
    assert result["model"] == f"tiny@{data['id'][:12]}"
    assert result["usage"]["completion_tokens"] == 6
    # Human output: the banner above and below the text.
    code, out, _ = run(
        capsys, "model", "generate", "tiny", "--prompt", "convoy fuel report",
        "--marking", "U", "--max-tokens", "6", "-w", ws, "--as", "ursula",
    )  # fmt: skip
    assert code == 0
    assert out.splitlines() == ["UNCLASSIFIED", result["text"], "UNCLASSIFIED"]
    code, streamed, _ = run(
        capsys, "model", "generate", "tiny", "--prompt", "convoy fuel report",
        "--marking", "U", "--max-tokens", "6", "--stream", "-w", ws, "--as", "ursula",
    )  # fmt: skip
    assert code == 0 and streamed == out


def test_without_a_marking_the_prompt_is_taken_as_system_high(
    capsys: pytest.CaptureFixture[str], ws: str, lm: Path, server: ChatServer
) -> None:
    assert run(capsys, "model", "add-local", "tiny", "--path", str(lm), "-w", ws)[0] == 0
    code, out, _ = run(
        capsys, "model", "generate", "tiny", "--prompt", "convoy", "--max-tokens", "2", "-w", ws
    )
    assert code == 0 and out.splitlines()[0] == HIGH
    assert _add_endpoint(capsys, ws, server, "--accredited", "U")[0] == 0
    before = len(server.requests)
    code, out, err = run(capsys, "model", "generate", "ep", "--prompt", "convoy", "-w", ws)
    assert code == 4 and out == ""
    _one_line(err)
    assert "never sent" in err
    assert len(server.requests) == before


def test_add_endpoint_and_generate_the_same_text_as_local(
    capsys: pytest.CaptureFixture[str], ws: str, lm: Path, server: ChatServer
) -> None:
    code, out, err = _add_endpoint(capsys, ws, server, "--accredited", HIGH, "--as", "ada")
    assert code == 0, err
    assert out.startswith("Registered generator ep@") and f"accredited for {HIGH}" in out
    assert run(capsys, "model", "add-local", "tiny", "--path", str(lm), "-w", ws)[0] == 0
    texts = []
    for ref in ("ep", "tiny"):
        code, out, err = run(
            capsys, "model", "generate", ref, "--prompt", "radar signal intercept",
            "--marking", "CONFIDENTIAL", "--max-tokens", "8", "-w", ws, "--json",
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["marking"] == "CONFIDENTIAL"
        texts.append(json.loads(out)["text"])
    assert texts[0] and texts[0] == texts[1]


def test_content_above_the_accreditation_is_refused_and_nothing_sent(
    capsys: pytest.CaptureFixture[str], ws: str, server: ChatServer
) -> None:
    assert _add_endpoint(capsys, ws, server, "--accredited", "CONFIDENTIAL")[0] == 0
    before = len(server.requests)
    code, out, err = run(
        capsys, "model", "generate", "ep", "--prompt", "x", "--marking", "SECRET", "-w", ws,
        "--json",
    )  # fmt: skip
    assert code == 4 and out == ""
    _one_line(err)
    assert len(server.requests) == before


@pytest.mark.parametrize("mode", ["garbage", "no-choices", "error-500"])
def test_a_bad_endpoint_is_not_registered(
    capsys: pytest.CaptureFixture[str], ws: str, server: ChatServer, mode: str
) -> None:
    server.mode = mode
    code, out, err = _add_endpoint(capsys, ws, server, "--accredited", "U")
    assert code == 5 and out == ""
    _one_line(err)
    listed = json.loads(run(capsys, "model", "ls", "-w", ws, "--json")[1])
    assert [v for v in listed if v["kind"] == "generator"] == []


def test_an_unreachable_endpoint_no_probe_then_use(
    capsys: pytest.CaptureFixture[str], ws: str
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    args = ["model", "add-endpoint", "gone", "--base-url", url, "--model", "m",
            "--accredited", "U", "-w", ws]  # fmt: skip
    code, _, err = run(capsys, *args)
    assert code == 5
    _one_line(err)
    assert "could not be reached" in err
    code, _, err = run(capsys, *args, "--no-probe", "--json")
    assert code == 0, err
    code, out, err = run(
        capsys, "model", "generate", "gone", "--prompt", "x", "--marking", "U", "-w", ws
    )
    assert code == 5 and out == ""
    _one_line(err)


def test_only_an_admin_registers_generators(
    capsys: pytest.CaptureFixture[str], ws: str, lm: Path, server: ChatServer
) -> None:
    code, _, err = _add_endpoint(capsys, ws, server, "--accredited", "U", "--as", "stew")
    assert code == 4
    _one_line(err)
    code, _, err = run(
        capsys, "model", "add-local", "tiny", "--path", str(lm), "-w", ws, "--as", "stew"
    )
    assert code == 4
    _one_line(err)
    assert server.requests == []


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--accredited", "TOP SECRET"], 2),
        (["--accredited", "SECRET//SI//NOFORN"], 2),
        (["--accredited", "U", "--marking", "SECRET"], 2),
        (["--accredited", "NOT A MARKING"], 2),
        (["--accredited", "U", "--base-url", "ftp://example.org/v1"], 2),
    ],
)
def test_bad_markings_and_urls_exit_2(
    capsys: pytest.CaptureFixture[str],
    ws: str,
    server: ChatServer,
    args: list[str],
    code: int,
) -> None:
    got, out, err = _add_endpoint(capsys, ws, server, *args)
    assert got == code and out == ""
    _one_line(err)
    assert server.requests == []


def test_pickle_weights_exit_2(
    capsys: pytest.CaptureFixture[str], ws: str, lm: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(lm, bad)
    (bad / "pytorch_model.bin").write_bytes(b"\x80\x02")
    code, out, err = run(capsys, "model", "add-local", "bad", "--path", str(bad), "-w", ws)
    assert code == 2 and out == ""
    _one_line(err)
    assert "pickle" in err


def test_an_unreadable_generator_exits_3_like_a_missing_one(
    capsys: pytest.CaptureFixture[str], ws: str, lm: Path
) -> None:
    code, _, err = run(
        capsys, "model", "add-local", "hush", "--path", str(lm), "--marking", "SECRET", "-w", ws
    )
    assert code == 0, err
    hidden = run(capsys, "model", "generate", "hush", "--prompt", "x", "--marking", "U",
                 "-w", ws, "--as", "ursula")  # fmt: skip
    missing = run(capsys, "model", "generate", "nope", "--prompt", "x", "--marking", "U",
                  "-w", ws, "--as", "ursula")  # fmt: skip
    assert hidden[0] == missing[0] == 3
    assert hidden[2].replace("hush", "nope") == missing[2]


def test_the_api_key_file_path_is_shown_never_the_key(
    capsys: pytest.CaptureFixture[str], ws: str, lm: Path, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_text("sk-cli-secret-1234\n")
    key.chmod(0o600)
    with serve(lm, api_key="sk-cli-secret-1234") as server:
        code, out, err = _add_endpoint(
            capsys, ws, server, "--accredited", "U", "--api-key-file", str(key), "--json"
        )
        assert code == 0, err
        assert json.loads(out)["manifest"]["parameters"]["api_key_file"] == str(key.resolve())
        code, out, err = run(
            capsys, "model", "generate", "ep", "--prompt", "x", "--marking", "U", "-w", ws,
            "--max-tokens", "2", "--json",
        )  # fmt: skip
        assert code == 0, err
        code, out, _ = run(capsys, "model", "show", "ep", "-w", ws, "--json")
        assert code == 0 and "sk-cli-secret" not in out
