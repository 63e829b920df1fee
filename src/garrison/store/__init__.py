"""Storage: workspace, catalog, sessions, audit-log persistence, keys.

The entry points are :class:`Workspace` (configuration and connections) and the
:class:`Session` it opens for a subject -- the single policy enforcement point. Capabilities
reach the catalog and the index only through the store modules' functions, called with a
session (``store.datasets``, ``store.jobs``, ``store.pipeline_state``, ``store.catalog_reads``,
``store.documents``, ``store.derived``, ``store.index``).
"""

from garrison.store.session import Session, SubjectSpec
from garrison.store.workspace import Workspace

__all__ = ["Session", "SubjectSpec", "Workspace"]
