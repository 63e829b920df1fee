"""Evaluation: suites built from datasets, models and the assistant tested before deployment,
and the red team that looks for answers above the asker's clearance. Nothing imports it.

Runs (:class:`Runs`, :mod:`garrison.evaluate._runs`) put a system under test
(:class:`SystemSpec`, :func:`parse_system`) to a suite's items and record every result, marked.
"""

from garrison.evaluate._failed import FailedRecords, failed_records, label_failed
from garrison.evaluate._runs import ItemResult, Runs, RunSummary, RunWriter
from garrison.evaluate._systems import SystemSpec, parse_system

__all__ = [
    "FailedRecords",
    "ItemResult",
    "RunSummary",
    "RunWriter",
    "Runs",
    "SystemSpec",
    "failed_records",
    "label_failed",
    "parse_system",
]
