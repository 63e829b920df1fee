"""Audit actions are one enum: every event a workflow records names a member, and no call site
in the library passes an action as a string literal."""

from __future__ import annotations

import ast
import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

import garrison
import garrison.security
from garrison.core.errors import GarrisonError, NotPermitted
from garrison.datasets import Datasets, Selection
from garrison.datasets.export import export_version
from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.models import Models
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.search import search
from garrison.security.audit import AuditAction
from garrison.store.derived import Chunks, Lineage, dedup_report
from garrison.store.documents import Documents, Jobs
from garrison.store.session import SubjectSpec
from garrison.store.tokens import authenticate, create_token, list_tokens, revoke_token
from garrison.store.workspace import Workspace

SRC = Path(garrison.__file__).parent
#: Modules that still pass action strings (their values are members all the same).
STRING_CALLERS: set[str] = set()

#: What stored logs already hold: a member's value must never change, or old logs would name
#: actions the library no longer knows.
STORED = {
    "audit.checkpoint", "audit.read", "audit.verify", "catalog.migrate", "chunks.list",
    "dataset.create", "dataset.delete", "dataset.export", "dataset.key-export", "dataset.list",
    "dataset.read", "dedup.report", "doc.original", "doc.read", "docs.list", "document.remove",
    "finding.resolve", "findings.list", "ingest.document", "ingest.remark", "ingest.reparse",
    "ingest.spill", "ingest.start", "ingest.supersede", "job.finish", "job.start", "jobs.list",
    "jobs.show", "integrity", "lineage.read", "login", "marking.downgrade", "model.list",
    "model.read", "model.register", "model.remove", "pipeline.plan", "pipeline.remove",
    "pipeline.run", "pipeline.write", "registry.add", "registry.list", "search", "session.open",
    "token.create", "token.list", "token.revoke", "user.add", "user.list", "user.show",
    "user.update", "web.csrf", "web.login", "web.logout", "web.session-end", "workspace.init",
}  # fmt: skip


def test_every_stored_action_name_is_a_member_with_the_same_value() -> None:
    values = {a.value for a in AuditAction}
    assert values >= STORED
    # Training, optimizing, using, predicting with and carrying models; asking the assistant
    # and keeping its conversations; building, reading and exporting evaluation suites;
    # red-team runs; labeling.
    assert values - STORED == {
        "model.export", "model.import", "model.optimize", "model.predict", "model.train",
        "model.use", "ask", "conversation.delete", "conversation.list", "conversation.read",
        # Evaluation suites, runs and the gate.
        "eval.suite-create", "eval.suite-export", "eval.suite-list", "eval.suite-read",
        "eval.compare", "eval.run", "eval.run-read", "eval.run-report", "eval.runs-list",
        # Red-team runs.
        "redteam.report", "redteam.run", "redteam.setup",
        # Labeling: projects, tasks, labels, reviews, pauses, imports and exports.
        "label.export", "label.flag", "label.import", "label.pause", "label.project-create",
        "label.project-list", "label.project-read", "label.review", "label.skip",
        "label.submit", "label.task",
        # Classification-by-compilation rules in the registry.
        "registry.compilation-add", "registry.compilation-remove",
        # Installation checks, and reliance on an unencrypted volume.
        "doctor.run", "workspace.unencrypted-volume",
        # Removing site additions from the marking registry.
        "registry.remove",
        # The encryption check of an index on object storage.
        "workspace.storage-encryption",
        # A stored original that failed its hash check.
        "doc.damaged",
    }  # fmt: skip
    assert len(values) == len(AuditAction)  # no two members share a name
    assert garrison.security.AuditAction is AuditAction
    assert "AuditAction" in garrison.security.__all__
    # A member is its string: comparisons, JSON and the canonical event bytes are unchanged.
    assert AuditAction.USER_ADD == "user.add" and str(AuditAction.USER_ADD) == "user.add"
    assert (
        json.dumps({"action": AuditAction.DATASET_KEY_EXPORT}) == '{"action": "dataset.key-export"}'
    )


def test_events_hold_the_plain_string(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws", system_high="SECRET")
    try:
        event = ws.session().audit(AuditAction.SEARCH, details={"k": 1})
        assert type(event.action) is str and event.action == "search"
        assert b'"action":"search"' in event.canonical_bytes()
        stored = ws.audit.tail(1)[0]
        assert stored == event and type(stored.action) is str
        assert ws.audit.verify(ws.audit.public_key).ok
    finally:
        ws.close()


def test_require_takes_a_member_or_its_value_and_refuses_unknown_names(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws", system_high="SECRET")
    try:
        system = ws.session()
        system.add_user("vic", SubjectSpec(clearance="U", roles=("viewer",)))
        vic = ws.session("vic")
        from garrison.security.policy import Action

        with pytest.raises(NotPermitted):
            vic.require(Action.MANAGE_USERS, "user.list")
        assert ws.audit.tail(1)[0].action == "user.list"
        size = ws.audit.size
        with pytest.raises(ValueError, match="not a valid AuditAction"):
            vic.require(Action.MANAGE_USERS, "user.lsit")
        with pytest.raises(ValueError, match="not a valid AuditAction"):
            system.require(Action.MANAGE_USERS, "user.lsit")  # even when allowed
        assert ws.audit.size == size  # nothing recorded under a name that is no member
    finally:
        ws.close()


# -- no literals at call sites ----------------------------------------------------------------


def _takes_action(tree: ast.Module) -> dict[str, tuple[int, str]]:
    """Functions with a parameter annotated ``AuditAction``: name -> (call position, keyword)."""
    found: dict[str, tuple[int, str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        params = [*node.args.posonlyargs, *node.args.args]
        for index, arg in enumerate(params):
            if arg.annotation is not None and "AuditAction" in ast.unparse(arg.annotation):
                method = bool(params) and params[0].arg in ("self", "cls")
                found[node.name] = (index - 1 if method else index, arg.arg)
    return found


def _literal_actions(
    tree: ast.Module, takes: dict[str, tuple[int, str]]
) -> tuple[list[tuple[int, str]], int]:
    """String literals passed where an action goes (and how many action arguments there are).

    An action argument is the annotated parameter of a function in ``takes`` (by name, however
    it is reached) or the ``"action"`` entry of a dict literal (events for ``append_many``).
    """
    literals: list[tuple[int, str]] = []
    seen = 0
    for node in ast.walk(tree):
        given: list[ast.expr] = []
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in takes:
                index, keyword = takes[name]
                if len(node.args) > index:
                    given.append(node.args[index])
                given += [k.value for k in node.keywords if k.arg == keyword]
        elif isinstance(node, ast.Dict):
            given += [
                v
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value == "action"
            ]
        for value in given:
            seen += 1
            if isinstance(value, ast.Constant | ast.JoinedStr):
                literals.append((value.lineno, ast.unparse(value)))
    return literals, seen


def _modules() -> dict[str, ast.Module]:
    return {
        path.relative_to(SRC).as_posix(): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(SRC.rglob("*.py"))
    }


def test_no_call_site_passes_an_action_literal() -> None:
    modules = _modules()
    takes: dict[str, tuple[int, str]] = {}
    for tree in modules.values():
        takes |= _takes_action(tree)
    # The enforcement points take the enum (require accepts its value too, for ingest).
    for name in ("audit", "_write", "require", "append", "_require_audit_reader"):
        assert name in takes, f"{name} no longer takes an AuditAction"
    bad, seen = [], 0
    for rel, tree in modules.items():
        if rel in STRING_CALLERS:
            continue
        literals, count = _literal_actions(tree, takes)
        seen += count
        bad += [f"{rel}:{line}: {text}" for line, text in literals]
    assert not bad, "pass AuditAction members, not strings:\n" + "\n".join(bad)
    assert seen > 80  # the scan reaches the call sites (it would pass vacuously otherwise)


def test_the_scan_finds_literals_in_every_form() -> None:
    source = """
def audit(self, action: AuditAction, *, object_id=None): ...
def require(self, action, audit_action: AuditAction | str): ...
def helper(orm, doc_id, action: AuditAction): ...
session.audit("user.add")
session.require(Action.X, "user.list")
session.require(Action.X, audit_action=f"user.{x}")
helper(orm, doc_id, "doc.read")
log.append_many("system", [{"action": "ingest.document"}])
session.audit(AuditAction.USER_ADD)
helper(orm, doc_id, AuditAction.DOC_READ)
items.append(x)
"""
    tree = ast.parse(source)
    literals, seen = _literal_actions(tree, _takes_action(tree))
    assert [line for line, _ in literals] == [5, 6, 7, 8, 9]
    assert seen == 7


# -- what workflows record --------------------------------------------------------------------

PIPELINE = """
name: actions
stages:
  - normalize: {}
  - pii: {default_action: mask}
  - dedup: {}
  - chunk: {model: hashing, max_tokens: 64, overlap_tokens: 8}
  - embed: {model: hashing}
"""


def _quietly(call: Callable[[], object]) -> None:
    with contextlib.suppress(GarrisonError):  # a refusal is audited too: it is collected
        call()


def test_every_action_a_workflow_records_is_a_member(tmp_path: Path) -> None:
    fastapi = pytest.importorskip("fastapi.testclient")
    from garrison.web import create_app

    ws = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN")
    try:
        folder = tmp_path / "in"
        folder.mkdir()
        (folder / "memo.txt").write_text(
            "SECRET\n\n(U) The depot opens on Monday.\n\n(S) Fuel moves Thursday.\n\nSECRET\n"
        )
        (folder / "public.txt").write_text("(U) The depot report covers forty trucks.\n")
        (folder / "spill.txt").write_text("TOP SECRET\n\n(TS) The spill plan.\n\nTOP SECRET\n")
        system = ws.session()
        system.add_user("ada", SubjectSpec(clearance="S", citizenship="USA", roles=("admin",)))
        system.add_user("vic", SubjectSpec(clearance="U", citizenship="USA", roles=("viewer",)))
        system.update_user("vic", SubjectSpec(groups=()))
        system.get_user("vic")
        system.list_users()
        system.registry_add("group", "HARBOR", members=("USA", "GBR"))
        system.registry_list()
        ingest_paths(system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED"))
        run_pipeline(system, parse_pipeline(PIPELINE, source="actions.yaml"))
        docs = Documents(system)
        listed = docs.list()
        memo = next(d for d in listed if d["filename"] == "memo.txt")
        docs.show(memo["id"], elements=True)
        docs.findings()
        Chunks(system).list()
        Lineage(system).of(memo["id"])
        dedup_report(system)
        search(system, "depot", k=5)
        jobs = Jobs(system)
        for job in jobs.list():
            jobs.show(job["id"])
        version = Datasets(system).create("depot", Selection(max_marking="UNCLASSIFIED"))
        Datasets(system).list()
        Datasets(system).get(version.id)
        export_version(system, version.id, "jsonl", tmp_path / "out")
        public = next(d for d in listed if d["filename"] == "public.txt")
        docs.remove(public["id"], "not needed")
        Datasets(system).delete(version.id)
        weights = tmp_path / "weights"
        weights.mkdir()
        (weights / "model.safetensors").write_bytes(b"weights")
        models = Models(system)
        model = models.register(kind="classifier", name="depot-cls", folder=weights)
        models.list()
        models.get(model.id)
        models.remove(model.id, "retired")
        vic = ws.session("vic")
        _quietly(lambda: vic.list_users())
        _quietly(lambda: Jobs(vic).list())
        _quietly(lambda: Models(vic).remove("depot-cls", "no"))
        _quietly(lambda: Documents(vic).show(memo["id"]))
        _quietly(lambda: ingest_paths(vic, [str(folder)], IngestOptions("UNCLASSIFIED")))
        _quietly(lambda: run_pipeline(vic, parse_pipeline(PIPELINE, source="actions.yaml")))
        secret = create_token(system, "ada", 30)[1]
        list_tokens(system)
        _quietly(lambda: authenticate(ws, "gt_not-a-token"))
        ada = ws.session("ada")
        ada.audit_tail(5)
        ada.audit_verify()
        ada.audit_export_checkpoint(tmp_path / "cp.json")
        with fastapi.TestClient(create_app(ws.root), follow_redirects=False) as client:
            page = client.get("/ui/login")
            form = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            client.post("/ui/login", data={"token": secret, "csrf": form})
            client.get("/ui/documents")
            client.post("/ui/logout", data={"csrf": "forged"})
            client.get("/v1/me", headers={"Authorization": f"Bearer {secret}"})
        revoke_token(system, next(t["id"] for t in list_tokens(system)))
        events = ws.audit.tail()
    finally:
        ws.close()
    actions = {e.action for e in events}
    members = {a.value for a in AuditAction}
    assert actions <= members, f"not AuditAction members: {sorted(actions - members)}"
    assert all(type(e.action) is str for e in events)
    # The workflow reached the enforcement points of every layer.
    assert {
        "workspace.init", "user.add", "user.update", "user.list", "registry.add", "ingest.start",
        "ingest.document", "ingest.spill", "job.start", "job.finish", "pipeline.run",
        "pipeline.write", "docs.list", "doc.read", "lineage.read", "search", "jobs.list",
        "dataset.create", "dataset.export", "dataset.delete", "document.remove", "token.create",
        "token.revoke", "login", "audit.read", "audit.verify", "audit.checkpoint", "web.login",
        "model.register", "model.list", "model.read", "model.remove",
    } <= actions, sorted(actions)  # fmt: skip
    assert any(e.decision == "deny" for e in events)
