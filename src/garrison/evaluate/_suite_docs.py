"""QA items made from the indexed documents a subject may read.

Every item comes from one readable, indexed chunk, cites it (``expected.sources``), and is
marked like it -- joined with the markings of the headings its question quotes, and with a
generator's output marking when one wrote it. Without a generator, templates make the questions:

- heading: ``What does the section "H" say?`` -- the answer is the text that follows it;
- key-value line (``Location: Harbor Road 5``): ``What is the Location given in the section
  "H"?`` (``... in the document?`` without a heading) -- the answer is the value;
- table row (``Albatross | Kiel`` under ``Ship | Port``): ``What is the Port of Albatross?``;
- informative sentence: a cloze (``Fill in the blank: The ferry ____ leaves at dawn.``, the
  answer the word taken out) or a wh-question (``What do the documents say about X?``, the
  answer the sentence).

A document's title or file name is never put in a question: it is marked at the document's
level, which can be above the chunk's. With a registered generator, each chosen chunk whose
marking (with its headings) the generator's accreditation dominates is sent to it for one
question and answer (JSON); a chunk above the accreditation is never sent -- it gets template
items instead, as does a chunk whose reply cannot be read.

Unanswerable items ask about things that are not in the corpus (invented names, checked against
every readable chunk), marked UNCLASSIFIED (they hold nothing from the corpus), with
``expected.answerable`` false, for scoring refusals. Chunks and templates are drawn with a
``random.Random(seed)``, so the same corpus and seed give the same items.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from garrison.assist import Generator, registered_generator
from garrison.assist._generator import clean_generated
from garrison.assist._text import split_sentences
from garrison.core.errors import InvalidInput, NotFound
from garrison.evaluate._suite_items import NewItem
from garrison.security.markings import UNCLASSIFIED, Marking, dominates, join
from garrison.store.datasets import record_sources
from garrison.store.models import DocumentRow
from garrison.store.session import Session

__all__ = ["doc_items", "template_questions"]

#: The most items one generation may make.
MAX_LIMIT = 10_000
_KEY_VALUE = re.compile(r"^\s*([A-Z][A-Za-z0-9 /()&'-]{1,40}?)\s*:\s+(\S.{0,200}?)\s*$")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'-]{4,}|\d[\d.,:/-]*\d|\d")
_STOP = frozenset(
    [
        "about",
        "above",
        "after",
        "again",
        "against",
        "among",
        "because",
        "before",
        "being",
        "below",
        "between",
        "could",
        "during",
        "every",
        "first",
        "from",
        "have",
        "into",
        "itself",
        "might",
        "other",
        "over",
        "shall",
        "should",
        "since",
        "their",
        "there",
        "these",
        "those",
        "through",
        "under",
        "until",
        "where",
        "which",
        "while",
        "would",
        "with",
        "within",
        "without",
        "your",
    ]
)
_SYLLABLES = ("vex", "mor", "tal", "quin", "dro", "bel", "zar", "oth", "pim", "rux", "sel", "gan")
#: The templates whose question quotes the chunk's heading.
_HEADED = frozenset({"heading", "key-value"})
_UNANSWERABLE = (
    "What is the call sign of the vessel {x}?",
    "Who commands the {x} detachment?",
    "When does Operation {x} begin?",
    "Where is the {x} depot located?",
    "How many crates does the {x} convoy carry?",
)


@dataclass(frozen=True)
class _Chunk:
    id: str
    doc_id: str
    text: str
    heading: str | None
    #: The chunk's own marking.
    marking: Marking
    #: The chunk's marking joined with its headings' (for questions that quote a heading).
    headed: Marking
    slices: dict[str, str]


def _slug(raw: str) -> str:
    return re.sub(r"\s+", " ", raw).strip()


def template_questions(text: str, heading: str | None) -> list[tuple[str, str, str]]:
    """``(template, question, answer)`` candidates from one chunk's text and its heading."""
    out: list[tuple[str, str, str]] = []
    body = text.strip()
    if heading and body:
        out.append(("heading", f'What does the section "{heading}" say?', body))
    where = f'in the section "{heading}"' if heading else "in the document"
    lines = [line for line in body.splitlines() if line.strip()]
    for line in lines:
        found = _KEY_VALUE.match(line)
        if found and "|" not in line:
            key, value = _slug(found.group(1)), _slug(found.group(2))
            out.append(("key-value", f"What is the {key} given {where}?", value))
    table = [[c.strip() for c in line.split("|")] for line in lines if "|" in line]
    if len(table) >= 2 and all(len(r) == len(table[0]) for r in table) and len(table[0]) >= 2:
        header = table[0]
        for row in table[1:]:
            if not row[0]:
                continue
            for col in range(1, len(header)):
                if header[col] and row[col]:
                    out.append(("table", f"What is the {header[col]} of {row[0]}?", row[col]))
    prose = "\n".join(line for line in lines if "|" not in line and not _KEY_VALUE.match(line))
    for span in split_sentences(prose):
        sentence = _slug(span.text)
        words = sentence.split()
        if not 6 <= len(words) <= 60:
            continue
        salient = [
            m for m in _WORD.finditer(sentence) if m.group(0).lower() not in _STOP and m.start()
        ]
        if not salient:
            continue
        pick = max(salient, key=lambda m: (m.group(0)[0].isdigit(), len(m.group(0)), -m.start()))
        cloze = sentence[: pick.start()] + "____" + sentence[pick.end() :]
        out.append(("cloze", f"Fill in the blank: {cloze}", pick.group(0)))
        out.append(("wh", f"What do the documents say about {pick.group(0)}?", sentence))
    return out


def _chunks(session: Session, documents: Sequence[str] | None) -> list[_Chunk]:
    wanted = set(documents) if documents is not None else None

    def keep(doc: DocumentRow) -> bool:
        return wanted is None or doc.id in wanted

    sources = record_sources(session, "chunks", keep)
    if wanted is not None:
        missing = sorted(wanted - set(sources.documents))
        if missing:
            raise NotFound(f"No document {missing[0]}.")
    out: list[_Chunk] = []
    for row in sources.chunks:
        if row.embedding_model is None or not row.text.strip():
            continue  # not indexed: the assistant cannot retrieve it
        try:
            marking = sources.marking(row.marking_id)
            heads = [sources.marking(int(i)) for i in row.section_marking_ids or []]
        except KeyError:
            continue  # a marking it refers to is not readable: fail closed, leave it out
        path = list(row.section_path or [])
        if len(heads) != len(path) or not all(session.can_read(h) for h in heads):
            path, heads = [], []
        doc = sources.documents[row.doc_id]
        slices = {"source": doc.source_name or "docs"}
        if doc.media_type:
            slices["media_type"] = doc.media_type
        state = sources.states.get((row.element_ids or [""])[0])
        language = getattr(state, "language", None)
        if language:
            slices["language"] = str(language)
        out.append(
            _Chunk(
                row.id,
                row.doc_id,
                row.text,
                path[-1] if path else None,
                marking,
                join(marking, *heads),
                slices,
            )
        )
    out.sort(key=lambda c: (c.doc_id, c.id))
    return out


def _generated(gen: Generator, chunk: _Chunk) -> tuple[str, str, Marking] | None:
    """One question and answer from the generator, or None when its reply is unusable."""
    messages = [
        {
            "role": "system",
            "content": "You write one test question that the passage answers, and its answer "
            'taken from the passage. Reply with JSON only: {"question": "...", "answer": "..."}.',
        },
        {"role": "user", "content": chunk.text},
    ]
    generation = gen.generate(messages, content_marking=chunk.marking)
    found = re.search(r"\{.*\}", generation.text, re.DOTALL)
    if found is None:
        return None
    try:
        data = json.loads(found.group(0))
    except ValueError:
        return None
    if not isinstance(data, Mapping):
        return None
    question = " ".join(clean_generated(str(data.get("question") or "")))
    answer = " ".join(clean_generated(str(data.get("answer") or "")))
    if not question.strip() or not answer.strip():
        return None
    return question, answer, join(chunk.marking, gen.marking, generation.marking)


def _pseudo_word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(3)).capitalize()


def doc_items(
    session: Session,
    *,
    documents: Sequence[str] | None = None,
    limit: int = 50,
    generator: str | Generator | None = None,
    seed: int = 0,
    unanswerable: float = 0.2,
) -> tuple[list[NewItem], dict[str, Any]]:
    """Up to ``limit`` QA items (a share ``unanswerable`` of them unanswerable) and the source
    recorded in the suite's manifest."""
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"--limit is a whole number from 1 to {MAX_LIMIT}.")
    if not 0.0 <= float(unanswerable) < 1.0:
        raise InvalidInput("The share of unanswerable items is from 0 up to (not including) 1.")
    gen = registered_generator(session, generator) if isinstance(generator, str) else generator
    chunks = _chunks(session, documents)
    if not chunks:
        raise InvalidInput("There is no indexed document you may read to make questions from.")
    rng = random.Random(seed)  # noqa: S311 - a reproducible draw, not a secret
    n_unanswerable = round(limit * float(unanswerable))
    n_answerable = limit - n_unanswerable
    order = list(chunks)
    rng.shuffle(order)
    pools: dict[str, list[tuple[str, str, str]]] = {}
    for chunk in order:
        candidates = template_questions(chunk.text, chunk.heading)
        rng.shuffle(candidates)
        pools[chunk.id] = candidates
    items: list[NewItem] = []
    seen: set[str] = set()

    def add(chunk: _Chunk, template: str, question: str, answer: str, marking: Marking) -> None:
        if question in seen:
            return
        seen.add(question)
        items.append(
            NewItem(
                input={"question": question},
                expected={"answer": answer, "sources": [chunk.id], "answerable": True},
                marking=marking,
                sources=(chunk.id,),
                cluster=chunk.doc_id,
                slices={**chunk.slices, "template": template},
                where=f"the question from chunk {chunk.id}",
            )
        )

    generated: set[str] = set()
    if gen is not None:
        for chunk in order:
            if len(items) >= n_answerable:
                break
            if not dominates(gen.accredited, chunk.marking):
                continue  # never sent: the chunk is above what the generator may receive
            made = _generated(gen, chunk)
            if made is not None and session.can_read(made[2]):
                add(chunk, "generator", made[0], made[1], made[2])
                generated.add(chunk.id)
    while len(items) < n_answerable:
        progressed = False
        for chunk in order:
            if len(items) >= n_answerable:
                break
            pool = pools[chunk.id]
            if chunk.id in generated or not pool:
                continue
            template, question, answer = pool.pop()
            quotes_heading = chunk.heading is not None and template in _HEADED
            marking = chunk.headed if quotes_heading else chunk.marking
            add(chunk, template, question, answer, marking)
            progressed = True
        if not progressed:
            break
    corpus = "\n".join(c.text for c in chunks).lower()
    for number in range(n_unanswerable):
        for _ in range(20):
            word = _pseudo_word(rng)
            if word.lower() not in corpus:
                break
        question = _UNANSWERABLE[number % len(_UNANSWERABLE)].format(x=word)
        if question in seen:
            continue
        seen.add(question)
        items.append(
            NewItem(
                input={"question": question},
                expected={"answer": "", "sources": [], "answerable": False},
                marking=UNCLASSIFIED,
                slices={"source": "synthetic", "template": "unanswerable"},
                where=f"unanswerable question {number + 1}",
            )
        )
    source = {
        "type": "docs",
        "documents": sorted(documents) if documents is not None else None,
        "limit": limit,
        "generator": getattr(gen, "name", None) if gen is not None else None,
        "seed": seed,
        "unanswerable": float(unanswerable),
    }
    return items, source
