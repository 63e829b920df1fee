"""Sessions: role checks, subjects, registry, and that every change is audited (fail closed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.core.errors import AuditWriteError, InvalidInput, NotFound, NotPermitted
from garrison.security.markings import parse_marking
from garrison.store.session import Session, SubjectSpec
from garrison.store.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path, catalog_url: str | None) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path / "ws", system_high="SECRET//NOFORN", db_url=catalog_url)
    yield workspace
    workspace.close()


@pytest.fixture
def system(ws: Workspace) -> Session:
    return ws.session()


def last_event(ws: Workspace):  # type: ignore[no-untyped-def]
    return ws.audit.tail(1)[0]


def test_add_user_derives_tokens_and_audits(ws: Workspace, system: Session) -> None:
    subject = system.add_user(
        "alice",
        SubjectSpec(
            clearance="TS",
            sci=("SI-G ABCD", "TK"),
            sap=("SAR-BP",),
            grants=("ORCON",),
            roles=("annotator",),
        ),
    )
    assert {"CLS:U", "CLS:C", "CLS:S", "CLS:TS"} <= subject.authorizations
    assert {"SCI:SI", "SCI:SI-G", "SCI:SI-G ABCD", "SCI:TK"} <= subject.authorizations
    assert {"SAP:BP", "DISSEM:ORCON", "CTRY:USA"} <= subject.authorizations
    event = last_event(ws)
    assert (event.action, event.actor, event.object_id, event.decision) == (
        "user.add",
        "system",
        "alice",
        "allow",
    )
    assert event.details["clearance"] == "TS"
    assert system.get_user("alice") == subject


def test_sci_needs_top_secret_and_nothing_is_written(ws: Workspace, system: Session) -> None:
    size = ws.audit.size
    with pytest.raises(InvalidInput, match="TOP SECRET"):
        system.add_user("bob", SubjectSpec(clearance="S", sci=("SI",)))
    with pytest.raises(NotFound):
        system.get_user("bob")
    assert ws.audit.size == size


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (SubjectSpec(clearance="Q"), "Unknown clearance"),
        (SubjectSpec(clearance="TS", sci=("ZZ",)), "Unknown SCI control"),
        (SubjectSpec(clearance="S", citizenship="XXX"), "Unknown citizenship"),
        (SubjectSpec(clearance="S", grants=("NOPE",)), "Unknown dissemination grant"),
        (SubjectSpec(clearance="S", roles=("king",)), "Unknown role"),
        (SubjectSpec(clearance="S", sap=("BP",)), "SAR-"),
        (SubjectSpec(), "needs a clearance"),
    ],
)
def test_bad_subjects_are_refused(system: Session, spec: SubjectSpec, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        system.add_user("carol", spec)


def test_duplicate_user(system: Session) -> None:
    system.add_user("dave", SubjectSpec(clearance="S"))
    with pytest.raises(InvalidInput, match="already exists"):
        system.add_user("dave", SubjectSpec(clearance="C"))


def test_update_user_is_audited_with_before_and_after(ws: Workspace, system: Session) -> None:
    system.add_user("erin", SubjectSpec(clearance="S", roles=("viewer",)))
    updated = system.update_user("erin", SubjectSpec(clearance="TS", sci=("SI",)))
    assert updated.authorizations >= {"CLS:TS", "SCI:SI"}
    event = last_event(ws)
    assert event.action == "user.update"
    assert event.details["before"]["clearance"] == "S"
    assert event.details["after"]["clearance"] == "TS"
    # Lowering the clearance below TS while read in to SCI is refused.
    with pytest.raises(InvalidInput, match="TOP SECRET"):
        system.update_user("erin", SubjectSpec(clearance="S"))


def test_non_admin_cannot_manage_users_and_the_denial_is_audited(
    ws: Workspace, system: Session
) -> None:
    system.add_user("frank", SubjectSpec(clearance="S", roles=("steward",)))
    frank = ws.session("frank")
    with pytest.raises(NotPermitted):
        frank.add_user("mallory", SubjectSpec(clearance="TS"))
    event = last_event(ws)
    assert (event.action, event.actor, event.decision) == ("user.add", "frank", "deny")
    assert "manage-users" in (event.reason or "")
    with pytest.raises(NotFound):
        system.get_user("mallory")
    # A user may see themselves, not others.
    assert frank.get_user("frank").name == "frank"
    with pytest.raises(NotPermitted):
        frank.list_users()
    system.add_user("gwen", SubjectSpec(clearance="C"))
    with pytest.raises(NotPermitted):
        frank.get_user("gwen")


def test_unknown_as_user_is_not_found_and_audited(ws: Workspace) -> None:
    with pytest.raises(NotFound, match="No user named 'ghost'"):
        ws.session("ghost")
    event = last_event(ws)
    assert (event.action, event.actor, event.decision) == ("session.open", "ghost", "deny")


def test_disabled_user_cannot_open_a_session(ws: Workspace, system: Session) -> None:
    system.add_user("gina", SubjectSpec(clearance="S"))
    system.update_user("gina", SubjectSpec(disabled=True))
    with pytest.raises(NotFound):
        ws.session("gina")


def test_audit_failure_means_the_action_did_not_happen(
    ws: Workspace, system: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise AuditWriteError("The audit log could not record the action.")

    monkeypatch.setattr(ws.audit, "append", broken)
    with pytest.raises(AuditWriteError):
        system.add_user("henry", SubjectSpec(clearance="S"))
    monkeypatch.undo()
    with pytest.raises(NotFound):
        system.get_user("henry")


def test_audit_failure_on_a_real_broken_log(ws: Workspace, system: Session) -> None:
    events = ws.root / "audit" / "events.jsonl"
    saved = events.read_bytes()
    events.unlink()
    events.mkdir()  # appending to a directory fails for everyone, root included
    with pytest.raises(AuditWriteError):
        system.add_user("ivan", SubjectSpec(clearance="S"))
    events.rmdir()
    events.write_bytes(saved)
    with pytest.raises(NotFound):
        system.get_user("ivan")


def test_registry_additions_extend_markings(ws: Workspace, system: Session) -> None:
    with pytest.raises(InvalidInput):
        system.parse_marking("TOP SECRET//ZX//NOFORN")
    system.registry_add("sci", "ZX")
    assert last_event(ws).action == "registry.add"
    assert system.parse_marking("TOP SECRET//ZX//NOFORN").banner() == "TOP SECRET//ZX//NOFORN"
    system.registry_add("group", "NORD", members=("DNK", "NOR", "SWE"))
    # init fills NATO-MEMBERS (MARKINGS.md 7.4).
    assert [e["name"] for e in system.registry_list()] == ["NATO-MEMBERS", "NORD", "ZX"]
    with pytest.raises(InvalidInput, match="already has"):
        system.registry_add("sci", "ZX")
    with pytest.raises(InvalidInput, match="Unknown registry kind"):
        system.registry_add("planet", "MARS")
    # Registered systems survive reopening.
    reopened = Workspace.open(ws.root)
    try:
        assert "ZX" in reopened.registry.sci_systems
    finally:
        reopened.close(checkpoint=False)


def test_audit_log_readers(ws: Workspace, system: Session) -> None:
    system.add_user("judy", SubjectSpec(clearance="S", roles=("admin",)))
    system.add_user("kate", SubjectSpec(clearance="TS", roles=("admin",)))
    system.add_user("leo", SubjectSpec(clearance="TS", roles=("viewer",)))
    # An admin cleared SECRET (US) dominates SECRET//NOFORN.
    assert ws.session("judy").audit_tail(2)
    assert ws.session("kate").audit_tail(1)[0].action == "audit.read"
    with pytest.raises(NotPermitted):
        ws.session("leo").audit_tail(1)
    system.add_user("mia", SubjectSpec(clearance="C", roles=("admin",)))
    with pytest.raises(NotPermitted, match="system high"):
        ws.session("mia").audit_tail(1)
    event = last_event(ws)
    assert (event.actor, event.action, event.decision) == ("mia", "audit.read", "deny")


def test_reads_are_decided_by_dominance(ws: Workspace, system: Session) -> None:
    system.add_user("nina", SubjectSpec(clearance="S", citizenship="GBR"))
    nina = ws.session("nina")
    assert nina.can_read(parse_marking("SECRET//REL TO USA, GBR"))
    assert not nina.can_read(parse_marking("SECRET//NOFORN"))
    # Above system high nobody reads, not even the system session.
    assert not system.can_read(parse_marking("TOP SECRET//NOFORN"))
    assert system.can_read(parse_marking("SECRET//NOFORN"))


def test_interned_markings_are_stable(ws: Workspace, system: Session) -> None:
    with ws.catalog.transaction() as orm:
        a = system.intern_marking(orm, parse_marking("SECRET//NOFORN"))
        b = system.intern_marking(orm, parse_marking("(S//NF)"))
        c = system.intern_marking(orm, parse_marking("CONFIDENTIAL"))
    assert a == b != c
