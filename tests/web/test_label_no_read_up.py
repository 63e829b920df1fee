"""No read up through the labeling pages: a property over subjects, projects and task ids.

The workspace of :mod:`tests.web.label_world` is labeled first (every annotator drains every
project, an answer is typed SECRET on an UNCLASSIFIED record, reviewers fix some labels), so
pages have labels, reviews and agreement at every marking to leak. Hypothesis then draws a
subject, a project and a task id (any task's, or a made-up one) and reads every labeling page
as that subject: the projects list, the dashboard, the review queue, a task's page and its
image, and the Start form. Nothing on them may name a marking, a record's text or a label the
subject may not read, and a task above them answers exactly like a nonexistent one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.label import LabelProjects, next_review, next_task, reject, submit
from garrison.security.markings import dominates, parse_marking
from garrison.web import WebSettings, create_app
from tests.web.label_world import (
    SCHEMAS,
    TOPICS,
    USERS,
    LabelEnv,
    build_label_workspace,
    csrf_of,
)

PROJECTS = [*SCHEMAS, "boxes"]
LEVELS = ["UNCLASSIFIED", "CONFIDENTIAL", "SECRET"]
#: Words only in records of one marking (topic and marking go together in the corpus).
CANARIES = {"CONFIDENTIAL": "weather ledger", "SECRET": "personnel ledger"}
#: A label value typed only on a SECRET label of an UNCLASSIFIED record.
SECRET_ANSWER = "zephyr quill secret answer"
_TASK = re.compile(r"/ui/label/tasks/([0-9a-f]+)")


@dataclass
class World:
    env: LabelEnv
    #: Task id -> its record's marking, for every project.
    tasks: dict[str, str]
    clients: dict[str, TestClient] = field(default_factory=dict)

    def client(self, user: str) -> TestClient:
        if user not in self.clients:
            self.clients[user] = self.env.login(user)
        return self.clients[user]


def _value(task: Any) -> Any:
    kind = task.task_type
    if kind == "classification":
        topic = next((t for t in TOPICS if t in task.text), TOPICS[0])
        return [topic] if task.schema.get("multi") else topic
    if kind == "spans":
        return [{"start": 0, "end": 6, "type": "PLACE"}]
    if kind == "boxes":
        return [{"x": 1.0, "y": 1.0, "w": 10.0, "h": 10.0, "label": "truck"}]
    if kind == "preference":
        return "a"
    return f"About {task.record_id[:6]}."


def _label_everything(env: LabelEnv) -> None:
    for user in ("ann_s", "ann_u", "ann_c", "ann_s2"):
        session = env.session(user)
        for project in PROJECTS:
            while (task := next_task(session, project)) is not None:
                if (
                    user == "ann_s"
                    and project == "answers"
                    and task.marking.banner() == "UNCLASSIFIED"
                ):
                    submit(session, task.id, SECRET_ANSWER, marking="SECRET")
                else:
                    submit(session, task.id, _value(task))
    reviewer = env.session("rev")
    item = next_review(reviewer, "topics")
    if item is not None:
        reject(reviewer, item.label.id, "checked against the ledger")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    path, tokens, records = build_label_workspace(tmp_path_factory.mktemp("label-nru"))
    app = create_app(path, WebSettings())
    with TestClient(app):
        env = LabelEnv(path=path, app=app, tokens=tokens, records=records)
        _label_everything(env)
        steward = env.session("stew")
        tasks = {}
        for project in PROJECTS:
            page, _ = LabelProjects(steward).tasks(project, limit=1000)
            tasks.update({t["id"]: t["marking"] for t in page})
        built = World(env, tasks)
        yield built
        for client in env.clients:
            client.close()


def _clearance(user: str) -> str:
    return {"U": "UNCLASSIFIED", "C": "CONFIDENTIAL", "S": "SECRET"}[USERS[user][0]]


def _check(user: str, where: str, response: Any) -> None:
    ceiling = parse_marking(_clearance(user))
    text = response.text if response.headers.get("content-type", "").startswith("text") else ""
    header = response.headers.get("x-garrison-marking")
    if header:
        assert dominates(ceiling, parse_marking(header)), f"{where}: {header} to {user}"
    for level in LEVELS:
        if not dominates(ceiling, parse_marking(level)):
            assert level not in text, f"{where}: {level} shown to {user}"
            canary = CANARIES.get(level)
            if canary:
                assert canary not in text, f"{where}: {canary!r} shown to {user}"
    if not dominates(ceiling, parse_marking("SECRET")):
        assert SECRET_ANSWER not in text, f"{where}: a SECRET answer shown to {user}"


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_read_up_through_the_labeling_pages(world: World, data: st.DataObject) -> None:
    user = data.draw(st.sampled_from(sorted(USERS)), label="user")
    project = data.draw(st.sampled_from(PROJECTS), label="project")
    task_id = data.draw(st.sampled_from([*sorted(world.tasks), "0" * 32]), label="task")
    client = world.client(user)
    ceiling = parse_marking(_clearance(user))
    pages = {
        "list": client.get("/ui/label"),
        "dashboard": client.get(f"/ui/label/projects/{project}"),
        "review": client.get(f"/ui/label/projects/{project}/review"),
        "task": client.get(f"/ui/label/tasks/{task_id}"),
        "image": client.get(f"/ui/label/tasks/{task_id}/image"),
    }
    for where, response in pages.items():
        assert response.status_code in (200, 403, 404), (where, response.status_code)
        _check(user, where, response)
    missing = client.get(f"/ui/label/tasks/{'f' * 32}")
    marking = world.tasks.get(task_id)
    if marking is None or not dominates(ceiling, parse_marking(marking)):
        for where in ("task", "image"):
            assert pages[where].status_code == 404
            assert pages[where].text == missing.text, f"{where} of a higher task differs"
    started = client.post(
        f"/ui/label/projects/{project}/start", data={"csrf": csrf_of(pages["list"].text)}
    )
    assert started.status_code in (303, 403)
    found = _TASK.search(started.headers.get("location", ""))
    if found:
        opened = client.get(f"/ui/label/tasks/{found.group(1)}")
        assert opened.status_code == 200
        _check(user, "started", opened)
        assert dominates(ceiling, parse_marking(world.tasks[found.group(1)]))
