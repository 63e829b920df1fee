"""The Ask page: questions to the assistant, its marked answers, and one's own conversations.

- ``/ask``: the question form (question, ``k``, a ceiling and the question's marking, each
  offered among the markings the subject may read) and, after a one-off question, the answer.
  A question kept in a conversation redirects to that conversation's page.
- ``/ask/conversations``: the subject's own conversations, newest first, in pages;
  ``/ask/conversations/{id}``: its turns and a follow-up form; ``.../delete`` deletes it.
  Another subject's conversation answers with the same 404 page as a missing one.
- ``POST /ask/stream`` and ``POST /ask/conversations/{id}/stream``: the same questions (same
  form fields, same CSRF token) answered as server-sent events, for the page's script
  (``static/ask.js``) to render as they arrive; the plain form posts stay the fallback when
  scripts are off. The events, in order: ``marking`` (the answer's marking and the page's
  banner once the answer is on it, with their banner classes -- always first, before any text),
  ``question``, one ``sentence`` per answer sentence, one ``citation`` per citation (link
  decided as on the page), and ``done`` (notes, generator, refusal, the conversation). A form
  the assistant refuses (an invalid field, a marking above the asker) answers 400 or 403 with one
  ``error`` event; a conversation that is not the asker's is the same 404 page as a missing one;
  a missing or wrong CSRF token is the page's 403.

The banner of an answer's page is the join of everything it shows: the answer's marking (which
dominates every sentence and citation on it). Answer and quoted text are data, never markup:
everything is escaped by the templates, and no link or image is made from it. A citation opens
the cited portion in the document viewer only when the subject may read the document, decided
afresh from the catalog by chunk (a stored turn keeps no document references); otherwise the
quote is shown with its portion mark and no link, so no document id the subject may not see is
ever on a page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from garrison.assist import DEFAULT_K, MAX_K, NEW_CONVERSATION, Conversations, ask
from garrison.assist._ask import MAX_QUESTION
from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.store.catalog_reads import CatalogView, catalog_view
from garrison.web._banner import PageMarkings, banner_style
from garrison.web._core import PREFIX, Viewer, ViewerDep, get_ui, redirect
from garrison.web._pages import CEILINGS, locator_text

__all__ = ["EVENT_STREAM", "register"]

#: The media type of the streamed answers.
EVENT_STREAM = "text/event-stream"

_SPACE = re.compile(r"\s+")
#: The longest conversation id a page looks up (ids are 32 hex digits).
_MAX_ID = 64


def _markings(viewer: Viewer) -> list[str]:
    """The markings offered on the form: those the subject may read."""
    session = viewer.session
    return [c for c in CEILINGS if session.can_read(session.parse_marking(c))]


def _form(viewer: Viewer, values: dict[str, Any] | None) -> dict[str, Any]:
    form: dict[str, Any] = {
        "question": "",
        "k": DEFAULT_K,
        "max_marking": "",
        "question_marking": "UNCLASSIFIED",
        "keep": True,
    }
    form.update(values or {})
    return {"form": form, "markings": _markings(viewer), "max_k": MAX_K}


def _flat(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _source(view: CatalogView, chunk_id: str, quote: str) -> tuple[str | None, str]:
    """The document viewer link to the cited portion and its locator, when the subject may
    read the chunk's document now; ``(None, "")`` otherwise."""
    chunk = view.readable_chunk(chunk_id)
    if chunk is None or not view.reads_document(chunk.doc_id):
        return None, ""
    wanted = _flat(quote)
    for element in view.readable_element_rows(chunk.element_ids or ()):
        if wanted and wanted in _flat(element.text):
            link = f"{PREFIX}/documents/{chunk.doc_id}#e-{element.id[:16]}"
            return link, locator_text(view.locator(chunk.doc_id, element.id))
    return f"{PREFIX}/documents/{chunk.doc_id}", ""


def _answer(
    view: CatalogView, page: PageMarkings, data: dict[str, Any], anchor: str
) -> dict[str, Any]:
    """An answer (its JSON form) as the page shows it; every marking on it goes on the page."""
    citations = []
    for c in data.get("citations", []):
        link, where = _source(view, str(c["chunk_id"]), str(c.get("quote", "")))
        citations.append(
            {
                "n": int(c["n"]),
                "portion": page.portion(str(c["marking"])),
                "quote": str(c.get("quote", "")),
                "link": link,
                "where": where,
                "section": " › ".join(c.get("section_path") or ()) if link else "",
            }
        )
    sentences = [
        {
            "text": str(s["text"]),
            "portion": page.portion(str(s["marking"])),
            "citations": [int(n) for n in s.get("citations", [])],
            "unsupported": bool(s.get("unsupported")),
        }
        for s in data.get("sentences", [])
    ]
    marking = str(data["marking"])
    page.add(marking)
    page.add(str(data.get("context_marking") or marking))
    return {
        "anchor": anchor,
        "marking": marking,
        "banner_class": banner_style(view.session.parse_marking(marking)).css_class,
        "question_portion": page.portion(str(data.get("question_marking") or "UNCLASSIFIED")),
        "question": str(data.get("question", "")),
        "refused": bool(data.get("refused")),
        "sentences": sentences,
        "citations": citations,
        "notes": [str(n) for n in data.get("notes", [])],
        "generator": str(data.get("generator", "")),
    }


def _ask_page(
    request: Request,
    viewer: Viewer,
    *,
    answer: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
    form: dict[str, Any] | None = None,
) -> Response:
    page = PageMarkings(viewer.session)
    context = _form(viewer, form)
    shown = None
    if answer is not None:
        with catalog_view(viewer.session) as view:
            shown = _answer(view, page, answer, "answer")
    context.update(answer=shown, error=error)
    return get_ui(request).render(request, "ask.html", context, page, status=status)


def _conversation_page(
    request: Request,
    viewer: Viewer,
    conversation_id: str,
    *,
    error: str | None = None,
    status: int = 200,
    form: dict[str, Any] | None = None,
) -> Response:
    page = PageMarkings(viewer.session)
    # NotFound (the one 404 page) unless the subject owns it and dominates it; audited.
    conversation = Conversations(viewer.session).get(conversation_id[:_MAX_ID])
    page.add(conversation.marking)
    with catalog_view(viewer.session) as view:
        turns = [
            _answer(view, page, {**turn["answer"], "question": turn["question"]}, f"turn-{n}")
            for n, turn in enumerate(conversation.turns, start=1)
        ]
    context = _form(viewer, form)
    context.update(
        conversation={
            "id": conversation.id,
            "marking": conversation.marking.banner(),
            "created_at": conversation.created_at.isoformat(),
            "updated_at": conversation.updated_at.isoformat(),
        },
        turns=turns,
        error=error,
    )
    return get_ui(request).render(request, "conversation.html", context, page, status=status)


def _asked(
    viewer: Viewer,
    question: str,
    k: int,
    max_marking: str,
    question_marking: str,
    conversation: str | None,
) -> dict[str, Any]:
    """The answer as JSON; raises the assistant's errors."""
    return ask(
        viewer.session,
        question,
        k=k,
        max_marking=max_marking.strip() or None,
        question_marking=question_marking.strip() or None,
        conversation=conversation,
    ).to_dict()


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _stream_response(events: list[str], marking: str, status: int = 200) -> Response:
    """Prepared events as an event stream; ``marking`` is the page's once they are shown."""

    def chunks() -> Iterator[str]:
        yield from events

    return StreamingResponse(
        chunks(),
        status_code=status,
        media_type=EVENT_STREAM,
        headers={"X-Garrison-Marking": marking, "X-Accel-Buffering": "no"},
    )


def _stream_error(status: int, message: str) -> Response:
    """A refused form as one ``error`` event (nothing marked is shown: UNCLASSIFIED)."""
    return _stream_response(
        [_event("error", {"status": status, "message": message})], "UNCLASSIFIED", status
    )


def _streamed(viewer: Viewer, data: dict[str, Any], *, follow_up: bool) -> Response:
    """The answer ``data`` as the page's events: every link and marking decided here, before
    the first byte, and the page's banner sent ahead of any text."""
    session = viewer.session
    page = PageMarkings(session)
    conversation_id = data.get("conversation_id")
    conversation_marking: str | None = None
    anchor = "answer"
    if conversation_id and follow_up:
        # The page already shows the conversation's earlier turns: its banner is the join of
        # them all and this answer, which the conversation's own marking now is.
        conversation = Conversations(session).get(str(conversation_id))
        conversation_marking = page.add(conversation.marking)
        anchor = f"turn-{len(conversation.turns)}"
    with catalog_view(session) as view:
        shown = _answer(view, page, data, anchor)
    if conversation_id and conversation_marking is None:
        conversation_marking = shown["marking"]  # a new conversation: this is its one turn
    page_marking = page.marking()
    events = [
        _event(
            "marking",
            {
                "marking": shown["marking"],
                "banner_class": shown["banner_class"],
                "context_marking": str(data.get("context_marking") or shown["marking"]),
                "page_marking": page_marking.banner(),
                "page_banner_class": page.style().css_class,
                "anchor": anchor,
            },
        ),
        _event(
            "question",
            {"text": shown["question"], "portion": shown["question_portion"]},
        ),
    ]
    events += [_event("sentence", s) for s in shown["sentences"]]
    events += [_event("citation", c) for c in shown["citations"]]
    events.append(
        _event(
            "done",
            {
                "refused": shown["refused"],
                "notes": shown["notes"],
                "generator": shown["generator"],
                "conversation_id": conversation_id,
                "conversation_url": (
                    f"{PREFIX}/ask/conversations/{conversation_id}" if conversation_id else None
                ),
                "conversation_marking": conversation_marking,
            },
        )
    )
    return _stream_response(events, page_marking.banner())


def _stream_question(
    viewer: Viewer,
    question: str,
    k: int,
    max_marking: str,
    question_marking: str,
    conversation: str | None,
    *,
    follow_up: bool,
) -> Response:
    try:
        # NotFound (the one 404 page) when a conversation is not the subject's to read.
        data = _asked(viewer, question, k, max_marking, question_marking, conversation)
    except InvalidInput as exc:
        return _stream_error(400, exc.message)
    except NotPermitted as exc:
        return _stream_error(403, exc.message)
    return _streamed(viewer, data, follow_up=follow_up)


def register(app: FastAPI) -> None:
    """Add the Ask pages to the UI app."""

    @app.get("/ask", response_class=HTMLResponse)
    def ask_form(request: Request, viewer: ViewerDep) -> Response:
        return _ask_page(request, viewer)

    @app.post("/ask", response_class=HTMLResponse)
    def ask_question(
        request: Request,
        viewer: ViewerDep,
        question: Annotated[str, Form(max_length=2 * MAX_QUESTION)] = "",
        k: Annotated[int, Form(ge=1, le=MAX_K)] = DEFAULT_K,
        max_marking: Annotated[str, Form(max_length=400)] = "",
        question_marking: Annotated[str, Form(max_length=400)] = "",
        keep: Annotated[str, Form(max_length=10)] = "",
        csrf: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        get_ui(request).check_csrf(viewer, csrf)
        form: dict[str, Any] = {
            "question": question,
            "k": k,
            "max_marking": max_marking,
            "question_marking": question_marking,
            "keep": bool(keep),
        }
        try:
            data = _asked(
                viewer,
                question,
                k,
                max_marking,
                question_marking,
                NEW_CONVERSATION if keep else None,
            )
        except InvalidInput as exc:
            return _ask_page(request, viewer, error=exc.message, status=400, form=form)
        except NotPermitted as exc:
            return _ask_page(request, viewer, error=exc.message, status=403, form=form)
        if data.get("conversation_id"):
            return redirect(f"{PREFIX}/ask/conversations/{data['conversation_id']}#latest")
        return _ask_page(request, viewer, answer=data, form=form)

    @app.post("/ask/stream")
    def ask_stream(
        request: Request,
        viewer: ViewerDep,
        question: Annotated[str, Form(max_length=2 * MAX_QUESTION)] = "",
        k: Annotated[int, Form(ge=1, le=MAX_K)] = DEFAULT_K,
        max_marking: Annotated[str, Form(max_length=400)] = "",
        question_marking: Annotated[str, Form(max_length=400)] = "",
        keep: Annotated[str, Form(max_length=10)] = "",
        csrf: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        get_ui(request).check_csrf(viewer, csrf)
        conversation = NEW_CONVERSATION if keep else None
        return _stream_question(
            viewer, question, k, max_marking, question_marking, conversation, follow_up=False
        )

    @app.get("/ask/conversations", response_class=HTMLResponse)
    def conversations(
        request: Request,
        viewer: ViewerDep,
        page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    ) -> Response:
        ui = get_ui(request)
        marks = PageMarkings(viewer.session)
        size = ui.settings.page_size
        found = Conversations(viewer.session).list()  # own, readable, newest first; audited
        rows = [
            {
                **c,
                "portion": marks.portion(c["marking"]),
                "first_question": c["first_question"][:120],
            }
            for c in found[(page - 1) * size : page * size]
        ]
        context = {
            "conversations": rows,
            "total": len(found),
            "page_no": page,
            "has_next": page * size < len(found),
        }
        return ui.render(request, "conversations.html", context, marks)

    @app.get("/ask/conversations/{conversation_id}", response_class=HTMLResponse)
    def conversation(request: Request, viewer: ViewerDep, conversation_id: str) -> Response:
        return _conversation_page(request, viewer, conversation_id)

    @app.post("/ask/conversations/{conversation_id}", response_class=HTMLResponse)
    def follow_up(
        request: Request,
        viewer: ViewerDep,
        conversation_id: str,
        question: Annotated[str, Form(max_length=2 * MAX_QUESTION)] = "",
        k: Annotated[int, Form(ge=1, le=MAX_K)] = DEFAULT_K,
        max_marking: Annotated[str, Form(max_length=400)] = "",
        question_marking: Annotated[str, Form(max_length=400)] = "",
        csrf: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        get_ui(request).check_csrf(viewer, csrf)
        wanted = conversation_id[:_MAX_ID]
        form: dict[str, Any] = {
            "question": question,
            "k": k,
            "max_marking": max_marking,
            "question_marking": question_marking,
        }
        try:
            # NotFound (the one 404 page) when the conversation is not the subject's to read.
            data = _asked(viewer, question, k, max_marking, question_marking, wanted)
        except InvalidInput as exc:
            return _conversation_page(
                request, viewer, wanted, error=exc.message, status=400, form=form
            )
        except NotPermitted as exc:
            return _conversation_page(
                request, viewer, wanted, error=exc.message, status=403, form=form
            )
        return redirect(f"{PREFIX}/ask/conversations/{data['conversation_id']}#latest")

    @app.post("/ask/conversations/{conversation_id}/stream")
    def follow_up_stream(
        request: Request,
        viewer: ViewerDep,
        conversation_id: str,
        question: Annotated[str, Form(max_length=2 * MAX_QUESTION)] = "",
        k: Annotated[int, Form(ge=1, le=MAX_K)] = DEFAULT_K,
        max_marking: Annotated[str, Form(max_length=400)] = "",
        question_marking: Annotated[str, Form(max_length=400)] = "",
        csrf: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        get_ui(request).check_csrf(viewer, csrf)
        wanted = conversation_id[:_MAX_ID]
        if wanted == NEW_CONVERSATION:  # a page streams into the conversation it shows
            raise NotFound(f"No conversation with id {wanted!r}.")
        return _stream_question(
            viewer, question, k, max_marking, question_marking, wanted, follow_up=True
        )

    @app.post("/ask/conversations/{conversation_id}/delete", response_class=HTMLResponse)
    def delete(
        request: Request,
        viewer: ViewerDep,
        conversation_id: str,
        csrf: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        get_ui(request).check_csrf(viewer, csrf)
        # Audited; NotFound (the one 404 page) when it is not the subject's.
        Conversations(viewer.session).delete(conversation_id[:_MAX_ID])
        return redirect(f"{PREFIX}/ask/conversations")
