"""``garrison eval suite ...`` and ``/v1/eval/suites``: output, --json, exit codes, paging, the
marking header, and the per-item view of each reader."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from garrison.api import MARKING_HEADER, create_app
from garrison.cli.main import main
from garrison.datasets import Datasets, Selection
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.store.session import SubjectSpec
from garrison.store.tokens import create_token
from garrison.store.workspace import Workspace
from tests.assist.conftest import FAST, write_corpus

USERS = {
    "eve": ("TS", ("evaluator",)),
    "uma": ("U", ("viewer",)),
    "sam": ("S", ("viewer",)),
    "stu": ("TS", ("steward",)),
}
ROWS = [
    {"question": "Which ferry leaves at dawn?", "answer": "zebrafox", "marking": "U"},
    {"question": "What moves on Thursday?", "answer": "the cache", "marking": "SECRET"},
    {"question": "(C) What is reviewed?", "answer": "schedules", "marking": "CONFIDENTIAL"},
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("evalcli")
    ws = Workspace.init(root / "ws", system_high="TOP SECRET")
    write_corpus(root / "in")
    system = ws.session()
    ingest_paths(system, [str(root / "in")], IngestOptions(default_marking="UNCLASSIFIED"))
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    Datasets(system).create("chunks", Selection(fields=("doc_id", "source", "media_type")))
    tokens = {}
    for name, (clearance, roles) in USERS.items():
        system.add_user(name, SubjectSpec(clearance=clearance, roles=roles))
        tokens[name] = create_token(system, name, 30)[1]
    ws.close()
    (root / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    return root, tokens


def run(capsys: pytest.CaptureFixture[str], root: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["-w", str(root / "ws"), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], root: Path, *argv: str) -> Any:
    code, out, err = run(capsys, root, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_create_show_ls_export(
    capsys: pytest.CaptureFixture[str], built: tuple[Path, dict[str, str]]
) -> None:
    root, _ = built
    qa = str(root / "qa.jsonl")
    made = _json(
        capsys, root, "eval", "suite", "create", "cli-qa", "--from-jsonl", qa, "--kind", "qa",
        "--as", "eve",
    )  # fmt: skip
    assert made["count"] == 3 and made["marking"] == "SECRET" and made["kind"] == "qa"
    assert made["ref"] == f"cli-qa@{made['id'][:12]}" and made["version"] == 1
    code, out, _ = run(capsys, root, "eval", "suite", "show", "cli-qa", "--items", "--as", "uma")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == lines[-1] == "UNCLASSIFIED"  # the banner, top and bottom
    assert "1 items" in out and "zebrafox" in out and "Thursday" not in out
    shown = _json(
        capsys, root, "eval", "suite", "show", made["ref"], "--items", "--offset", "1",
        "--limit", "1", "--as", "eve",
    )  # fmt: skip
    assert [i["position"] for i in shown["items"]] == [1]
    assert shown["items"][0]["marking"] == "SECRET"
    listed = _json(capsys, root, "eval", "suite", "ls", "--as", "sam")
    assert [(v["ref"], v["count"]) for v in listed] == [(made["ref"], 3)]
    out_file = root / "cli-qa-export.jsonl"
    exported = _json(
        capsys, root, "eval", "suite", "export", "cli-qa", "--out", str(out_file), "--as", "eve"
    )
    assert exported["items"] == 3 and exported["marking"] == "SECRET"
    header, *items = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert header["banner"] == "SECRET" and len(items) == 3
    assert [i["marking"] for i in items] == ["UNCLASSIFIED", "SECRET", "CONFIDENTIAL"]
    # Exit codes: exists (2), not found for the reader (3), not permitted (4).
    code, _, err = run(
        capsys, root, "eval", "suite", "export", "cli-qa", "--out", str(out_file), "--as", "eve"
    )
    assert code == 2 and "exists" in err and "Traceback" not in err
    assert run(capsys, root, "eval", "suite", "show", "nosuch", "--as", "eve")[0] == 3
    code, _, err = run(
        capsys, root, "eval", "suite", "export", "cli-qa", "--out", str(root / "x"), "--as", "sam"
    )
    assert code == 4 and not (root / "x").exists()


def test_create_errors_exit_with_one_line(
    capsys: pytest.CaptureFixture[str], built: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, _ = built
    unmarked = tmp_path / "unmarked.jsonl"
    unmarked.write_text(json.dumps({"question": "q?", "answer": "a"}) + "\n")
    base = ("eval", "suite", "create", "bad")
    cases = [
        ([*base, "--from-jsonl", str(unmarked), "--kind", "qa", "--as", "eve"], 2, "marking"),
        ([*base, "--from-jsonl", str(unmarked), "--kind", "qa", "--marking", "NOPE"], 2, "NOPE"),
        ([*base, "--kind", "qa", "--as", "eve"], 2, "exactly one"),
        ([*base, "--from-jsonl", str(unmarked), "--as", "eve"], 2, "kind"),
        ([*base, "--from-jsonl", str(unmarked), "--kind", "essay", "--marking", "U"], 2, "kind"),
        ([*base, "--from-jsonl", str(unmarked), "--kind", "qa", "--marking", "U", "--as", "sam"],
         4, "may not"),
        ([*base, "--from-dataset", "nosuch", "--kind", "classification", "--label-field", "x",
          "--as", "eve"], 3, "nosuch"),
    ]  # fmt: skip
    for argv, expected, words in cases:
        code, out, err = run(capsys, root, *argv)
        assert code == expected, (argv, err)
        assert words in err and len(err.strip().splitlines()) == 1 and out == ""


def test_create_from_dataset_and_generate(
    capsys: pytest.CaptureFixture[str], built: tuple[Path, dict[str, str]]
) -> None:
    root, _ = built
    made = _json(
        capsys, root, "eval", "suite", "create", "cli-cls", "--from-dataset", "chunks",
        "--kind", "classification", "--label-field", "media_type", "--holdout", "--as", "eve",
    )  # fmt: skip
    assert made["holdout"] and made["kind"] == "classification" and made["marking"] == "TOP SECRET"
    assert made["source"]["type"] == "dataset"
    # A holdout suite: its summary for readers who dominate an item, its items for evaluators.
    seen = _json(capsys, root, "eval", "suite", "show", "cli-cls", "--as", "sam")
    assert seen["holdout"] and seen["marking"] == "SECRET"
    code, _, err = run(capsys, root, "eval", "suite", "show", "cli-cls", "--items", "--as", "sam")
    assert code == 4 and "holdout" in err
    gen = _json(
        capsys, root, "eval", "suite", "generate", "cli-gen", "--from-docs", "--limit", "12",
        "--seed", "5", "--as", "eve",
    )  # fmt: skip
    assert gen["kind"] == "qa" and gen["count"] == 12 and gen["source"]["seed"] == 5
    again = _json(
        capsys, root, "eval", "suite", "generate", "cli-gen", "--from-docs", "--limit", "12",
        "--seed", "5", "--as", "eve",
    )  # fmt: skip
    assert again["id"] == gen["id"]
    code, _, err = run(capsys, root, "eval", "suite", "generate", "x", "--as", "eve")
    assert code == 2 and "--from-docs" in err


# -- the API ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(built: tuple[Path, dict[str, str]]) -> Iterator[TestClient]:
    root, _ = built
    with TestClient(create_app(root / "ws"), raise_server_exceptions=False) as served:
        yield served


def _auth(built: tuple[Path, dict[str, str]], user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {built[1][user]}"}


def test_api_create_list_show_and_page_items(
    client: TestClient, built: tuple[Path, dict[str, str]]
) -> None:
    jsonl = "\n".join(json.dumps(r) for r in ROWS)
    body = {"name": "api-qa", "kind": "qa", "jsonl": jsonl}
    created = client.post("/v1/eval/suites", json=body, headers=_auth(built, "eve"))
    assert created.status_code == 201, created.text
    suite = created.json()
    assert suite["count"] == 3 and created.headers[MARKING_HEADER] == "SECRET"
    denied = client.post("/v1/eval/suites", json=body, headers=_auth(built, "sam"))
    assert denied.status_code == 403
    unmarked = {**body, "name": "api-bad", "jsonl": json.dumps({"question": "q", "answer": "a"})}
    assert client.post(
        "/v1/eval/suites", json=unmarked, headers=_auth(built, "eve")
    ).status_code in (
        400,
        422,
    )
    both = {**body, "dataset": "chunks"}
    assert client.post("/v1/eval/suites", json=both, headers=_auth(built, "eve")).status_code == 422
    from_ds = {
        "name": "api-cls",
        "kind": "classification",
        "dataset": "chunks",
        "label_field": "source",
    }
    made = client.post("/v1/eval/suites", json=from_ds, headers=_auth(built, "eve"))
    assert made.status_code == 201 and made.json()["source"]["type"] == "dataset"

    shown = client.get(f"/v1/eval/suites/{suite['ref']}", headers=_auth(built, "uma"))
    assert shown.status_code == 200
    assert shown.json()["count"] == 1 and shown.headers[MARKING_HEADER] == "UNCLASSIFIED"
    listed = client.get("/v1/eval/suites", headers=_auth(built, "uma")).json()
    assert all(v["marking"] == "UNCLASSIFIED" for v in listed["items"])
    assert listed["total"] == len(listed["items"])

    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1}
    while True:
        page = client.get(
            f"/v1/eval/suites/{suite['ref']}/items", params=params, headers=_auth(built, "sam")
        )
        assert page.status_code == 200, page.text
        data = page.json()
        assert data["total"] == 3
        items += data["items"]
        if data["next_cursor"] is None:
            break
        params = {"limit": 1, "cursor": data["next_cursor"]}
    assert [i["position"] for i in items] == [0, 1, 2]
    low = client.get(f"/v1/eval/suites/{suite['ref']}/items", headers=_auth(built, "uma"))
    assert low.json()["total"] == 1 and low.headers[MARKING_HEADER] == "UNCLASSIFIED"
    assert "Thursday" not in low.text


def test_api_hides_suites_above_the_reader_and_holdout_items(
    client: TestClient, built: tuple[Path, dict[str, str]]
) -> None:
    jsonl = json.dumps({"question": "What is hidden?", "answer": "x", "marking": "SECRET"})
    body = {"name": "api-secret", "kind": "qa", "jsonl": jsonl, "holdout": True}
    made = client.post("/v1/eval/suites", json=body, headers=_auth(built, "eve")).json()
    for path in (f"/v1/eval/suites/{made['ref']}", f"/v1/eval/suites/{made['id']}/items"):
        missing = client.get(path, headers=_auth(built, "uma"))
        nothing = client.get(path.replace(made["id"][:12], "0" * 12), headers=_auth(built, "uma"))
        assert missing.status_code == nothing.status_code == 404
        assert "hidden" not in missing.text
    names = [
        v["name"]
        for v in client.get("/v1/eval/suites", headers=_auth(built, "uma")).json()["items"]
    ]
    assert "api-secret" not in names
    # Holdout: sam sees the summary, not the items; the evaluator sees both.
    assert (
        client.get(f"/v1/eval/suites/{made['ref']}", headers=_auth(built, "sam")).status_code == 200
    )
    held = client.get(f"/v1/eval/suites/{made['ref']}/items", headers=_auth(built, "sam"))
    assert held.status_code == 403
    items = client.get(f"/v1/eval/suites/{made['ref']}/items", headers=_auth(built, "eve"))
    assert items.status_code == 200 and items.json()["total"] == 1
