"""``garrison label ...`` and ``/v1/label/...``: output, --json, exit codes, marked responses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from garrison.api import MARKING_HEADER, create_app
from garrison.cli.main import main
from garrison.store.tokens import create_token
from tests.label.conftest import TOPICS, LabelWorld, build_world


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelWorld]:
    world = build_world(tmp_path_factory.mktemp("label-cli"))
    path = world.ws.root
    world.ws.close()
    yield world
    del path


def run(capsys: pytest.CaptureFixture[str], world: LabelWorld, *argv: str) -> tuple[int, str, str]:
    code = main(["-w", str(world.ws.root), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_round(served: LabelWorld, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    classes = ",".join(TOPICS)
    code, out, err = run(
        capsys, served, "label", "project", "create", "cli", "--dataset", "reports",
        "--classes", classes, "--overlap", "1", "--review-rate", "1", "--as", "stew", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["marking"] == "UNCLASSIFIED"
    code, _, err = run(
        capsys, served, "label", "project", "create", "x", "--dataset", "reports",
        "--classes", classes, "--as", "ann_s",
    )  # fmt: skip
    assert code == 4 and len(err.strip().splitlines()) == 1
    code, out, _ = run(capsys, served, "label", "project", "ls", "--as", "ann_u", "--json")
    assert [p["name"] for p in json.loads(out)] == ["cli"]
    handed = 0
    while True:
        code, out, err = run(capsys, served, "label", "next", "cli", "--as", "ann_u", "--json")
        if code == 3:
            assert "No task left" in err
            break
        assert code == 0, err
        task = json.loads(out)
        assert task["marking"] == "UNCLASSIFIED" and "kind" not in task
        topic = next(t for t in TOPICS if t in task["text"])
        code, out, err = run(
            capsys, served, "label", "submit", task["id"], "--value", json.dumps(topic),
            "--as", "ann_u", "--json",
        )  # fmt: skip
        assert code == 0, err and json.loads(out)["status"] == "submitted"
        handed += 1
    assert handed == 4
    code, _, err = run(
        capsys, served, "label", "submit", "f" * 32, "--value", '"weather"', "--as", "ann_u"
    )
    assert code == 3
    code, _, err = run(capsys, served, "label", "submit", "f" * 32, "--value", "{", "--as", "ann_u")
    assert code == 2 and "not valid JSON" in err
    code, out, _ = run(
        capsys, served, "label", "project", "stats", "cli", "--as", "ann_u", "--json"
    )
    stats = json.loads(out)
    assert stats["tasks"] == 4 and stats["labels"] == {"submitted": 4}
    code, out, err = run(capsys, served, "label", "review", "next", "cli", "--as", "rev", "--json")
    assert code == 0, err
    label_id = json.loads(out)["label"]["id"]
    code, out, err = run(capsys, served, "label", "review", "accept", label_id, "--as", "rev")
    assert code == 0 and "accepted" in out
    code, _, err = run(capsys, served, "label", "review", "next", "cli", "--as", "ann_u")
    assert code == 3  # the annotator labeled every task they may read
    target = tmp_path / "out.jsonl"
    code, out, err = run(
        capsys, served, "label", "project", "export", "cli", "--format", "jsonl",
        "--out", str(target), "--as", "stew", "--json",
    )  # fmt: skip
    assert code == 0, err and json.loads(out)["records"] == 4
    code, out, err = run(
        capsys, served, "label", "project", "export", "cli", "--name", "cli-labels",
        "--as", "stew", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["name"] == "cli-labels"
    code, _, err = run(capsys, served, "label", "project", "export", "cli", "--as", "ann_u")
    assert code == 4
    code, _, _ = run(capsys, served, "label", "project", "show", "nope", "--as", "stew")
    assert code == 3
    predictions = tmp_path / "pre.jsonl"
    predictions.write_text(
        "\n".join(
            json.dumps({"record_id": r, "value": "weather", "score": 0.4}) for r in served.records
        )
    )
    code, out, err = run(
        capsys, served, "label", "import-predictions", "cli", "--file", str(predictions),
        "--as", "stew", "--json",
    )  # fmt: skip
    assert code == 0, err and json.loads(out)["suggestions"] == len(served.records)


def test_api_round(served: LabelWorld) -> None:
    from garrison.store.workspace import Workspace

    ws = Workspace.open(served.ws.root)
    tokens = {u: create_token(ws.session(), u, 30)[1] for u in ("stew", "ann_u", "ann_s", "rev")}
    ws.close()

    def auth(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[user]}"}

    with TestClient(create_app(served.ws.root), raise_server_exceptions=False) as client:
        body = {
            "name": "api",
            "dataset": "reports",
            "task_type": "classification",
            "schema": {"classes": TOPICS},
            "overlap": 2,
            "review_rate": 1.0,
        }
        response = client.post("/v1/label/projects", json=body, headers=auth("stew"))
        assert response.status_code == 200, response.text
        assert response.json()["marking"] == response.headers[MARKING_HEADER] == "UNCLASSIFIED"
        denied = client.post(
            "/v1/label/projects", json={**body, "name": "b"}, headers=auth("ann_s")
        )
        assert denied.status_code == 403
        ids = []
        while True:
            response = client.post("/v1/label/projects/api/next", headers=auth("ann_s"))
            assert response.status_code == 200, response.text
            task = response.json()["task"]
            if task is None:
                assert response.headers[MARKING_HEADER] == "UNCLASSIFIED"
                break
            assert response.headers[MARKING_HEADER] == task["marking"]
            ids.append(task["id"])
            topic = next(t for t in TOPICS if t in task["text"])
            sent = client.post(
                f"/v1/label/tasks/{task['id']}/submit", json={"value": topic}, headers=auth("ann_s")
            )
            assert sent.status_code == 200, sent.text
        assert len(ids) == len(served.records)
        stats = client.get("/v1/label/projects/api/stats", headers=auth("stew")).json()
        assert stats["stats"]["tasks"] == len(served.records)
        # Aggregation is computed from SECRET labels: the response is marked with them.
        assert stats["marking"] == "SECRET"
        assert set(stats["stats"]["aggregation"]["methods"]) == {"majority", "dawid-skene"}
        assert "labels_marking" not in stats["stats"]
        low = client.get("/v1/label/projects/api/tasks?limit=100", headers=auth("ann_u")).json()
        assert len(low["items"]) == 4 and low["marking"] == "UNCLASSIFIED"
        # Tasks page with an opaque cursor; the total counts the reader's tasks only.
        for user, expected in (("ann_u", 4), ("ann_s", len(served.records))):
            seen: list[str] = []
            params: dict[str, Any] = {"limit": 3}
            while True:
                page = client.get(
                    "/v1/label/projects/api/tasks", params=params, headers=auth(user)
                ).json()
                assert page["total"] == expected and len(page["items"]) <= 3
                seen += [t["id"] for t in page["items"]]
                if page["next_cursor"] is None:
                    break
                params = {"limit": 3, "cursor": page["next_cursor"]}
            assert len(seen) == len(set(seen)) == expected
        bad = client.get("/v1/label/projects/api/tasks?cursor=7", headers=auth("ann_u"))
        assert bad.status_code == 400
        secret = next(t for t in ids if t not in {i["id"] for i in low["items"]})
        hidden = client.post(
            f"/v1/label/tasks/{secret}/submit", json={"value": "weather"}, headers=auth("ann_u")
        )
        missing = client.post(
            f"/v1/label/tasks/{'0' * 32}/submit", json={"value": "weather"}, headers=auth("ann_u")
        )
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["error"]["message"].replace(secret, "X") == missing.json()["error"][
            "message"
        ].replace("0" * 32, "X")
        review = client.post("/v1/label/projects/api/review/next", headers=auth("rev")).json()
        label = review["review"]["label"]
        fixed = client.post(
            f"/v1/label/labels/{label['id']}/fix", json={"value": "weather"}, headers=auth("rev")
        )
        assert fixed.status_code == 200 and fixed.json()["kind"] == "fix"
        exported = client.post(
            "/v1/label/projects/api/export", json={"name": "api-labels"}, headers=auth("stew")
        )
        assert exported.status_code == 200, exported.text
        assert exported.json()["marking"] == "SECRET"
        mine = client.get("/v1/label/projects/api/labels", headers=auth("ann_s")).json()
        assert {item["annotator"] for item in mine["items"]} == {"ann_s"}
