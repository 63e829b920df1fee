"""Training pairs for an embedder: (query, passage), each marked, from a dataset or the corpus.

From a dataset version: one pair per record that has both named fields (a source column under
``fields``, a record field such as ``title`` or ``section_path`` -- its deepest heading -- or
``text``); the pair is marked with its record's marking, and the dataset's splits are kept
(``train`` to learn from, ``test`` -- or ``validation`` when there is no test split -- to
measure on).

Mined from the corpus the subject may read (:func:`~garrison.store.element_reads.readable_elements`,
so nothing above the subject is ever loaded), three kinds of pair:

- ``heading``: a heading <-> the text directly under it (its section's own paragraphs, list
  items, tables), as the subject sees the section: a heading it may not read is not there, so
  the paragraphs under it belong to the heading above;
- ``title``: a document's title (its first top-level heading) <-> its body, when the title has
  no text of its own under it;
- ``subject``: an e-mail's subject <-> its body.

A mined pair is marked with the join of its two sides: the heading's (or title's) own marking
and the marking of every element whose text is in the passage. Mined pairs get a held-out
share by document (and near-duplicate cluster), seeded, so no document is on both sides.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

from garrison.core.errors import InvalidInput
from garrison.datasets import Datasets, DatasetVersion, SnapshotRecord, assign_splits
from garrison.datasets._records import DatasetRecord
from garrison.security.markings import Marking, join
from garrison.store.element_reads import ReadableElement, readable_elements
from garrison.store.session import Session

__all__ = ["HELD_OUT", "TRAIN", "Pair", "dataset_pairs", "hold_out", "mine_pairs", "pairs_digest"]

TRAIN = "train"
HELD_OUT = "held-out"
#: A passage holds whole elements up to about this many characters (the first always).
PASSAGE_CHARS = 2000
TITLE = "Title"
BODY_TYPES = ("NarrativeText", "ListItem", "Table", "Caption", "KeyValue")
_MAIL_PARTS = ("subject",)


@dataclass(frozen=True)
class Pair:
    """One (query, passage) pair and what it shows."""

    query: str
    passage: str
    marking: Marking
    #: What must not be on both sides of the held-out split: the document it came from.
    group: str
    #: Its near-duplicate cluster (pairs of one cluster stay together too).
    cluster: str
    #: ``heading``, ``title``, ``subject`` or ``dataset``.
    source: str
    split: str = TRAIN


def pairs_digest(pairs: list[Pair]) -> str:
    """SHA-256 over the pairs' text, markings and splits, in order: the training data's id."""
    digest = hashlib.sha256()
    for pair in pairs:
        item = [pair.query, pair.passage, pair.marking.banner(), pair.split]
        digest.update(json.dumps(item, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


# -- from a dataset --------------------------------------------------------------------------------


def _field(record: SnapshotRecord, name: str) -> str | None:
    value: Any
    if name == "text":
        value = record.text
    else:
        columns = record.fields.get("fields")
        if isinstance(columns, dict) and name in columns:
            value = columns[name]
        elif name in record.fields and name != "fields":
            value = record.fields[name]
        else:
            return None
    if isinstance(value, list):  # a section path: its deepest heading
        value = value[-1] if value else None
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def dataset_pairs(
    session: Session, ref: str, query_field: str, passage_field: str
) -> tuple[DatasetVersion, list[Pair]]:
    """The pairs of dataset version ``ref`` (NotFound when the subject may not read it)."""
    if query_field == passage_field:
        raise InvalidInput("The query and passage fields must differ.")
    datasets = Datasets(session)
    version = datasets.get(ref)
    records = datasets.records(version)
    held = "test" if any(r.split == "test" for r in records) else "validation"
    pairs: list[Pair] = []
    markings: dict[str, Marking] = {}
    for record in records:
        query, passage = _field(record, query_field), _field(record, passage_field)
        if query is None or passage is None or record.split not in (TRAIN, held):
            continue
        if record.marking not in markings:
            markings[record.marking] = session.parse_marking(record.marking)
        pairs.append(
            Pair(
                query,
                passage,
                markings[record.marking],
                group=record.doc_id,
                cluster=record.id,
                source="dataset",
                split=TRAIN if record.split == TRAIN else HELD_OUT,
            )
        )
    if not pairs:
        raise InvalidInput(
            f"Dataset {version.name}@{version.id[:12]} has no record with both fields "
            f"{query_field!r} and {passage_field!r}; name them with --query-field and "
            "--passage-field."
        )
    if not any(p.split == HELD_OUT for p in pairs):
        raise InvalidInput(
            f"Dataset {version.name}@{version.id[:12]} has no test or validation split to "
            "measure on; create it with one (--split train=0.8,test=0.2) from pairs in more "
            "than one file or table (the rows of one always share a split)."
        )
    return version, pairs


# -- mined from the corpus -------------------------------------------------------------------------


def _passage(elements: list[ReadableElement]) -> tuple[str, list[ReadableElement]]:
    """The passage of whole elements (about :data:`PASSAGE_CHARS`) and the elements in it."""
    used: list[ReadableElement] = []
    size = 0
    for element in elements:
        text = element.text.strip()
        if not text:
            continue
        if used and size + len(text) > PASSAGE_CHARS:
            break
        used.append(element)
        size += len(text) + 1
    return "\n".join(e.text.strip() for e in used), used


def _doc_pairs(elements: list[ReadableElement]) -> list[Pair]:
    # The key that keeps a document's pairs on one side of the split. The id of a document
    # the subject may not read is not theirs to use (the split would depend on it): such a
    # document's readable parts are named after the first of them instead.
    first = elements[0]
    doc_id = first.doc_id if first.doc_readable else f"part:{first.id}"
    sections: dict[tuple[tuple[str, Marking], ...], list[ReadableElement]] = {}
    body: list[ReadableElement] = []
    title: ReadableElement | None = None
    for element in elements:
        if element.type == TITLE:
            # The document's title: its first heading at the top, as the subject sees it.
            if title is None and not element.headings and element.text.strip():
                title = element
            continue
        body.append(element)
        sections.setdefault(element.headings, []).append(element)
    pairs: list[Pair] = []
    queries: set[str] = set()
    for path, members in sections.items():
        if not path:
            continue
        heading, heading_marking = path[-1]
        passage, used = _passage(members)
        if not heading.strip() or not used:
            continue
        queries.add(heading.strip())
        pairs.append(
            Pair(
                heading.strip(),
                passage,
                join(heading_marking, *(e.marking for e in used)),
                group=doc_id,
                cluster=used[0].cluster,
                source="heading" if len(path) > 1 else "title",
            )
        )
    if title is not None and title.text.strip() not in queries:
        # A title with no text of its own (an e-mail's subject, a heading followed at once by
        # sub-headings): its document's body, from the top, is what it names.
        own = sections.get((), [])
        passage, used = _passage(own or body)
        if used:
            pairs.append(
                Pair(
                    title.text.strip(),
                    passage,
                    join(title.marking, *(e.marking for e in used)),
                    group=doc_id,
                    cluster=used[0].cluster,
                    source="subject" if title.part in _MAIL_PARTS else "title",
                )
            )
    return pairs


def mine_pairs(session: Session) -> list[Pair]:
    """Heading, title and e-mail subject pairs from everything the subject may read."""
    by_doc: dict[str, list[ReadableElement]] = {}
    for element in readable_elements(session, (TITLE, *BODY_TYPES)):
        by_doc.setdefault(element.doc_id, []).append(element)
    seen: set[tuple[str, str]] = set()
    pairs: list[Pair] = []
    for doc_id in sorted(by_doc):
        for pair in _doc_pairs(by_doc[doc_id]):
            key = (pair.query, pair.passage)
            if key not in seen:  # the same pair twice would be its own in-batch negative
                seen.add(key)
                pairs.append(pair)
    if not pairs:
        raise InvalidInput(
            "No training pairs could be mined: nothing readable has headings, titles or "
            "e-mail subjects with text under them."
        )
    return pairs


def hold_out(pairs: list[Pair], share: float, seed: int) -> list[Pair]:
    """``pairs`` with a seeded ``share`` held out, whole documents and clusters at a time."""
    records = [
        DatasetRecord(str(i), "pair", p.group, p.query, p.marking, cluster=f"c:{p.cluster}")
        for i, p in enumerate(pairs)
    ]
    splits = assign_splits(records, {TRAIN: 1.0 - share, "test": share}, seed=seed)
    return [
        replace(p, split=TRAIN if splits[str(i)] == TRAIN else HELD_OUT)
        for i, p in enumerate(pairs)
    ]
