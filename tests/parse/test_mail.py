"""Mail parsers: .eml built with EmailMessage, mbox splitting, .msg from the corpus."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.core.records import ElementType
from garrison.parse import ParseContext, ParseFailure, parser_for
from garrison.parse.mail import (
    MBOX,
    OUTLOOK_MSG,
    RFC822,
    html_to_text,
    parse_eml,
    parse_mbox,
    parse_msg,
    split_mbox,
)
from garrison.parse.mail import _html_to_text_stdlib as html_to_text_stdlib
from tests.conftest import require

CORPUS = Path(__file__).resolve().parents[3] / "shared/corpus/public/unstructured"
MARKED = Path(__file__).resolve().parents[3] / "shared/corpus/marked/docs"
CTX = ParseContext()


def _require(path: Path) -> None:
    require(path.is_dir(), f"{path} is absent")


def _message(html: bool = False) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Ann Analyst <ann@example.mil>"
    msg["To"] = "ops@example.mil, Bob <bob@example.mil>"
    msg["Cc"] = "cc@example.mil"
    msg["Subject"] = "(S) Roster"
    msg["Date"] = "Tue, 10 Mar 2026 09:15:00 +0000"
    msg["Message-ID"] = "<roster@example.mil>"
    body = "SECRET\n\n(S) First paragraph\nstill first.\n\n(U) Second paragraph.\n\nSECRET\n"
    msg.set_content(body)
    if html:
        msg.add_alternative("<html><body><p>HTML only</p></body></html>", subtype="html")
    msg.add_attachment(b"col1,col2\n1,2\n", maintype="text", subtype="csv", filename="a.csv")
    msg.add_attachment(b"\x89PNG fake", maintype="image", subtype="png", filename="p.png")
    return msg


def test_eml_headers_subject_body_attachments() -> None:
    doc = parse_eml(_message().as_bytes(), CTX)
    header, subject, *body = doc.elements
    assert header.type == ElementType.EMAIL_HEADER
    assert header.fields["From"] == "Ann Analyst <ann@example.mil>"
    # The subject is its own element (its portion mark marks it), never part of the header.
    assert "Subject" not in header.fields
    assert "Roster" not in header.text
    assert {"To", "Date", "Cc", "Message-ID"} <= header.fields.keys()
    assert header.email is not None
    assert header.email.sender == "Ann Analyst <ann@example.mil>"
    assert header.email.to == ("ops@example.mil", "Bob <bob@example.mil>")
    assert header.email.cc == ("cc@example.mil",)
    assert header.email.message_id == "<roster@example.mil>"
    assert header.email.sent_at == datetime(2026, 3, 10, 9, 15, tzinfo=UTC)
    assert header.email.subject is None
    assert (subject.type, subject.text) == (ElementType.TITLE, "(S) Roster")
    assert subject.locator == {"part": "subject"}
    assert subject.email is not None and subject.email.subject == "(S) Roster"
    assert [(e.type, e.text, e.locator) for e in body] == [
        (ElementType.NARRATIVE_TEXT, "(S) First paragraph\nstill first.", {"part": "body"}),
        (ElementType.NARRATIVE_TEXT, "(U) Second paragraph.", {"part": "body"}),
    ]
    assert doc.banners == ("SECRET",)
    assert [(a.filename, a.data) for a in doc.attachments] == [
        ("a.csv", b"col1,col2\n1,2\n"),
        ("p.png", b"\x89PNG fake"),
    ]
    assert doc.attachments[1].locator["part"] == "attachment"
    assert doc.attachments[1].locator["index"] == 1
    assert doc.title == "(S) Roster"
    assert doc.extraction.parser == "garrison.mail"


def test_eml_reads_both_sides_of_multipart_alternative() -> None:
    doc = parse_eml(_message(html=True).as_bytes(), CTX)
    body = [(e.text, e.locator) for e in doc.elements if e.locator.get("part") != "header"]
    assert ("HTML only", {"part": "body-html"}) in body
    assert ("(U) Second paragraph.", {"part": "body"}) in body
    assert len(doc.attachments) == 2  # the HTML alternative is not an attachment


def test_eml_html_part_marks_are_found_beside_the_plain_text() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.mil"
    msg["Subject"] = "(U) Status"
    msg.set_content("(U) All quiet.\n\n(U) Nothing to report.\n")
    msg.add_alternative(
        "<html><body><p>(U) All quiet.</p><p>(TS//SI//NF) html canary grid 7</p>"
        "<p>SECRET//NOFORN</p></body></html>",
        subtype="html",
    )
    doc = parse_eml(msg.as_bytes(), CTX)
    html_part = [e.text for e in doc.elements if e.locator == {"part": "body-html"}]
    # The paragraph both sides hold is read once; the HTML-only one keeps its mark first.
    assert html_part == ["(TS//SI//NF) html canary grid 7"]
    assert "SECRET//NOFORN" in doc.banners
    plain = [e.text for e in doc.elements if e.locator == {"part": "body"}]
    assert plain == ["(U) All quiet.", "(U) Nothing to report."]


def test_eml_html_only_body() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.mil"
    msg["Subject"] = "html"
    msg.set_content(
        "<html><head><style>p{}</style><script>x()</script></head>"
        "<body><p>One &amp; done</p><div>Two<br>lines</div></body></html>",
        subtype="html",
    )
    doc = parse_eml(msg.as_bytes(), CTX)
    body = [e.text for e in doc.elements if e.locator == {"part": "body"}]
    assert body == ["One & done", "Two\nlines"]


def test_html_to_text_both_paths_agree() -> None:
    markup = "<p>Alpha</p><script>bad()</script><ul><li>b</li><li>c</li></ul>"
    for text in (html_to_text(markup), html_to_text_stdlib(markup)):
        paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
        assert paragraphs == ["Alpha", "b", "c"]
    assert html_to_text("") == ""


def test_eml_attached_message_is_a_child() -> None:
    outer = EmailMessage()
    outer["From"] = "a@example.mil"
    outer["Subject"] = "fwd"
    outer.set_content("see attached")
    outer.add_attachment(_message())
    doc = parse_eml(outer.as_bytes(), CTX)
    assert len(doc.attachments) == 1
    child = parse_eml(doc.attachments[0].data, CTX)
    assert child.title == "(S) Roster"


@pytest.mark.parametrize("data", [b"", b"\x00\x01\x02garbage", b"just some words\n"])
def test_eml_without_headers_is_corrupt(data: bytes) -> None:
    with pytest.raises(ParseFailure) as info:
        parse_eml(data, CTX)
    assert info.value.reason == "corrupt"


def test_eml_utf16() -> None:
    raw = _message().as_bytes()
    for codec in ("utf-16", "utf-16-be", "utf-16-le"):
        doc = parse_eml(raw.decode().encode(codec), CTX)
        assert doc.title == "(S) Roster"


def test_eml_bad_date_and_charset_still_parse() -> None:
    raw = (
        b"From: a@example.mil\nSubject: x\nDate: not a date\n"
        b"Content-Type: text/plain; charset=no-such-charset\n\nbody text\n"
    )
    doc = parse_eml(raw, CTX)
    assert doc.elements[0].email is not None
    assert doc.elements[0].email.sent_at is None
    assert doc.elements[-1].text == "body text"


@pytest.mark.parametrize("header", ["From", "To", "Cc", "Message-ID", "Date"])
@pytest.mark.parametrize("value", ["x:y;z <a@b>", "foo: bar; baz:", "a;b:c", "Undisclosed:;"])
def test_eml_malformed_address_headers_keep_the_message(header: str, value: str) -> None:
    """The stdlib's header parser fails on some ``:``/``;`` sequences: the header falls back to
    its raw text and the message is still read, never quarantined as corrupt for it."""
    others = {"From": "a@example.mil", "Subject": "(U) Status"}
    others[header] = value
    raw = "".join(f"{k}: {v}\n" for k, v in others.items()) + "\n(U) The body survives.\n"
    doc = parse_eml(raw.encode(), CTX)
    assert doc.title == "(U) Status"
    assert doc.elements[-1].text == "(U) The body survives."
    head = doc.elements[0]
    assert head.type == ElementType.EMAIL_HEADER
    if header not in ("Subject",):
        assert head.fields[header].replace(" ", "") == value.replace(" ", "")


def test_eml_encoded_word_headers_are_decoded() -> None:
    raw = b"From: =?utf-8?q?Ren=C3=A9e?= <r@example.mil>\nSubject: =?utf-8?b?KFUpIGNhZsOp?=\n\nx\n"
    doc = parse_eml(raw, CTX)
    assert doc.title == "(U) caf\u00e9"
    assert doc.elements[0].fields["From"] == "Ren\u00e9e <r@example.mil>"


@given(value=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
@settings(max_examples=150)
def test_eml_any_printable_from_header_parses(value: str) -> None:
    raw = f"From: {value}\nTo: {value}\nSubject: s\n\nbody\n".encode()
    doc = parse_eml(raw, CTX)
    assert doc.elements[-1].text == "body"


def test_mbox() -> None:
    one = _message().as_bytes()
    two = b"From: b@example.mil\nSubject: two\n\nline\n>From the start\n"
    data = b"From a@x Thu Jan 1 00:00:00 2026\n" + one + b"\nFrom b@x Fri Jan 2 2026\n" + two
    messages = split_mbox(data)
    assert len(messages) == 2
    assert b"\nFrom the start\n" in messages[1]
    doc = parse_mbox(data, CTX)
    assert doc.elements[0].type == ElementType.KEY_VALUE
    assert doc.elements[0].text == "mbox with 2 messages"
    assert [a.filename for a in doc.attachments] == ["message-1.eml", "message-2.eml"]
    assert parse_eml(doc.attachments[0].data, CTX).title == "(S) Roster"
    with pytest.raises(ParseFailure) as info:
        parse_mbox(b"not an mbox", CTX)
    assert info.value.reason == "corrupt"


@pytest.mark.parametrize(
    "data", [b"", b"not ole", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600]
)
def test_msg_bad_input_is_corrupt(data: bytes) -> None:
    with pytest.raises(ParseFailure) as info:
        parse_msg(data, CTX)
    assert info.value.reason == "corrupt"


def test_registered() -> None:
    assert parser_for(RFC822) is parse_eml
    assert parser_for(MBOX) is parse_mbox
    assert parser_for(OUTLOOK_MSG) is parse_msg


# -- corpus --------------------------------------------------------------------------------------

_PARSERS = {".eml": parse_eml, ".msg": parse_msg, ".mbox": parse_mbox}


def _corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.suffix in _PARSERS)


@pytest.mark.parametrize("path", _corpus_files(), ids=lambda p: p.name)
def test_corpus_file_parses_or_fails_cleanly(path: Path) -> None:
    try:
        doc = _PARSERS[path.suffix](path.read_bytes(), CTX)
    except ParseFailure as exc:
        reason: str | None = exc.reason
    else:
        reason = None
        assert any(e.text.strip() for e in doc.elements)
    assert reason in {None, "encrypted", "corrupt", "too-large", "hostile-content"}


def test_corpus_facts() -> None:
    _require(CORPUS)
    eml = parse_eml((CORPUS / "fake-email.eml").read_bytes(), CTX)
    assert {"From", "To"} <= eml.elements[0].fields.keys()
    assert any(e.locator == {"part": "subject"} for e in eml.elements)
    attached = parse_eml((CORPUS / "eml/fake-email-attachment.eml").read_bytes(), CTX)
    assert attached.attachments
    assert attached.attachments[0].data
    msg = parse_msg((CORPUS / "fake-email.msg").read_bytes(), CTX)
    fields = msg.elements[0].fields
    assert "mrobinson@unstructured.io" in fields["From"]
    assert "Subject" not in fields
    subject = next(e for e in msg.elements if e.locator == {"part": "subject"})
    assert (subject.type, subject.text) == (ElementType.TITLE, "Test Email")
    assert msg.elements[0].email is not None
    assert msg.elements[0].email.sent_at is not None
    assert any("Roses are red" in e.text for e in msg.elements)
    with pytest.raises(ParseFailure) as info:
        parse_msg((CORPUS / "fake-encrypted.msg").read_bytes(), CTX)
    assert info.value.reason == "encrypted"


def test_marked_corpus_eml() -> None:
    _require(MARKED)
    files = sorted(MARKED.glob("*.eml"))
    assert files
    for path in files:
        doc = parse_eml(path.read_bytes(), CTX)
        assert doc.banners, path.name
        body = [e for e in doc.elements if e.locator == {"part": "body"}]
        assert body, path.name
        assert body[0].text.startswith("("), path.name  # portion marks stay for ingest
        assert not any(e.text in doc.banners for e in body), path.name


def test_eml_inline_text_part_beside_the_body_is_a_child() -> None:
    """A second inline text part is seen by a reader: it is ingested (as a child), not dropped."""
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText

    msg = MIMEMultipart("mixed")
    msg["From"] = "a@example.mil"
    msg["Subject"] = "(U) Two parts"
    msg.attach(MIMEText("(U) The body.\n", "plain"))
    msg.attach(MIMEText("(TS//SI//NF) footer canary\n", "plain"))
    doc = parse_eml(msg.as_bytes(), CTX)
    assert [e.text for e in doc.elements if e.locator == {"part": "body"}] == ["(U) The body."]
    assert [a.data for a in doc.attachments] == [b"(TS//SI//NF) footer canary\n"]
