"""Mail parsers: RFC 822 messages (stdlib ``email``), mbox files, Outlook ``.msg`` (python-oxmsg).

A message yields an ``EmailHeader`` element (typed :class:`EmailFields` plus the raw header
values, the subject left out), its subject as a ``Title`` of its own (locator part
``subject``: a subject may carry a portion mark, and a header element must not hold text above
its own marking), the body split into paragraphs, and each attachment as a
:class:`ParsedAttachment` that ingest turns into a child document. Both sides of a
``multipart/alternative`` body are read: the plain text (part ``body``) and the HTML (part
``body-html``, its paragraphs that the plain text does not already hold), since a mark may be in
either. An mbox yields each message as such a child. Banner lines at the top and bottom of a
body go to :attr:`ParsedDocument.banners`.
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.policy
import re
from email.message import EmailMessage, Message
from html.parser import HTMLParser
from typing import Any

from garrison.core.records import (
    ElementType,
    EmailFields,
    Extraction,
    ParsedAttachment,
    ParsedDocument,
    ParsedElement,
)
from garrison.parse._registry import ParseContext, ParseFailure, library_version, register_parser
from garrison.parse.office import OUTLOOK_MSG, split_banner_lines

__all__ = [
    "MAX_MBOX_MESSAGES",
    "MBOX",
    "OUTLOOK_MSG",
    "RFC822",
    "html_to_text",
    "parse_eml",
    "parse_mbox",
    "parse_msg",
    "split_mbox",
]

RFC822 = "message/rfc822"
MBOX = "application/mbox"
#: Messages one mbox may hold before it is refused as ``too-large``.
MAX_MBOX_MESSAGES = 100_000

_HEADER_NAMES = ("From", "To", "Cc", "Subject", "Date", "Message-ID")
_ANY_HEADER = (*_HEADER_NAMES, "MIME-Version", "Content-Type", "Received", "Sender")
_BLOCK_TAGS = (
    "p", "div", "br", "li", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "pre", "section", "article", "ul", "ol", "hr",
)  # fmt: skip
_SKIP_TAGS = ("script", "style", "head", "title", "noscript", "template")
# Errors the stdlib email package raises on malformed input (its header parsers are not total).
_EMAIL_ERRORS = (
    email.errors.MessageError,
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    UnicodeError,
)


# -- text helpers --------------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n" if tag == "br" else "\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _html_to_text_stdlib(markup: str) -> str:
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def _html_to_text_lxml(markup: str) -> str:
    import lxml.etree  # type: ignore[import-untyped]
    import lxml.html  # type: ignore[import-untyped]

    try:
        root = lxml.html.document_fromstring(markup)
    except (ValueError, lxml.etree.ParserError):
        return ""
    for el in list(root.iter(*_SKIP_TAGS)):
        el.drop_tree()
    for el in root.iter(*_BLOCK_TAGS):
        sep = "\n" if el.tag == "br" else "\n\n"
        el.tail = sep + (el.tail or "")
        if el.tag != "br":
            el.text = sep + (el.text or "")
    return str(root.text_content())


def html_to_text(markup: str) -> str:
    """Visible text of an HTML body, with blank lines between blocks (lxml if installed)."""
    try:
        import lxml.html  # noqa: F401
    except ImportError:  # pragma: no cover - lxml is installed in development
        return _html_to_text_stdlib(markup)
    return _html_to_text_lxml(markup)


def _paragraphs(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
    out: list[str] = []
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [" ".join(line.split()) for line in block.split("\n")]
        para = "\n".join(line for line in lines if line)
        if para:
            out.append(para)
    return out


def _body_elements(
    paragraphs: list[str], banners: list[str], part: str = "body"
) -> tuple[list[ParsedElement], list[str]]:
    """NarrativeText per paragraph; banner lines at the top and bottom go to ``banners``."""
    if paragraphs:
        top, paragraphs[0] = split_banner_lines(paragraphs[0])
        banners.extend(b for b in top if b not in banners)
    if paragraphs:
        bottom, paragraphs[-1] = split_banner_lines(paragraphs[-1], from_end=True)
        banners.extend(b for b in bottom if b not in banners)
    elements = [
        ParsedElement(type=ElementType.NARRATIVE_TEXT, text=p, locator={"part": part})
        for p in paragraphs
        if p
    ]
    return elements, banners


def _header_elements(fields: dict[str, str], mail: EmailFields) -> list[ParsedElement]:
    """The header element (From, To, Cc, Date, Message-ID) and the subject's own Title."""
    shown = {k: v for k, v in fields.items() if k != "Subject"}
    text = "\n".join(f"{k}: {v}" for k, v in shown.items())
    elements = [
        ParsedElement(
            type=ElementType.EMAIL_HEADER,
            text=text or "(no headers)",
            fields=shown,
            email=mail.model_copy(update={"subject": None}),
            locator={"part": "header"},
        )
    ]
    if mail.subject and mail.subject.strip():
        elements.append(
            ParsedElement(
                type=ElementType.TITLE,
                text=mail.subject.strip(),
                heading_level=1,
                fields={"Subject": mail.subject},
                email=EmailFields(subject=mail.subject),
                locator={"part": "subject"},
            )
        )
    return elements


def _both_bodies(
    plain: str, html: str, banners: list[str]
) -> tuple[list[ParsedElement], list[str]]:
    """Body elements of the plain text, then the HTML paragraphs the plain text lacks."""
    elements, banners = _body_elements(_paragraphs(plain), banners)
    if not html.strip():
        return elements, banners
    if not elements:
        return _body_elements(_paragraphs(html), banners)
    seen = {" ".join(e.text.split()) for e in elements}
    extra, banners = _body_elements(_paragraphs(html), banners, "body-html")
    elements.extend(e for e in extra if " ".join(e.text.split()) not in seen)
    return elements, banners


# -- RFC 822 -------------------------------------------------------------------------------------


def _unwrap_utf16(data: bytes) -> bytes:
    """A message saved as UTF-16 (a byte-order mark, or ASCII headers with NULs) as UTF-8."""
    codec = None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        codec = "utf-16"
    elif len(data) >= 4 and data[0] == 0 and data[2] == 0 and data[1] and data[3]:
        codec = "utf-16-be"
    elif len(data) >= 4 and data[1] == 0 and data[3] == 0 and data[0] and data[2]:
        codec = "utf-16-le"
    if codec is not None:
        try:
            return data.decode(codec).encode("utf-8")
        except UnicodeError as exc:
            raise ParseFailure("corrupt", "The message is not valid UTF-16.") from exc
    return data


def _decode_part(part: Message) -> str:
    try:
        content = part.get_content() if isinstance(part, EmailMessage) else None
        if isinstance(content, str):
            return content
    except _EMAIL_ERRORS:
        pass
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def _attachments(msg: Message, bodies: tuple[Message | None, ...]) -> list[ParsedAttachment]:
    """Every leaf part but the body's renderings, and every attached message, in document order.

    An inline text part that is not the body (a second text part, a list footer) is content a
    reader sees: it becomes a child document like any attachment."""
    found: list[ParsedAttachment] = []

    def visit(part: Message) -> None:
        ctype = part.get_content_type()
        if part is not msg and ctype == "message/rfc822":
            inner = part.get_payload()
            sub = inner[0] if isinstance(inner, list) and inner else None
            data = sub.as_bytes() if isinstance(sub, Message) else b""
            add(part, data, part.get_filename() or f"message-{len(found) + 1}.eml")
            return
        if part.is_multipart():
            for sub in part.get_payload():
                if isinstance(sub, Message):
                    visit(sub)
            return
        if part is msg or any(part is b for b in bodies):
            return  # the body (both sides of multipart/alternative) is read in place
        payload = part.get_payload(decode=True)
        add(part, payload if isinstance(payload, bytes) else b"", part.get_filename())

    def add(part: Message, data: bytes, filename: str | None) -> None:
        locator = {
            "part": "attachment",
            "index": len(found),
            "content_type": part.get_content_type(),
        }
        found.append(ParsedAttachment(filename=filename, data=data, locator=locator))

    visit(msg)
    return found


def _raw_header(msg: Message, name: str) -> str | None:
    """A header's text as written (unfolded), for when the structured parser cannot read it."""
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            return " ".join(str(value).split())
    return None


def _header_text(msg: Message, name: str) -> str | None:
    """A header's text as its author wrote it, encoded words decoded.

    Not the stdlib's structured rendering: its address parser is not total (some ``:`` and
    ``;`` sequences raise, others silently drop the rest of the header), and a reader must see
    every character a header carries."""
    raw = _raw_header(msg, name)
    if raw is None:
        return None
    try:
        return str(email.header.make_header(email.header.decode_header(raw)))
    except _EMAIL_ERRORS:
        return raw


def _addresses(msg: Message, name: str) -> tuple[str, ...]:
    try:
        header = msg.get(name)
        groups = getattr(header, "addresses", None)
        if groups is None:
            return (str(header),) if header else ()
        return tuple(str(a) for a in groups)
    except _EMAIL_ERRORS:
        raw = _raw_header(msg, name)
        return (raw,) if raw else ()


@register_parser(RFC822)
def parse_eml(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """An RFC 822 message: headers, subject, body paragraphs (plain preferred), attachments."""
    data = _unwrap_utf16(data)
    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        present = {key.lower() for key in msg}
        if not any(name.lower() in present for name in _ANY_HEADER):
            raise ParseFailure("corrupt", "The message has no RFC 822 headers.")
        fields = {
            name: text for name in _HEADER_NAMES if (text := _header_text(msg, name)) is not None
        }
        try:
            sent_at = getattr(msg.get("Date"), "datetime", None)
        except _EMAIL_ERRORS:
            sent_at = None
        mail = EmailFields(
            sender=fields.get("From"),
            to=_addresses(msg, "To"),
            cc=_addresses(msg, "Cc"),
            subject=fields.get("Subject"),
            message_id=fields.get("Message-ID"),
            sent_at=sent_at,
        )
        body = msg.get_body(preferencelist=("plain", "html")) if msg.is_multipart() else msg
        text = html_text = ""
        html_part: Message | None = None
        if body is not None and body.get_content_maintype() == "text":
            text = _decode_part(body)
            if body.get_content_subtype() == "html":
                text = html_to_text(text)
            elif msg.is_multipart():
                html_part = msg.get_body(preferencelist=("html",))
                if html_part is not None and html_part is not body:
                    html_text = html_to_text(_decode_part(html_part))
        else:
            body = None
        attachments = _attachments(msg, (body, html_part))
    except ParseFailure:
        raise
    except _EMAIL_ERRORS as exc:
        detail = f"The message could not be read ({type(exc).__name__})."
        raise ParseFailure("corrupt", detail) from exc
    elements = _header_elements(fields, mail)
    body_elements, banners = _both_bodies(text, html_text, [])
    elements.extend(body_elements)
    return ParsedDocument(
        media_type=RFC822,
        elements=tuple(elements),
        title=mail.subject,
        author=mail.sender,
        created=sent_at,
        banners=tuple(banners),
        attachments=tuple(attachments),
        extraction=Extraction(method="native", parser="garrison.mail", parser_version="stdlib"),
    )


# -- mbox ----------------------------------------------------------------------------------------

_FROM_LINE = re.compile(rb"^From ", re.MULTILINE)
_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)


def split_mbox(data: bytes) -> list[bytes]:
    """The messages of an mbox: split at ``From `` lines, ``>From`` quoting undone."""
    if not data.startswith(b"From "):
        raise ParseFailure("corrupt", "The mbox does not start with a 'From ' line.")
    starts = [m.start() for m in _FROM_LINE.finditer(data)]
    if len(starts) > MAX_MBOX_MESSAGES:
        raise ParseFailure("too-large", "The mbox holds more messages than the parse limit.")
    messages: list[bytes] = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(data)
        chunk = data[start:end]
        newline = chunk.find(b"\n")
        body = chunk[newline + 1 :] if newline >= 0 else b""
        messages.append(_QUOTED_FROM.sub(rb"\1", body).rstrip(b"\r\n") + b"\n")
    return messages


@register_parser(MBOX)
def parse_mbox(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """An mbox: each message becomes a child document (``message-<n>.eml``)."""
    messages = split_mbox(data)
    attachments = tuple(
        ParsedAttachment(
            filename=f"message-{n}.eml", data=raw, locator={"part": "message", "index": n - 1}
        )
        for n, raw in enumerate(messages, 1)
    )
    summary = ParsedElement(
        type=ElementType.KEY_VALUE,
        text=f"mbox with {len(messages)} messages",
        fields={"messages": len(messages)},
    )
    return ParsedDocument(
        media_type=MBOX,
        elements=(summary,),
        attachments=attachments,
        extraction=Extraction(method="native", parser="garrison.mail", parser_version="stdlib"),
    )


# -- Outlook .msg --------------------------------------------------------------------------------

_PID_RECIPIENT_TYPE = 0x0C15
_ENCRYPTED_NAMES = (".pgp-encrypted", "smime.p7m")


def _msg_recipients(message: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    to: list[str] = []
    cc: list[str] = []
    for recipient in message.recipients:
        kind = recipient.properties.int_prop_value(_PID_RECIPIENT_TYPE)
        name, address = recipient.name, recipient.email_address
        text = f"{name} <{address}>" if name and address and name != address else address or name
        if not text:
            continue
        if kind == 2:
            cc.append(text)
        elif kind != 3:  # blind copies are not part of what the recipients saw
            to.append(text)
    return tuple(to), tuple(cc)


def _msg_html(message: Any, *, has_text: bool) -> tuple[str, str | None]:
    """The HTML body's text, and a warning when it exists but cannot be read.

    Without a plain-text body a failure is the message's failure (nothing else to read)."""
    try:
        markup = message.html_body
        return (html_to_text(markup) if markup else ""), None
    except Exception:  # oxmsg decodes RTF-wrapped HTML; a broken one must not lose the rest
        if not has_text:
            raise
        return "", "unreadable-content: the HTML body"


@register_parser(OUTLOOK_MSG, libraries=("oxmsg",))
def parse_msg(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """An Outlook ``.msg``: sender, recipients, subject, sent date, body, attachments."""
    import oxmsg

    try:
        message = oxmsg.Message.load(data)
        message_class = message.message_class or ""
        raw_attachments = [(a.file_name, a.file_bytes) for a in message.attachments]
        names = [str(n or "").lower() for n, _ in raw_attachments]
        if message_class.upper().startswith("IPM.NOTE.SMIME") and "MULTIPARTSIGNED" not in (
            message_class.upper()
        ):
            raise ParseFailure("encrypted", "The Outlook message is S/MIME encrypted.")
        if any(n.endswith(_ENCRYPTED_NAMES) for n in names):
            raise ParseFailure("encrypted", "The Outlook message body is encrypted.")
        to, cc = _msg_recipients(message)
        subject = message.subject or None
        sender = message.sender
        sent_at = message.sent_date
        headers = message.message_headers
        text = message.body or ""
        html_text, html_problem = _msg_html(message, has_text=bool(text.strip()))
    except ParseFailure:
        raise
    except Exception as exc:  # oxmsg/olefile raise ValueError, OSError, struct.error...
        raise ParseFailure(
            "corrupt", f"The Outlook message could not be read ({type(exc).__name__})."
        ) from exc
    fields: dict[str, str] = {}
    if sender:
        fields["From"] = sender
    if to:
        fields["To"] = ", ".join(to)
    if cc:
        fields["Cc"] = ", ".join(cc)
    if subject:
        fields["Subject"] = subject
    if sent_at is not None:
        fields["Date"] = sent_at.isoformat()
    if headers.get("Message-ID"):
        fields["Message-ID"] = headers["Message-ID"]
    mail = EmailFields(
        sender=sender,
        to=to,
        cc=cc,
        subject=subject,
        message_id=fields.get("Message-ID"),
        sent_at=sent_at,
    )
    elements = _header_elements(fields, mail)
    body_elements, banners = _both_bodies(text, html_text, [])
    elements.extend(body_elements)
    warnings: list[str] = [html_problem] if html_problem else []
    attachments: list[ParsedAttachment] = []
    for i, (name, payload) in enumerate(raw_attachments):
        if payload is None:
            # An embedded message or OLE object: its content cannot be read.
            warnings.append(f"unreadable-content: attachment {i + 1} ({name or 'unnamed'})")
            continue
        locator = {"part": "attachment", "index": i}
        attachments.append(ParsedAttachment(filename=name, data=payload, locator=locator))
    return ParsedDocument(
        media_type=OUTLOOK_MSG,
        elements=tuple(elements),
        title=subject,
        author=sender,
        created=sent_at,
        banners=tuple(banners),
        attachments=tuple(attachments),
        extraction=Extraction(
            method="native", parser="garrison.mail", parser_version=library_version("python-oxmsg")
        ),
        warnings=tuple(warnings),
    )
