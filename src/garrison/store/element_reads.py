"""The elements one subject may read, with the headings above them it may read.

For capabilities that learn from the corpus (mining training pairs for an embedder): every
element comes through :meth:`Session.readable`, so nothing above the subject is ever loaded,
and its section path is the reader's view of it
(:func:`~garrison.store.views.visible_heading_markings`:
a heading the subject may not read is left out, as if it were not there). A readable element of
a document the subject may not read as a whole is returned too -- its text is readable, as in
search -- but nothing of that document (its title, its other parts) comes with it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select

from garrison.core.records import DocumentStatus
from garrison.security.markings import Marking, join
from garrison.store.models import DocumentRow, ElementRow, ElementState
from garrison.store.session import Session
from garrison.store.views import ReaderView, visible_heading_markings

__all__ = ["ReadableElement", "readable_elements"]


@dataclass(frozen=True)
class ReadableElement:
    """A readable element as its subject may see it."""

    id: str
    #: Its document's id -- for grouping only: not shown, since the subject may not read the
    #: document (``doc_readable`` says whether it may).
    doc_id: str
    doc_readable: bool
    seq: int
    type: str
    #: The pipeline's text for it when it has one (normalized, redacted), else the parsed text.
    text: str
    marking: Marking
    heading_level: int | None
    #: The readable headings of its section path, outermost first, each with its marking.
    headings: tuple[tuple[str, Marking], ...]
    #: The part of its document it came from (``subject``, ``body`` of an e-mail), if known.
    part: str | None
    #: The element its near-duplicate cluster is named after (itself when not a duplicate).
    cluster: str


def readable_elements(session: Session, types: Collection[str]) -> list[ReadableElement]:
    """Readable elements of the given ``types`` of parsed, current documents, in document and
    reading order (elements the pipeline dropped are left out)."""
    with session.workspace.catalog.transaction() as orm:
        view = ReaderView(session, orm)
        query = (
            select(ElementRow)
            .join(DocumentRow, DocumentRow.id == ElementRow.doc_id)
            .where(
                DocumentRow.status == DocumentStatus.PARSED.value,
                DocumentRow.superseded_by.is_(None),
                ElementRow.type.in_(sorted(types)),
            )
        )
        rows = list(
            orm.scalars(
                session.readable(orm, query, ElementRow.marking_id).order_by(
                    ElementRow.doc_id, ElementRow.seq
                )
            )
        )
        states: dict[str, ElementState] = {}
        ids = [r.id for r in rows]
        for start in range(0, len(ids), 500):
            some = ids[start : start + 500]
            for found in orm.scalars(select(ElementState).where(ElementState.element_id.in_(some))):
                states[found.element_id] = found
        markings: dict[int, Marking] = {}

        def marking(marking_id: int) -> Marking:
            if marking_id not in markings:
                found = session.marking_of(orm, marking_id)
                if found is None:  # every interned id has one; fail closed all the same
                    raise LookupError(f"no marking with id {marking_id}")
                markings[marking_id] = found
            return markings[marking_id]

        out: list[ReadableElement] = []
        for row in rows:
            state = states.get(row.id)
            if state is not None and (state.dropped or state.marking_id not in view.readable):
                # Dropped by the pipeline, or what it made of the element was marked higher
                # since (a raised document): neither is training text for this subject.
                continue
            item = marking(row.marking_id)
            if state is not None:
                item = join(item, marking(state.marking_id))
            data = row.data or {}
            path = data.get("section_path") or []
            raw_ids = data.get("section_marking_ids")
            headings = visible_heading_markings(
                [str(h) for h in path],
                [None if i is None else int(i) for i in raw_ids]
                if isinstance(raw_ids, list)
                else None,
                view.readable,
                view.doc_marking_id(row.doc_id),
            )
            level = data.get("heading_level")
            locator = data.get("locator")
            where = locator.get("part") if isinstance(locator, dict) else None
            out.append(
                ReadableElement(
                    id=row.id,
                    doc_id=row.doc_id,
                    doc_readable=view.reads_document(row.doc_id),
                    seq=row.seq,
                    type=row.type,
                    text=state.text if state is not None and state.text else row.text,
                    marking=item,
                    heading_level=int(level) if isinstance(level, int) else None,
                    headings=tuple((h, marking(m)) for h, m in headings),
                    part=str(where) if where is not None else None,
                    cluster=state.dup_of if state is not None and state.dup_of else row.id,
                )
            )
    return out
