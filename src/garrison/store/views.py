"""What one reader may see of a chunk, an element or a search hit -- the one place that decides.

A record the reader may read can still carry fields above the reader: a heading in its
``section_path`` marked higher than the text under it, or the reference to a document marked
higher than this one part of it. The rule everywhere (search hits, ``chunks ls``, lineage, the
web pages and the API) is the same: such a field is *withheld* -- left out, never shown as a
blank or a placeholder that would say something is there.

- a ``section_path`` heading is shown only when the reader dominates its marking; a heading
  whose marking is not known (a record made before headings carried markings) counts as marked
  at its document's marking, so a reader who may not read the document gets no headings;
- the document reference -- ``doc_id``, title, uri, filename, the locator inside the document --
  is shown only to readers who dominate the document's marking;
- ``seq``, the position in the document, is shown as stored only to readers who dominate the
  document; anyone else gets the record's position among the records of that document they may
  read (gaps would tell them how much is hidden);
- ``embedding_model``, the model a chunk's vector came from, is shown only to readers who may
  read that model: a chunk's vector is marked with the join of the chunk's and its embedder's
  markings, so an UNCLASSIFIED chunk embedded by a SECRET-trained model shows an UNCLASSIFIED
  reader no embedding at all (as a chunk that was never embedded), and its lineage no embed step.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session as OrmSession

from garrison.core.records import DocumentStatus
from garrison.store.bindings import Binder, binding_columns, verify_columns
from garrison.store.models import ChunkRow, DocumentRow, ElementRow, ModelVersionRow
from garrison.store.session import Session

__all__ = ["ReaderView", "registered_model_ref", "visible_heading_markings", "visible_headings"]

_ID12 = re.compile(r"[0-9a-f]{12}")


def registered_model_ref(name: str | None) -> tuple[str, str] | None:
    """``(name, id prefix)`` of a recorded ``NAME@ID12`` model (a registered version), else
    ``None`` (the shipped model, ``hashing``, a ``local:`` folder, nothing)."""
    if not name or name.startswith("local:"):
        return None
    base, at, prefix = name.rpartition("@")
    if not at or not base or not _ID12.fullmatch(prefix):
        return None
    return base, prefix


def visible_headings(
    path: Sequence[str],
    marking_ids: Sequence[int | None] | None,
    readable: frozenset[int],
    doc_marking_id: int | None,
) -> list[str]:
    """The headings of ``path`` the reader may read, in order (the others are dropped).

    ``marking_ids`` is aligned with ``path``; a missing list, a missing entry or a null entry
    stands for the document's marking (``doc_marking_id``); a document with no marking (not
    parsed) makes such a heading unreadable.
    """
    return [
        heading
        for heading, _ in visible_heading_markings(path, marking_ids, readable, doc_marking_id)
    ]


def visible_heading_markings(
    path: Sequence[str],
    marking_ids: Sequence[int | None] | None,
    readable: frozenset[int],
    doc_marking_id: int | None,
) -> list[tuple[str, int]]:
    """:func:`visible_headings`, each heading with the marking id it is judged by."""
    ids = list(marking_ids or ())
    out: list[tuple[str, int]] = []
    for index, heading in enumerate(path):
        marking_id = ids[index] if index < len(ids) else None
        if marking_id is None:
            marking_id = doc_marking_id
        if marking_id is not None and marking_id in readable:
            out.append((str(heading), marking_id))
    return out


class ReaderView:
    """The reader's view of derived records, for one catalog transaction ``orm``."""

    def __init__(self, session: Session, orm: OrmSession) -> None:
        self.session = session
        self.orm = orm
        self.readable = session.readable_marking_ids(orm)
        self._doc_marking: dict[str, int | None] = {}
        self._positions: dict[tuple[str, str], dict[int, int]] = {}
        self._models: dict[str, bool] = {}
        self._elements: dict[str, bool] = {}  # element id -> readable (binding verified)
        self._element_rows: dict[str, ElementRow] = {}  # readable rows read ahead (locator)
        self._binder = session.workspace.catalog.binder

    # -- documents ---------------------------------------------------------------------------------

    def doc_marking_id(self, doc_id: str) -> int | None:
        """The current marking id of a parsed document (``None``: not parsed or not there)."""
        if doc_id not in self._doc_marking:
            row = self.orm.get(DocumentRow, doc_id)
            self._doc_marking[doc_id] = (
                row.marking_id
                if row is not None and row.status == DocumentStatus.PARSED.value
                else None
            )
        return self._doc_marking[doc_id]

    def load_documents(
        self,
        doc_ids: Sequence[str],
        verify: Callable[[Binder, Iterable[Row[Any]], type[Any]], list[Row[Any]]] | None = None,
    ) -> None:
        """Read the markings of many documents at once (as :meth:`doc_marking_id` would one
        by one: each row's binding verified, one that fails counts as not there). ``verify``
        checks the rows' bindings instead of :func:`verify_columns` (it must be as strict)."""
        wanted = [d for d in dict.fromkeys(doc_ids) if d not in self._doc_marking]
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            query = select(*binding_columns(DocumentRow), DocumentRow.status.label("_status"))
            rows = self.orm.execute(query.where(DocumentRow.id.in_(part)))
            checked = (
                verify(self._binder, rows, DocumentRow)
                if verify is not None
                else verify_columns(self._binder, rows, (DocumentRow, ""))
            )
            found = {
                r.id: (r.marking_id if r._status == DocumentStatus.PARSED.value else None)
                for r in checked
            }
            for doc_id in part:
                self._doc_marking[doc_id] = found.get(doc_id)

    def reads_document(self, doc_id: str) -> bool:
        """Whether the reader dominates the document (and may therefore see references to it)."""
        marking_id = self.doc_marking_id(doc_id)
        return marking_id is not None and marking_id in self.readable

    def banner(self, marking_id: int | None) -> str | None:
        marking = self.session.marking_of(self.orm, marking_id)
        return marking.banner() if marking is not None else None

    # -- fields ------------------------------------------------------------------------------------

    def headings(
        self, doc_id: str, path: Sequence[str], marking_ids: Sequence[int | None] | None
    ) -> list[str]:
        """The readable headings of a record's section path."""
        return visible_headings(path, marking_ids, self.readable, self.doc_marking_id(doc_id))

    def embedding_model(self, name: str | None) -> str | None:
        """A chunk's recorded embedding model, when the reader may read it; else ``None``.

        A registered version (``NAME@ID12``) is readable when the reader dominates its marking
        (removed versions included: their vectors remain); the shipped and unregistered models
        are UNCLASSIFIED.
        """
        ref = registered_model_ref(name)
        if ref is None or name is None:
            return name
        if name not in self._models:
            query = select(ModelVersionRow.id).where(
                ModelVersionRow.name == ref[0],
                ModelVersionRow.id.startswith(ref[1], autoescape=True),
            )
            query = self.session.readable(self.orm, query, ModelVersionRow.marking_id)
            self._models[name] = self.orm.scalar(query.limit(1)) is not None
        return name if self._models[name] else None

    def seq(self, kind: str, doc_id: str, seq: int) -> int:
        """``seq`` as stored for readers of the document; otherwise the record's position among
        the readable records of the same kind (``chunk`` or ``element``) of that document."""
        if self.reads_document(doc_id):
            return seq
        key = (kind, doc_id)
        if key not in self._positions:
            model: Any = ChunkRow if kind == "chunk" else ElementRow
            rows = self.orm.execute(
                select(*binding_columns(model), model.seq.label("position"))
                .where(model.doc_id == doc_id, model.marking_id.in_(self.readable))
                .order_by(model.seq)
            )
            seqs = [r.position for r in verify_columns(self._binder, rows, (model, ""))]
            self._positions[key] = {s: i for i, s in enumerate(dict.fromkeys(seqs))}
        return self._positions[key].get(seq, 0)

    def locator(self, doc_id: str, element_id: str | None) -> dict[str, Any]:
        """Where a record sits in its document (page, sheet, cell...): only for readers of the
        document, and only from a readable element."""
        if element_id is None or not self.reads_document(doc_id):
            return {}
        element = self._element_rows.get(element_id) or self.orm.get(ElementRow, element_id)
        if element is None or element.marking_id not in self.readable:
            return {}
        locator = dict((element.data or {}).get("locator") or {})
        if element.page is not None:
            locator.setdefault("page", element.page)
        return locator

    # -- records -----------------------------------------------------------------------------------

    def chunk(self, row: ChunkRow) -> dict[str, Any]:
        """A readable chunk as this reader may see it (the caller checked its marking)."""
        out: dict[str, Any] = {"id": row.id}
        if self.reads_document(row.doc_id):
            out["doc_id"] = row.doc_id
        out.update(
            {
                "seq": self.seq("chunk", row.doc_id, row.seq),
                "text": row.text,
                "marking": self.banner(row.marking_id),
                "token_count": row.token_count,
                "element_ids": self.readable_elements(row.element_ids),
                "section_path": self.headings(
                    row.doc_id, row.section_path or (), row.section_marking_ids
                ),
                "embedding_model": self.embedding_model(row.embedding_model),
            }
        )
        return out

    def load_chunks(self, rows: Sequence[ChunkRow]) -> None:
        """Read at once what :meth:`chunk` needs of many chunks (their documents' markings and
        which of their elements are readable), so a page costs a few queries, not a few per
        chunk."""
        self.load_documents([r.doc_id for r in rows])
        self.load_elements([e for r in rows for e in r.element_ids or ()])

    def load_elements(self, element_ids: Iterable[str]) -> None:
        """Find out at once which of many elements the reader may read (bindings verified)."""
        wanted = [e for e in dict.fromkeys(element_ids) if e not in self._elements]
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            rows = self.orm.execute(
                select(*binding_columns(ElementRow)).where(
                    ElementRow.id.in_(part), ElementRow.marking_id.in_(self.readable)
                )
            )
            readable = {r.id for r in verify_columns(self._binder, rows, (ElementRow, ""))}
            for element_id in part:
                self._elements[element_id] = element_id in readable

    def readable_elements(self, element_ids: Sequence[str]) -> list[str]:
        """The ids of those of ``element_ids`` the reader may read, in order."""
        ids = list(element_ids)
        self.load_elements(ids)
        return [i for i in ids if self._elements[i]]

    def element(self, row: ElementRow) -> dict[str, Any]:
        """A readable element as this reader may see it (the caller checked its marking)."""
        data = dict(row.data or {})
        locator = data.pop("locator", {})
        section_ids = data.pop("section_marking_ids", None)
        path = data.pop("section_path", None)
        reads_doc = self.reads_document(row.doc_id)
        out: dict[str, Any] = {"id": row.id}
        if reads_doc:
            out["doc_id"] = row.doc_id
        out.update(
            {
                "seq": self.seq("element", row.doc_id, row.seq),
                "type": row.type,
                "text": row.text,
                "marking": self.banner(row.marking_id),
                "marking_source": row.marking_source,
            }
        )
        if reads_doc:
            out["page"] = row.page
            out["locator"] = locator
        if row.original_marking_id is not None:
            out["original_marking"] = self.banner(row.original_marking_id)
        if not reads_doc:
            # Parser fields that point into the document (its parent, its cells' places) are
            # part of the document reference.
            data.pop("parent_id", None)
        out.update(data)
        if path is not None:
            out["section_path"] = self.headings(row.doc_id, path, section_ids)
        return out
