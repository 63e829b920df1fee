"""Search: hybrid (BM25 + vector, reciprocal-rank fused) over readable chunks only.

See :mod:`garrison.search._search` for the ranking and the definitions of ``total`` and
``facets``.
"""

from garrison.search._search import (
    FILTER_KEYS,
    MAX_K,
    RRF_K,
    SearchHit,
    SearchResult,
    rrf,
    search,
    snippet,
)

__all__ = ["FILTER_KEYS", "MAX_K", "RRF_K", "SearchHit", "SearchResult", "rrf", "search", "snippet"]
