"""Datasets: versioned, content-addressed snapshots with leakage-free splits, exports and cards."""

from garrison.datasets._records import FIELDS, DatasetRecord, Selection, select_records
from garrison.datasets._splits import assign_splits, parse_ratios
from garrison.datasets._versions import Datasets, DatasetVersion, SnapshotRecord

__all__ = [
    "FIELDS",
    "DatasetRecord",
    "DatasetVersion",
    "Datasets",
    "Selection",
    "SnapshotRecord",
    "assign_splits",
    "parse_ratios",
    "select_records",
]
