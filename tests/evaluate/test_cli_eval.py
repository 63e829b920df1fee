"""``garrison eval run|ls|show|report|compare`` from the command line, and the gate's exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from garrison.cli.main import main
from garrison.evaluate._suite_items import NewItem
from garrison.evaluate._suites import Suites
from garrison.models import register_endpoint
from garrison.security.markings import parse_marking
from garrison.store.workspace import Workspace
from tests.evaluate.run_fixtures import qa_suite, ws  # noqa: F401
from tests.models.openai_server import serve

M = parse_marking
N = 40


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _n(messages: list[dict[str, str]]) -> int:
    last = messages[-1]["content"].rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


@pytest.fixture(scope="module")
def setup(ws: Workspace) -> Iterator[dict[str, str]]:  # noqa: F811
    replies = {
        "a": lambda m: f"Signal {_n(m)} acknowledged.",
        "same": lambda m: f"Signal {_n(m)} acknowledged.",
        "bad": lambda m: "No." if _n(m) % 2 == 0 else f"Signal {_n(m)} acknowledged.",
    }
    with ExitStack() as stack:
        out = {"ws": str(ws.root), "qa": qa_suite(ws, "cli-qa").ref}
        for name, reply in replies.items():
            server = stack.enter_context(serve(reply=reply))
            version = register_endpoint(
                ws.session("ada"),
                f"cli-{name}",
                base_url=server.base_url,
                model="tiny",
                accredited=M("SECRET"),
            )
            out[name] = version.ref
        items = [
            NewItem(
                input={"prompt": f"Acknowledge signal {i}"},
                expected={"reference": f"Signal {i} acknowledged."},
                marking=M("UNCLASSIFIED"),
            )
            for i in range(N)
        ]
        out["gen"] = Suites(ws.session("ted")).create("cli-signals", "generation", items).ref
        yield out


def _run(capsys: pytest.CaptureFixture[str], setup: dict[str, str], gen: str) -> str:
    code, out, err = run_cli(
        capsys,
        "eval",
        "run",
        setup["gen"],
        "--system",
        f"generator:{setup[gen]}",
        "--scorer",
        "normalized",
        "--json",
        "--as",
        "ted",
        "-w",
        setup["ws"],
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["status"] == "complete" and data["counts"]["scored"] == N
    return str(data["ref"])


def test_run_ls_show_report(
    capsys: pytest.CaptureFixture[str],
    setup: dict[str, str],
    tmp_path: Path,
) -> None:
    w = setup["ws"]
    code, out, err = run_cli(
        capsys, "eval", "run", setup["qa"], "--system", "assistant:k=4", "--as", "ted", "-w", w
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "TOP SECRET" and lines[-1] == "TOP SECRET"
    ref = lines[1].split()[0]
    assert ref.startswith("RUN-")
    assert any("token-f1" in line and "[" in line and "n=4" in line for line in lines)

    code, out, _ = run_cli(capsys, "eval", "ls", "--json", "--as", "ted", "-w", w)
    assert code == 0 and ref in {r["ref"] for r in json.loads(out)}
    code, out, _ = run_cli(capsys, "eval", "ls", "--json", "--as", "eve", "-w", w)
    assert code == 0 and ref not in {r["ref"] for r in json.loads(out)}

    code, out, _ = run_cli(capsys, "eval", "show", ref, "--items", "--json", "--as", "ted", "-w", w)
    data = json.loads(out)
    assert code == 0 and len(data["items"]) == 4 and data["marking"] == "TOP SECRET"
    code, _, _ = run_cli(capsys, "eval", "show", ref, "--as", "eve", "-w", w)
    assert code == 3

    for fmt in ("html", "md", "json", "stats", "inspect"):
        target = tmp_path / f"report.{fmt}"
        code, _, err = run_cli(
            capsys, "eval", "report", ref, "--format", fmt, "--out", str(target), "--as", "ted",
            "-w", w,
        )  # fmt: skip
        assert code == 0, err
        assert "TOP SECRET" in target.read_text()
    stats = json.loads((tmp_path / "report.stats").read_text())
    assert "ferry" not in json.dumps(stats)  # no item text in the statistics-only export
    code, _, _ = run_cli(capsys, "eval", "report", ref, "--out", str(tmp_path / "report.html"),
                         "--as", "ted", "-w", w)  # fmt: skip
    assert code == 2  # an existing file is never overwritten
    code, _, _ = run_cli(capsys, "eval", "run", setup["qa"], "--system", "robot", "--as", "ted",
                         "-w", w)  # fmt: skip
    assert code == 2
    code, _, _ = run_cli(capsys, "eval", "run", setup["qa"], "--system", "assistant", "--as",
                         "sam", "-w", w)  # fmt: skip
    assert code == 4


def test_compare_exit_codes(capsys: pytest.CaptureFixture[str], setup: dict[str, str]) -> None:
    w = setup["ws"]
    a, same, bad = (_run(capsys, setup, g) for g in ("a", "same", "bad"))

    def compare(x: str, y: str, *gate: str) -> tuple[int, str]:
        code, out, err = run_cli(capsys, "eval", "compare", x, y, *gate, "--as", "ted", "-w", w)
        return code, out + err

    # A null difference: non-inferior (exit 0), not superior (exit 1).
    code, out = compare(a, same, "--non-inferiority", "0.05")
    assert code == 0, out
    assert "difference B-A +0.0000" in out and "Gate passed." in out
    assert "Holm-adjusted p=" in out
    assert compare(a, same, "--superiority")[0] == 1
    # A planted difference (B wrong on half the items): fails non-inferiority ...
    code, out = compare(a, bad)
    assert code == 1 and "FAIL" in out and "difference B-A -0.5000" in out
    # ... and the better system is superior to it.
    assert compare(bad, a, "--superiority")[0] == 0
    # JSON carries the comparison and the verdict.
    code, out, _ = run_cli(
        capsys, "eval", "compare", a, bad, "--metric", "normalized", "--json", "--as", "ted",
        "-w", w,
    )  # fmt: skip
    data = json.loads(out)
    assert code == 1 and data["passed"] is False
    (c,) = data["comparisons"]
    assert c["metric"] == "normalized" and c["difference"]["high"] < 0 and c["n"] == N
    # Errors keep their codes: two gates at once, an unknown metric, a run not readable.
    assert compare(a, bad, "--superiority", "--non-inferiority", "0.1")[0] == 2
    assert compare(a, bad, "--metric", "bleu")[0] == 2
    code, _, _ = run_cli(capsys, "eval", "compare", a, "RUN-ffffffffffff", "--as", "ted", "-w", w)
    assert code == 3


def test_resume_from_the_command_line(
    capsys: pytest.CaptureFixture[str],
    setup: dict[str, str],
    ws: Workspace,  # noqa: F811
) -> None:
    from garrison.evaluate import Runs, SystemSpec

    runs = Runs(ws.session("ted"))

    class Stop(KeyboardInterrupt):
        pass

    def stop(done: int, total: int) -> None:
        if done == 3:
            raise Stop()

    spec = SystemSpec("generator", setup["bad"], {"max_tokens": 9})
    with pytest.raises(Stop):
        runs.start(setup["gen"], spec, concurrency=1, progress=stop)
    (run,) = [r for r in runs.list() if r.status == "interrupted" and r.suite == setup["gen"]]
    code, out, err = run_cli(
        capsys, "eval", "run", "--resume", run.ref, "--json", "--as", "ted", "-w", setup["ws"]
    )
    assert code == 0, err
    assert json.loads(out)["counts"]["scored"] == N
