"""``chunk``: pack a document's elements into chunks that fit an embedding model's window.

Elements go into chunks in reading order, greedily, up to ``max_tokens`` tokens as the model's
own tokenizer counts them. A chunk is marked with the join of its elements' markings, and by
default never straddles elements of different markings (ARCHITECTURE.md section 4), so an
UNCLASSIFIED paragraph next to a SECRET one stays retrievable as UNCLASSIFIED. Other boundaries:
a section change or a new Title (``respect_sections``), and tables and records, which go alone
(``tables_whole``).

An element too long for one chunk is split on sentence boundaries (tables: on row boundaries),
falling back to token boundaries for a sentence longer than a chunk; consecutive pieces of a
split prose element share ``overlap_tokens`` tokens so no sentence loses its context. Table rows
are not overlapped: a row repeated in two chunks would read as two rows.

A chunk takes the section path of its first element together with that path's heading
markings (``section_marking_ids``): readers who do not dominate a heading's marking get the
chunk without that heading (:mod:`garrison.store.views`). Two elements under the same heading
text marked differently are different sections.

Classification by compilation (MARKINGS.md section 6): the workspace's rules, handed in by the
executor (``resources["compilation_rules"]``), are applied to each chunk's text and section
headings; a chunk that combines both parts of a rule is marked with the join of its elements'
markings and the rule's, and carries a ``compilation`` finding naming the rule
(``extra["compilation"]``, written by the sink). Elements keep their own markings: only what
combines the parts is raised.

The stage emits only the new chunk items; the elements stay what they were upstream.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from pydantic import model_validator

from garrison.core.errors import InvalidInput
from garrison.models import EmbeddingModel, get_model
from garrison.pipeline._stage import Item, Stage, StageParams, register_stage
from garrison.security.compilation import CompilationRule, apply_rules, fired_details
from garrison.security.markings import Marking, join

__all__ = ["COMPILATION", "COMPILATION_RULES", "ChunkParams", "ChunkStage"]

#: The resource holding the workspace's compilation rules (a tuple of CompilationRule).
COMPILATION_RULES = "compilation_rules"
#: ``Item.extra`` key of a raised chunk's findings (:func:`fired_details`).
COMPILATION = "compilation"

#: Element types kept whole (alone in their chunk) when ``tables_whole`` is set.
TABLE_TYPES = frozenset({"Table", "Record"})
SEPARATOR = "\n\n"
# A sentence ends at . ! or ? (optionally closed by a quote or bracket) followed by space.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_ROW_END = re.compile(r"\n+")


class ChunkParams(StageParams):
    """Parameters of ``chunk``."""

    #: Model whose tokenizer bounds the chunks (the model ``embed`` will use).
    model: str = "all-MiniLM-L6-v2"
    #: Most tokens in a chunk, special tokens included; at most the model's window.
    max_tokens: int = 256
    #: Tokens shared by consecutive pieces of a split element.
    overlap_tokens: int = 32
    #: Never span two section paths, and start a new chunk at each Title.
    respect_sections: bool = True
    #: A Table or Record element goes alone in its chunk(s); long ones split by rows.
    tables_whole: bool = True
    #: Allow a chunk to span elements of different markings (it is marked with their join).
    mix_markings: bool = False

    @model_validator(mode="after")
    def _check(self) -> ChunkParams:
        if self.max_tokens < 8:
            raise ValueError("max_tokens must be at least 8")
        if not 0 <= self.overlap_tokens < self.max_tokens:
            raise ValueError("overlap_tokens must be >= 0 and smaller than max_tokens")
        return self


@dataclass(frozen=True)
class _Piece:
    """A part of one element (the whole element when it fits) ready to pack."""

    text: str
    element: Item
    tokens: int  # special tokens included
    starts_section: bool  # first piece of a Title
    alone: bool  # a table piece: nothing else joins its chunk
    continues: bool = False  # a later piece of a split element (already overlaps the previous)


@dataclass(frozen=True)
class _Opened:
    """What ``chunk`` runs with: the tokenizer's model and the compilation rules."""

    model: EmbeddingModel
    rules: tuple[CompilationRule, ...] = ()


@register_stage
class ChunkStage(Stage[ChunkParams]):
    """Pack elements into model-sized chunks marked with the join of their elements."""

    name = "chunk"
    version = "1"
    Params = ChunkParams

    def open_resources(self, resources: dict[str, Any]) -> _Opened:
        model = get_model(self.params.model)
        if self.params.max_tokens > model.max_tokens:
            raise InvalidInput(
                f"chunk max_tokens {self.params.max_tokens} exceeds the {model.max_tokens}-token "
                f"window of {model.name}; lower it."
            )
        return _Opened(model, tuple(resources.get(COMPILATION_RULES, ())))

    def process(self, items: list[Item], resource: Any) -> list[Item]:
        opened = resource if resource is not None else self.open_resources({})
        if not isinstance(opened, _Opened):  # a bare model: no rules
            opened = _Opened(opened)
        model, rules = opened.model, opened.rules
        docs: dict[str, list[Item]] = {}
        for item in items:
            # Dropped items and non-canonical duplicates produce nothing downstream.
            if item.kind != "element" or item.dropped is not None or item.dup_of is not None:
                continue
            docs.setdefault(item.doc_id, []).append(item)
        out: list[Item] = []
        for doc_id in sorted(docs):
            elements = sorted(docs[doc_id], key=lambda e: (e.seq, e.id))
            out.extend(self._chunk_document(doc_id, elements, model, rules))
        return out

    # -- packing ---------------------------------------------------------------------------------

    def _chunk_document(
        self,
        doc_id: str,
        elements: list[Item],
        model: EmbeddingModel,
        rules: tuple[CompilationRule, ...] = (),
    ) -> list[Item]:
        p = self.params
        groups: list[list[_Piece]] = []
        current: list[_Piece] = []
        for piece in (pc for e in elements for pc in self._pieces(e, model)):
            if current and (
                self._must_break(current, piece)
                or model.count_tokens(_joined([*current, piece])) > p.max_tokens
            ):
                groups.append(current)
                current = []
            current.append(piece)
        if current:
            groups.append(current)
        return [self._make_chunk(doc_id, i, g, model, rules) for i, g in enumerate(groups)]

    def _must_break(self, current: list[_Piece], piece: _Piece) -> bool:
        p = self.params
        first = current[0].element
        # A continuation repeats the previous piece's tail: packing both would repeat text.
        if piece.alone or current[-1].alone or piece.continues:
            return True
        # Semantic comparison: two spellings of the same marking are the same marking.
        if not p.mix_markings and piece.element.marking != first.marking:
            return True
        return p.respect_sections and (
            piece.starts_section
            or piece.element.section_path != first.section_path
            or piece.element.section_marking_ids != first.section_marking_ids
        )

    def _make_chunk(
        self,
        doc_id: str,
        index: int,
        pieces: list[_Piece],
        model: EmbeddingModel,
        rules: tuple[CompilationRule, ...],
    ) -> Item:
        text = _joined(pieces)
        element_ids = tuple(dict.fromkeys(pc.element.id for pc in pieces))
        markings: list[Marking] = [pc.element.marking for pc in pieces]
        first = pieces[0].element
        # "chunk" keeps chunk ids apart from element ids built from the same parts.
        key = f"chunk\x00{doc_id}\x00{index}\x00{text}"
        chunk_id = hashlib.sha256(key.encode()).hexdigest()[:32]
        # The headings travel with the chunk (search hits, citations): they count as its text.
        compiled = apply_rules(rules, [text, *first.section_path], join(*markings))
        return Item(
            id=chunk_id,
            doc_id=doc_id,
            kind="chunk",
            text=text,
            original_text=text,
            marking=compiled.marking,
            element_ids=element_ids,
            seq=index,
            type="Chunk",
            section_path=first.section_path,
            section_marking_ids=first.section_marking_ids,
            page=first.page,
            language=first.language,
            token_count=model.count_tokens(text),
            lineage=[self.lineage(parents=element_ids)],
            extra={COMPILATION: fired_details(compiled)} if compiled.raised else {},
        )

    # -- splitting long elements -----------------------------------------------------------------

    def _pieces(self, element: Item, model: EmbeddingModel) -> list[_Piece]:
        p = self.params
        is_table = element.type in TABLE_TYPES
        alone = p.tables_whole and is_table
        title = p.respect_sections and element.type == "Title"
        text = element.text.strip()
        if not text:
            return []
        count = model.count_tokens(text)
        if count <= p.max_tokens:
            return [_Piece(text, element, count, title, alone)]
        boundary = _ROW_END if is_table and p.tables_whole else _SENTENCE_END
        overlap = 0 if is_table and p.tables_whole else p.overlap_tokens
        texts = _split(text, model, p.max_tokens, overlap, boundary)
        return [
            _Piece(t, element, model.count_tokens(t), title and i == 0, alone, continues=i > 0)
            for i, t in enumerate(texts)
        ]


def _joined(pieces: list[_Piece]) -> str:
    return SEPARATOR.join(pc.text for pc in pieces)


def _split(
    text: str, model: EmbeddingModel, max_tokens: int, overlap: int, boundary: re.Pattern[str]
) -> list[str]:
    """Windows of ``text`` of at most ``max_tokens`` tokens, cut at ``boundary`` when possible.

    Windows end at the last boundary (sentence or row start) inside the token budget, or at the
    budget itself when there is none; the next window starts ``overlap`` tokens before the end.
    """
    spans = model.token_spans(text)
    budget = max(1, max_tokens - model.special_tokens)
    starts = [s for s, _ in spans]
    # Token indices at which a sentence (or row) begins: the preferred cut points.
    cuts = sorted({bisect.bisect_left(starts, m.end()) for m in boundary.finditer(text)})
    out: list[str] = []
    begin, n = 0, len(spans)
    while begin < n:
        end = min(n, begin + budget)
        if end < n:
            k = bisect.bisect_right(cuts, end) - 1
            if k >= 0 and cuts[k] > begin:
                end = cuts[k]
        piece = text[spans[begin][0] : spans[end - 1][1]].strip()
        # A cut inside a word can re-tokenize longer than its span count: shrink until it fits.
        while end - begin > 1 and model.count_tokens(piece) > max_tokens:
            end -= 1
            piece = text[spans[begin][0] : spans[end - 1][1]].strip()
        out.append(piece)
        if end >= n:
            break
        begin = max(begin + 1, end - overlap)
    return out
