"""Ingest: sources -> blobs, documents and marked elements in the catalog.

``apply_markings`` is the pure heart of it: the marking rules applied to one parsed document.
"""

from garrison.ingest.marking import Finding, MarkedDocument, MarkedElement, apply_markings

__all__ = ["Finding", "MarkedDocument", "MarkedElement", "apply_markings"]
