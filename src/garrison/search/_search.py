"""Hybrid search over the chunk index, as one subject may see it.

Both branches -- BM25 full text and vector nearest neighbours -- run on the LanceDB index with
the subject's access filter as a *prefilter*: ``marking_id IN (<readable ids>)`` (narrowed by a
``max_marking`` ceiling and the caller's filters) restricts the rows before anything is ranked,
so ``k`` hits are filled from readable data and nothing unreadable is scored, counted or shown.

Ranking:

- full text: every readable chunk the native FTS index matches for the query, re-scored here
  with BM25 whose statistics (document count, document frequencies, average length) come from
  the readable, filtered rows only -- LanceDB's own scores use corpus-wide statistics, which
  would let unreadable text shift the order;
- vector: only rows whose *vector* the reader may read (``vector_marking_id``: the join of the
  chunk's marking and its embedder's -- a SECRET-trained embedder's vectors are SECRET even for
  UNCLASSIFIED chunks). The query is embedded with the model recorded in those rows (the most
  common one when several) -- a registered model through
  :func:`garrison.models.open_embedder` as the reader, so a reader never embeds a query with a
  model they may not use, and the use is audited -- and the nearest ``max(k, 50)`` such rows
  of that model are ranked. When no readable row has a vector the reader may use, the search
  is full text only: ``mode`` says ``text`` (otherwise ``hybrid``) and ``notes`` says why, in
  the same words whether there are no vectors at all or only ones above the reader;
- fusion: reciprocal-rank fusion, ``score = sum(1 / (60 + rank))`` over the two lists (1-based
  ranks), ties broken by chunk id, so a search is deterministic.

Definitions:

- ``total``: the number of readable chunks (after filters) that the full-text query matches.
  Chunks reached only by the vector branch are not counted: every chunk has a nearest neighbour.
  Neither ``total`` nor the facets depend on vectors, so vectors above the reader change nothing
  a reader can count.
  Each matched index row is re-checked against the catalog, which is the record of truth: a
  chunk re-marked since it was indexed (its document's marking rose) counts, facets and ranks
  under its current marking, so the index may follow at the next run.
- ``labels``: ``NAME=LABEL`` filters on predictions (the ``classify`` stage's): a chunk
  matches when, for every name, a prediction of that name with one of the labels given for it
  is on the chunk or one of its elements -- and only predictions the reader may read count, so
  a label only predictions above the reader carry gives the same answer as a label nobody has.
  The result's marking then includes the matched predictions' markings (a hit shown under the
  filter reveals what the classifier said about it).
- ``facets``: counts over that same matched set, by ``marking`` (banner), ``language``,
  ``source`` and ``media_type``. Source and media type are document metadata and carry the
  document's marking: they are counted only for chunks whose document the subject may read.

What a hit shows of its document follows :mod:`garrison.store.views`: a reader who may not
read the document gets no ``doc_id`` and no locator, and headings above the reader are left
out of ``section_path``.

Compilation rules (MARKINGS.md section 6) apply to the page as a whole: it combines the query
and every hit's snippet and headings. Hits are taken best first; a hit that would raise the
page above what the reader may read (or above the ``max_marking`` ceiling) is withheld, as if
it were not readable, and the next one is tried. The page's ``marking`` is the raised one, and
``findings`` name the rules that raised it (never the matched text). ``total`` and the facets
count readable chunks, each of which the reader may read on its own; nothing says that a hit
was withheld, which would tell the reader that a rule exists (the audit event records it).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from garrison.core.errors import InvalidInput, NotFound
from garrison.search._fulltext import NARROW, bm25_order, facets, matches, terms
from garrison.security.audit import AuditAction
from garrison.security.compilation import CompilationRule, fired_details, tally
from garrison.security.markings import UNCLASSIFIED, Marking, dominates, join
from garrison.security.policy import Action
from garrison.store.catalog_reads import CatalogView, catalog_view
from garrison.store.compilation import workspace_rules
from garrison.store.index import ChunkIndex, quote_sql, vector_marking_column
from garrison.store.predictions import LabelFilter, parse_labels
from garrison.store.session import Session

if TYPE_CHECKING:
    from garrison.models import EmbeddingModel

__all__ = ["FILTER_KEYS", "MAX_K", "RRF_K", "SearchHit", "SearchResult", "rrf", "search", "snippet"]

#: The filters :func:`search` accepts.
FILTER_KEYS = (
    "doc",
    "source",
    "media_type",
    "language",
    "max_marking",
    "ingested_from",
    "ingested_to",
)
#: Reciprocal-rank fusion constant.
RRF_K = 60
#: Upper bound of ``k``.
MAX_K = 1000
#: Longest query accepted (characters).
MAX_QUERY = 1000
#: Snippet window (characters of chunk text, before highlighting).
SNIPPET_CHARS = 240
#: How many nearest neighbours the vector branch contributes at least.
VECTOR_DEPTH = 50

_DOC_FILTERS = {"source": "source", "media_type": "media_type"}
#: What ``notes`` says of a full-text-only search (the same whatever the reason).
TEXT_ONLY = (
    "Full text only: none of the chunks you may read has an embedding from a model you may use."
)
_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class SearchHit:
    """One ranked chunk. ``score`` is the fused RRF score; ``snippet`` highlights terms in **."""

    chunk_id: str
    #: ``None`` when the reader may not read the chunk's document (then ``to_dict`` leaves
    #: the key out, and ``locator`` is empty).
    doc_id: str | None
    score: float
    snippet: str
    marking: str
    locator: dict[str, Any]
    #: Only the headings the reader may read.
    section_path: list[str]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"chunk_id": self.chunk_id}
        if self.doc_id is not None:
            out["doc_id"] = self.doc_id
        out.update(
            {
                "score": self.score,
                "snippet": self.snippet,
                "marking": self.marking,
                "locator": dict(self.locator),
                "section_path": list(self.section_path),
            }
        )
        return out


@dataclass(frozen=True)
class SearchResult:
    """Hits best first; ``marking`` is the join of the hits' markings (UNCLASSIFIED if none)."""

    query: str
    k: int
    hits: list[SearchHit] = field(default_factory=list)
    total: int = 0
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    marking: str = UNCLASSIFIED.banner()
    #: ``hybrid`` (full text and vectors, fused) or ``text`` (full text only: no readable
    #: chunk has a vector the reader may use -- as in an empty result); ``notes`` says why.
    mode: str = "text"
    notes: tuple[str, ...] = (TEXT_ONLY,)
    #: ``compilation`` findings of the rules that raised the page (see the module docs).
    findings: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {
            "query": self.query,
            "k": self.k,
            "marking": self.marking,
            "mode": self.mode,
            "notes": list(self.notes),
            "total": self.total,
            "facets": {name: dict(counts) for name, counts in self.facets.items()},
            "hits": [h.to_dict() for h in self.hits],
        }
        if self.findings:
            out["findings"] = [dict(f) for f in self.findings]
        return out


def search(
    session: Session,
    query: str,
    *,
    k: int = 10,
    filters: Mapping[str, str] | None = None,
    labels: Sequence[str] = (),
) -> SearchResult:
    """The ``k`` best readable chunks for ``query`` (hybrid BM25 + vector, RRF-fused).

    ``filters``: ``doc`` (document id), ``source``, ``media_type``, ``language``,
    ``max_marking`` (a ceiling: only chunks it dominates), ``ingested_from`` /
    ``ingested_to`` (ISO dates or times, inclusive). ``labels``: ``NAME=LABEL`` strings, on
    predictions the subject may read (see the module docs). Raises InvalidInput for an unknown
    filter, a bad value, an empty or over-long query, or ``k`` outside 1..1000. Audited as
    ``search``.
    """
    session.require(Action.READ, AuditAction.SEARCH)
    text = query.strip()
    if not text:
        raise InvalidInput("The search query is empty: give at least one word.")
    if len(text) > MAX_QUERY:
        raise InvalidInput(f"The search query is longer than {MAX_QUERY} characters.")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidInput(f"k must be a whole number from 1 to {MAX_K}.")
    chosen = _validate_filters(filters or {})
    wanted = parse_labels(labels)
    index = session.workspace.index
    rules = workspace_rules(session)
    withheld = 0
    withholding: frozenset[str] = frozenset()
    with catalog_view(session) as view:
        ranked = _search(session, view, index, text, k, chosen, wanted)
    if isinstance(ranked, SearchResult):
        result = ranked
    else:
        # The query is embedded outside the catalog transaction: opening a registered model
        # reads the registry and audits its use, each in a transaction of its own.
        vector_ranked = _vector_order(
            session, index, text, ranked.vector_where, max(k, VECTOR_DEPTH), ranked.columns
        )
        with catalog_view(session) as view:
            result, withheld, withholding = _fuse(view, ranked, vector_ranked, rules)
    details: dict[str, Any] = {
        "query_length": len(text),
        "k": k,
        "hits": len(result.hits),
        "filters": sorted(chosen) + (["label"] if wanted else []),
        "mode": result.mode,
    }
    if result.findings or withheld:
        # The audit log is marked at system high: it may say what the reader is not told.
        details["compilation"] = sorted({str(f["rule"]) for f in result.findings} | withholding)
        details["withheld"] = withheld
    session.audit(AuditAction.SEARCH, object_marking=result.marking, details=details)
    return result


def _validate_filters(filters: Mapping[str, str]) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for key, raw in filters.items():
        if key not in FILTER_KEYS:
            raise InvalidInput(
                f"Unknown search filter {key!r}: use one of {', '.join(FILTER_KEYS)}."
            )
        value = str(raw).strip()
        if not value:
            raise InvalidInput(f"The search filter {key!r} needs a value.")
        if key == "doc":
            value = value.lower()
            if not _HEX.fullmatch(value):
                raise InvalidInput("The doc filter takes a document id (64 hex characters).")
        elif key in ("ingested_from", "ingested_to"):
            value = _iso_bound(key, value)
        chosen[key] = value
    return chosen


def _iso_bound(key: str, value: str) -> str:
    """A UTC ISO 8601 bound comparable with the index's ``ingested_at`` strings."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            if key == "ingested_to":  # a date bound covers the whole day
                return moment.replace(hour=23, minute=59, second=59, microsecond=999999).isoformat()
            return moment.isoformat()
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"The {key} filter takes an ISO date or time (2024-05-01 or 2024-05-01T12:00:00Z)."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def _search(
    session: Session,
    view: CatalogView,
    index: ChunkIndex,
    query: str,
    k: int,
    filters: dict[str, str],
    labels: LabelFilter | None = None,
) -> SearchResult | _Ranked:
    """The full-text side of a search (or its empty result), in one catalog transaction."""
    empty = SearchResult(query=query, k=k)
    readable = view.readable
    if "doc" in filters and not view.reads_document(filters["doc"]):
        return empty  # a document one may not read is filtered on like one that is not there
    allowed = set(readable)
    ceiling: Marking | None = None
    if "max_marking" in filters:
        ceiling = session.parse_marking(filters["max_marking"])
        allowed = {m for m in allowed if dominates(ceiling, view.marking(m))}
    columns = index.columns()
    if not allowed or not columns:
        return empty
    clauses = [view.index_filter(allowed)]
    labelled: dict[str, list[Marking]] = {}
    if labels:
        # Under a ceiling, only predictions within it count (the page stays at that level).
        labelled = view.labelled_chunks(labels, ceiling)
        if not labelled:
            return empty  # nothing readable carries the label: as if nobody had it
        clauses.append(f"chunk_id IN ({', '.join(quote_sql(c) for c in labelled)})")
    doc_level = [key for key in filters if key in _DOC_FILTERS or key.startswith("ingested_")]
    wanted = {_DOC_FILTERS.get(key, "ingested_at") for key in doc_level}
    if "language" in filters:
        wanted.add("language")
    missing = sorted(wanted - columns)
    if missing:
        raise InvalidInput(
            f"The search index has no {', '.join(missing)} column yet: run the pipeline "
            "(garrison run) again to rebuild it before filtering on it."
        )
    if doc_level:
        # Document metadata is as sensitive as the document: filter only on readable ones.
        clauses.append(view.index_filter(readable, column="doc_marking_id"))
    for key, value in filters.items():
        if key == "doc":
            clauses.append(f"doc_id = {quote_sql(value)}")
        elif key in _DOC_FILTERS or key == "language":
            clauses.append(f"{_DOC_FILTERS.get(key, key)} = {quote_sql(value)}")
        elif key == "ingested_from":
            clauses.append(f"ingested_at >= {quote_sql(value)}")
        elif key == "ingested_to":
            clauses.append(f"ingested_at <= {quote_sql(value)}")
    where = " AND ".join(f"({c})" for c in clauses)
    size = index.count(where)
    if size == 0:
        return empty
    index.ensure_fts()
    # The catalog is the record of truth: rows of chunks gone or re-marked since indexing
    # (a document whose marking rose) are neither ranked, counted nor faceted.
    rows = index.full_text_columns(
        query, where, limit=size, columns=[c for c in NARROW if c in columns]
    )
    found = matches(
        view, rows, allowed, doc_level=bool(doc_level), labelled=labelled if labels else None
    )
    text_ranked = bm25_order(query, found, size)
    # Vectors are marked on their own: only those the reader may read (within the ceiling).
    vectors = view.index_filter(allowed, column=vector_marking_column(columns))
    return _Ranked(
        query=query,
        k=k,
        allowed=allowed,
        total=len(found),
        text_ranked=text_ranked,
        facets=facets(view, found),
        vector_where=f"({where}) AND ({vectors})",
        columns=("chunk_id",),
        labels=bool(labels),
        labelled=labelled,
        ceiling=ceiling,
    )


@dataclass(frozen=True)
class _Ranked:
    """A search's full-text side, ranked in the first catalog transaction."""

    query: str
    k: int
    allowed: set[int]
    #: How many readable current chunks the full-text query matches.
    total: int
    #: Their chunk ids, best BM25 first.
    text_ranked: list[str]
    facets: dict[str, dict[str, int]]
    #: The index filter of the rows whose vectors the reader may rank on.
    vector_where: str
    columns: tuple[str, ...]
    #: Whether label filters were given, and the labelled chunks' prediction markings.
    labels: bool = False
    labelled: dict[str, list[Marking]] = field(default_factory=dict)
    #: The ``max_marking`` filter: the page, raised by compilation rules, stays within it.
    ceiling: Marking | None = None


def _fuse(
    view: CatalogView,
    ranked: _Ranked,
    vector_ranked: list[dict[str, Any]] | None,
    rules: Sequence[CompilationRule] = (),
) -> tuple[SearchResult, int, frozenset[str]]:
    """The result: both rankings fused (``None``: no usable vectors, full text only), every
    hit checked against the catalog again, the page raised by ``rules``; how many hits were
    withheld because the raised page would be above the reader (or the ceiling), and the names
    of the rules that withheld them."""
    mode, notes = ("hybrid", ()) if vector_ranked is not None else ("text", (TEXT_ONLY,))
    vector_ranked = vector_ranked or []
    fused = rrf([ranked.text_ranked, [str(r["chunk_id"]) for r in vector_ranked]])
    hits: list[SearchHit] = []
    markings: list[Marking] = []
    # The query is part of what the page combines (as an answer combines its question).
    page = tally(rules, [ranked.query])
    compiled = page.compiled(UNCLASSIFIED)
    withheld = 0
    withholding: set[str] = set()
    # The likely hits in a few queries (the rest, if some are skipped, one by one).
    candidates = (c for c, _ in fused if not ranked.labels or c in ranked.labelled)
    view.load_hits([c for c, _ in zip(candidates, range(2 * ranked.k), strict=False)])
    for chunk_id, score in fused:
        if len(hits) == ranked.k:
            break
        if ranked.labels and chunk_id not in ranked.labelled:
            continue
        hit = _hit(view, chunk_id, score, ranked.query, ranked.allowed)
        if hit is None:
            continue
        shown = [hit[1], *ranked.labelled.get(chunk_id, ())]
        if rules:
            grown = page.merged(tally(rules, [hit[0].snippet, *hit[0].section_path]))
            raised = grown.compiled(join(*markings, *shown))
            if raised.raised and not _within(view, raised.marking, ranked.ceiling):
                withheld += 1  # as if unreadable: the next hit is tried
                withholding.update(rule.name for rule in raised.fired)
                continue
            page, compiled = grown, raised
        hits.append(hit[0])
        markings.extend(shown)
    marking = join(*markings) if markings else UNCLASSIFIED
    findings: tuple[dict[str, Any], ...] = ()
    if hits and compiled.raised:
        marking = join(marking, compiled.marking)
        findings = tuple(fired_details(compiled))
    result = SearchResult(
        query=ranked.query,
        k=ranked.k,
        hits=hits,
        total=ranked.total,
        facets=ranked.facets,
        marking=marking.banner(),
        mode=mode,
        notes=notes,
        findings=findings,
    )
    return result, withheld, frozenset(withholding)


def _within(view: CatalogView, marking: Marking, ceiling: Marking | None) -> bool:
    """May the reader see a page marked ``marking`` (within the search's ceiling)?"""
    if ceiling is not None and not dominates(ceiling, marking):
        return False
    return bool(view.session.can_read(marking))


def _vector_order(
    session: Session,
    index: ChunkIndex,
    query: str,
    where: str,
    depth: int,
    columns: Sequence[str],
) -> list[dict[str, Any]] | None:
    """The nearest rows matching ``where`` (readable vectors only) to the query, embedded with
    the most common of their models the reader may use; ``None`` when there is none."""
    models: Counter[str] = Counter()
    for name, n in index.tally("model", where).items():
        if name:
            models[str(name)] += n
    # Most common model among the readable rows; ties by name, so the choice is stable.
    for name, _ in sorted(models.items(), key=lambda item: (-item[1], item[0])):
        model = _query_model(session, name)
        if model is None:
            continue
        vector = [float(x) for x in model.encode([query])[0]]
        clause = f"({where}) AND (model = {quote_sql(name)})"
        rows = index.nearest(vector, clause, limit=depth, columns=columns)
        return sorted(rows, key=lambda r: (float(r["_distance"]), str(r["chunk_id"])))
    return None


def _query_model(session: Session, name: str) -> EmbeddingModel | None:
    """The model to embed a query with, as the reader may use it; ``None`` when they may not.

    A registered model (recorded as ``NAME@ID12``) opens as the reader -- NotFound, audited as
    a denied read, for one above them or removed -- and its use is audited as ``model.use``.
    """
    from garrison.models import get_model, open_embedder, query_model
    from garrison.models.embedding import LOCAL_PREFIX, MODELS

    if name in MODELS:
        # The workspace's ONNX export when it has one: no torch import for a query.
        return query_model(session.workspace.root, name)
    if name == "hashing" or name.startswith(LOCAL_PREFIX):
        return get_model(name)
    try:
        return open_embedder(session, name, purpose="search")[1]
    except (NotFound, InvalidInput):
        return None


def rrf(rankings: Sequence[Sequence[str]], *, k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal-rank fusion: ``sum(1 / (k + rank))`` per id; best first, ties by id."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _hit(
    view: CatalogView,
    chunk_id: str,
    score: float,
    query: str,
    allowed: set[int],
) -> tuple[SearchHit, Marking] | None:
    chunk = view.readable_chunk(chunk_id, allowed)
    # The catalog is the record of truth: a chunk gone or re-marked since indexing is skipped.
    if chunk is None:
        return None
    marking = view.marking(chunk.marking_id)
    first = chunk.element_ids[0] if chunk.element_ids else None
    return (
        SearchHit(
            chunk_id=chunk.id,
            doc_id=chunk.doc_id if view.reads_document(chunk.doc_id) else None,
            score=round(score, 8),
            snippet=snippet(chunk.text, query),
            marking=marking.banner(),
            locator=view.locator(chunk.doc_id, first),
            section_path=view.headings(
                chunk.doc_id, chunk.section_path or (), chunk.section_marking_ids
            ),
        ),
        marking,
    )


def snippet(text: str, query: str, *, width: int = SNIPPET_CHARS) -> str:
    """A window of at most ``width`` characters of ``text`` around the first query term, with
    every query term wrapped in ``**`` (the markers are not counted in ``width``)."""
    wanted = sorted(set(terms(query)), key=len, reverse=True)
    flat = " ".join(text.split())
    if not wanted:
        return flat[:width]
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in wanted) + r")\b", re.IGNORECASE)
    found = pattern.search(flat)
    start = 0
    if found is not None and found.end() > width:
        start = max(0, found.start() - width // 3)
        space = flat.find(" ", start, found.start())
        if space != -1:
            start = space + 1
    window = flat[start : start + width]
    return pattern.sub(lambda m: f"**{m.group(0)}**", window)
