"""Garrison's exception tree.

Every expected failure is a :class:`GarrisonError`. Each subclass carries the exit code that the
command line uses for it (see ``docs/cli.md``) and context as attributes, so adapters (CLI, REST
API, web UI) translate errors without parsing their text::

    GarrisonError
    ├── CheckFailed              exit 1  a verification found a problem (tampered audit log)
    ├── InvalidInput             exit 2  malformed input, bad option, existing path
    │   ├── MarkingError                 a marking breaks a rule (``rule`` names it)
    │   │   └── UnsupportedMarking       a non-US form without its leading //: rejected
    │   ├── AccessExpressionError        an access expression is malformed (``offset``)
    │   └── ParseFailure                 a file cannot be parsed (garrison.parse; ``reason``)
    ├── NotFound                 exit 3  unknown id -- also what an unreadable object looks like
    ├── NotPermitted             exit 4  the subject's role or clearance forbids the action
    │   ├── LoginRequired                web UI: no live session (sent to the sign-in page)
    │   └── CsrfFailed                   web UI: a form came back without its CSRF token
    └── EnvironmentProblem       exit 5  workspace missing/corrupt, key unreadable, service down
        ├── WorkspaceError
        ├── KeyFileError
        ├── AuditWriteError              the audit log could not record an action (fail closed)
        ├── DiskFull                     a disk Garrison writes to is full (``where``)
        ├── ServiceUnavailable           a service is unreachable or answers garbage (``reason``)
        ├── UnencryptedStorage           the index's bucket lacks server-side encryption above U
        ├── RayClusterFailure            Ray failed under a run (a lost node; garrison.pipeline)
        └── MissingExtra                 an optional dependency is not installed
"""

from __future__ import annotations

import errno

__all__ = [
    "AccessExpressionError",
    "AuditWriteError",
    "CheckFailed",
    "CsrfFailed",
    "DiskFull",
    "EnvironmentProblem",
    "GarrisonError",
    "InvalidInput",
    "KeyFileError",
    "LoginRequired",
    "MarkingError",
    "MissingExtra",
    "NotFound",
    "NotPermitted",
    "ServiceUnavailable",
    "UnencryptedStorage",
    "UnsupportedMarking",
    "WorkspaceError",
    "disk_full",
]


class GarrisonError(Exception):
    """Root of every expected Garrison failure; ``str(err)`` is one plain sentence."""

    exit_code: int = 1
    #: Short machine-readable code (``invalid-marking``, ``not-found``...) for JSON error bodies.
    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class CheckFailed(GarrisonError):
    """A verification ran and found a problem (for example a tampered audit log)."""

    exit_code = 1
    code = "check-failed"


class InvalidInput(GarrisonError):
    """The caller's input or usage is wrong; nothing was changed."""

    exit_code = 2
    code = "invalid-input"


class MarkingError(InvalidInput):
    """A marking could not be parsed or breaks a marking rule.

    ``rule`` is a stable identifier of the broken rule (``noforn-with-release``,
    ``unknown-token``...), ``text`` the offending input.
    """

    code = "invalid-marking"

    def __init__(self, message: str, *, rule: str, text: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.text = text


class UnsupportedMarking(MarkingError):
    """A non-US, NATO or JOINT classification written without its leading ``//``: rejected,
    never guessed."""

    code = "unsupported-marking"


class AccessExpressionError(InvalidInput):
    """An access expression is malformed; ``offset`` is the 0-based character position."""

    code = "invalid-expression"

    def __init__(self, message: str, *, offset: int, expression: str | None = None) -> None:
        super().__init__(message)
        self.offset = offset
        self.expression = expression


class NotFound(GarrisonError):
    """Nothing with that id exists -- or the subject may not know that it does."""

    exit_code = 3
    code = "not-found"


class NotPermitted(GarrisonError):
    """The subject may not perform this action (role, ceiling, DISPLAY ONLY export)."""

    exit_code = 4
    code = "not-permitted"


class LoginRequired(NotPermitted):
    """No live web session: the browser is sent to the sign-in page."""

    code = "login-required"

    def __init__(self, message: str = "Sign in to continue.") -> None:
        super().__init__(message)


class CsrfFailed(NotPermitted):
    """A web form came back without the session's CSRF token."""

    code = "csrf-failed"

    def __init__(self, message: str = "The form was not sent by this session.") -> None:
        super().__init__(message)


class EnvironmentProblem(GarrisonError):
    """Something around Garrison is wrong: workspace, keys, a service, a missing extra."""

    exit_code = 5
    code = "environment"


class WorkspaceError(EnvironmentProblem):
    """The workspace is missing, incomplete or corrupt."""

    code = "workspace"


class KeyFileError(EnvironmentProblem):
    """A key file is missing, unreadable or malformed."""

    code = "key-file"


class AuditWriteError(EnvironmentProblem):
    """The audit log could not record an action, so the action was not carried out."""

    code = "audit-write"


class DiskFull(EnvironmentProblem):
    """A disk (or quota) that Garrison writes to is full; nothing half-written was committed.

    ``where`` names what could not be written (the blob store, the catalog, the chunk index,
    the audit log) and its path.
    """

    code = "disk-full"

    def __init__(self, where: str) -> None:
        super().__init__(
            f"The disk holding {where} is full (no space left on device); free space there "
            "and run the command again (it resumes where it stopped)."
        )
        self.where = where


#: How third-party libraries spell "no space": OS errors, SQLite, Lance (Rust), PostgreSQL.
_FULL_TEXT = ("no space left on device", "database or disk is full", "os error 28", "disk quota")


def disk_full(exc: BaseException, where: str) -> DiskFull | None:
    """``DiskFull`` for ``where`` when ``exc`` (or what it wraps) reports a full disk, else None.

    Callers at a storage boundary use it to translate the error: ``raise found from exc``.
    """
    seen: BaseException | None = exc
    for _ in range(8):  # the chain of causes is short; never loop on a cycle
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return DiskFull(where)
        if any(text in str(seen).lower() for text in _FULL_TEXT):
            return DiskFull(where)
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


class ServiceUnavailable(EnvironmentProblem):
    """A service Garrison calls (a generator endpoint) is unreachable or answers garbage.

    ``service`` names it (a URL, never with credentials), ``reason`` is a stable code:
    ``unreachable``, ``timeout``, ``http-status``, ``bad-answer``.
    """

    code = "service-unavailable"

    def __init__(self, message: str, *, service: str, reason: str) -> None:
        super().__init__(message)
        self.service = service
        self.reason = reason


class UnencryptedStorage(EnvironmentProblem):
    """Above UNCLASSIFIED the search index (text in the clear) may only live in a bucket that
    enforces server-side encryption; ``url`` names the place, ``reason`` is a stable code:
    ``no-default-encryption``."""

    code = "unencrypted-storage"

    def __init__(self, message: str, *, url: str, reason: str) -> None:
        super().__init__(message)
        self.url = url
        self.reason = reason


class MissingExtra(EnvironmentProblem):
    """An optional dependency is missing; the message names the command that installs it."""

    code = "missing-extra"

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(
            f"This needs the optional package {module!r}; install it with "
            f"`pip install 'garrison[{extra}]'`."
        )
        self.extra = extra
        self.module = module
