"""Shared core: typed records, ids, errors, configuration and clock. No I/O beyond the stdlib."""

from garrison.core.errors import (
    AccessExpressionError,
    AuditWriteError,
    CheckFailed,
    EnvironmentProblem,
    GarrisonError,
    InvalidInput,
    KeyFileError,
    MarkingError,
    MissingExtra,
    NotFound,
    NotPermitted,
    UnsupportedMarking,
    WorkspaceError,
)

__all__ = [
    "AccessExpressionError",
    "AuditWriteError",
    "CheckFailed",
    "EnvironmentProblem",
    "GarrisonError",
    "InvalidInput",
    "KeyFileError",
    "MarkingError",
    "MissingExtra",
    "NotFound",
    "NotPermitted",
    "UnsupportedMarking",
    "WorkspaceError",
]
