"""Conversations: follow-ups use the history; stored sealed, marked, owner-only, deletable."""

from __future__ import annotations

import json

import pytest

from garrison.assist import NEW_CONVERSATION, Conversations, ask
from garrison.core.errors import CheckFailed, InvalidInput, NotFound
from garrison.security.markings import dominates, parse_marking
from garrison.store.session import SubjectSpec
from garrison.store.workspace import Workspace


def test_a_conversation_is_kept_marked_with_the_join_of_its_turns(ws: Workspace) -> None:
    session = ws.session("sue")
    first = ask(session, "Where does the zebrafox ferry leave from?", conversation="new")
    conv_id = first.conversation_id
    assert conv_id is not None and len(conv_id) == 32
    assert first.marking != "UNCLASSIFIED" or first.context_marking == "UNCLASSIFIED"
    second = ask(session, "walruspeak cargo crates", conversation=conv_id)
    assert second.conversation_id == conv_id
    # The history is part of what the second answer is made from.
    assert dominates(parse_marking(second.marking), parse_marking(first.marking))
    stored = Conversations(session).get(conv_id)
    assert [t["question"] for t in stored.turns] == [first.question, second.question]
    assert stored.marking == parse_marking(second.marking)
    assert stored.turns[1]["answer"]["answer"] == second.text
    listed = Conversations(session).list()
    assert conv_id in [c["id"] for c in listed]
    entry = next(c for c in listed if c["id"] == conv_id)
    assert entry["turns"] == 2 and entry["marking"] == stored.marking.banner()


def test_follow_up_questions_use_the_previous_question(ws: Workspace) -> None:
    session = ws.session("sue")
    first = ask(session, "When does the lynxbridge timetable change?", conversation="new")
    follow = ask(session, "and the timetable?", conversation=first.conversation_id)
    assert any("lynxbridge" in s.text for s in follow.sentences)


def test_only_the_owner_reads_it_and_others_see_nothing(ws: Workspace) -> None:
    owner = ws.session("sue")
    conv_id = ask(owner, "walruspeak crates", conversation="new").conversation_id
    assert conv_id is not None
    for other in ("sam", "tess", "uma"):  # same clearance, higher, lower: none is the owner
        store = Conversations(ws.session(other))
        with pytest.raises(NotFound) as missing:
            store.get(conv_id)
        with pytest.raises(NotFound) as unknown:
            store.get("0" * 32)
        assert str(missing.value).replace(conv_id, "X") == str(unknown.value).replace("0" * 32, "X")
        with pytest.raises(NotFound):
            ask(ws.session(other), "more crates", conversation=conv_id)
        with pytest.raises(NotFound):
            store.delete(conv_id)
        assert conv_id not in [c["id"] for c in store.list()]
    assert Conversations(owner).get(conv_id).id == conv_id  # still there
    denials = [
        e for e in ws.audit.tail(40) if e.decision == "deny" and e.action.startswith("conversation")
    ]
    assert denials


def test_an_owner_who_no_longer_dominates_it_cannot_read_it(ws: Workspace) -> None:
    system = ws.session()
    system.add_user("dana", SubjectSpec(clearance="S", roles=("viewer",)))
    conv_id = ask(ws.session("dana"), "walruspeak crates", conversation="new").conversation_id
    assert conv_id is not None
    system.update_user("dana", SubjectSpec(clearance="C"))
    lowered = Conversations(ws.session("dana"))
    with pytest.raises(NotFound):
        lowered.get(conv_id)
    assert conv_id not in [c["id"] for c in lowered.list()]
    with pytest.raises(NotFound):
        ask(ws.session("dana"), "crates", conversation=conv_id)
    system.update_user("dana", SubjectSpec(clearance="S"))
    assert Conversations(ws.session("dana")).get(conv_id).id == conv_id


def test_deletion(ws: Workspace) -> None:
    session = ws.session("sid")
    conv_id = ask(session, "zebrafox ferry", conversation=NEW_CONVERSATION).conversation_id
    assert conv_id is not None
    store = Conversations(session)
    store.delete(conv_id)
    with pytest.raises(NotFound):
        store.get(conv_id)
    assert conv_id not in [c["id"] for c in store.list()]
    assert any(
        e.action == "conversation.delete" and e.object_id == conv_id for e in ws.audit.tail(5)
    )


def test_stored_sealed_and_bound_to_owner_and_id(ws: Workspace) -> None:
    session = ws.session("sue")
    conv_id = ask(session, "walruspeak crates engine parts", conversation="new").conversation_id
    assert conv_id is not None
    files = list((ws.root / "conversations").rglob(f"{conv_id}.gcv"))
    assert len(files) == 1
    raw = files[0].read_bytes()
    assert raw[:4] == b"GRC1" and b"walruspeak" not in raw and b"crates" not in raw
    # Altered bytes fail closed.
    files[0].write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    with pytest.raises(CheckFailed):
        Conversations(session).get(conv_id)
    files[0].write_bytes(raw)
    # A file copied under another id does not open as that conversation.
    other = files[0].with_name("f" * 32 + ".gcv")
    other.write_bytes(raw)
    with pytest.raises(CheckFailed):
        Conversations(session).get("f" * 32)
    other.unlink()
    assert Conversations(session).get(conv_id).id == conv_id


def test_ceiling_applies_to_the_history(ws: Workspace) -> None:
    session = ws.session("sue")
    conv_id = ask(session, "walruspeak crates", conversation="new").conversation_id
    with pytest.raises(InvalidInput, match="conversation"):
        ask(session, "zebrafox", conversation=conv_id, max_marking="UNCLASSIFIED")


def test_listing_and_reading_are_audited_without_content(ws: Workspace) -> None:
    session = ws.session("sue")
    conv_id = ask(session, "walruspeak crates", conversation="new").conversation_id
    assert conv_id is not None
    Conversations(session).list()
    Conversations(session).get(conv_id)
    tail = ws.audit.tail(6)
    actions = [e.action for e in tail]
    assert "conversation.list" in actions and "conversation.read" in actions
    assert "walruspeak" not in json.dumps([e.model_dump(mode="json") for e in tail])


def test_stored_turns_keep_no_document_references(ws: Workspace) -> None:
    session = ws.session("sue")
    answer = ask(session, "Where does the walruspeak ferry leave from?", conversation="new")
    assert answer.citations[0].doc_id is not None  # shown to sue, who reads the document
    assert answer.conversation_id is not None
    stored = Conversations(session).get(answer.conversation_id)
    kept = stored.turns[0]["answer"]["citations"]
    assert kept
    assert all("doc_id" not in c and not c["locator"] and not c["section_path"] for c in kept)
    assert kept[0]["quote"] == answer.citations[0].quote
