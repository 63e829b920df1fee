"""One JSON error shape for every failure the API returns.

``{"error": {"code": "<code>", "message": "<one sentence>"}}`` -- for Garrison's own errors,
request validation, unknown routes, wrong methods and unexpected failures alike. Messages come
from the library (which already words not-found identically for forbidden and missing ids) and
never echo the request beyond what those messages say.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from garrison.api._login_limit import TooManyLoginFailures
from garrison.core.errors import (
    CheckFailed,
    EnvironmentProblem,
    GarrisonError,
    InvalidInput,
    NotFound,
    NotPermitted,
)
from garrison.store.tokens import AuthenticationFailed

__all__ = ["ERROR_RESPONSES", "ErrorBody", "ErrorDetail", "error_response", "install_handlers"]

_log = logging.getLogger("garrison.api")


class ErrorDetail(BaseModel):
    """What went wrong: a stable machine-readable code and one plain sentence."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


#: Documented on every operation, so clients (and schemathesis) know the error shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "Invalid input"),
        (401, "Missing or invalid credentials"),
        (403, "The subject's role does not permit this"),
        (404, "Not found -- or not readable by the subject, which looks the same"),
        (422, "Invalid request parameters"),
        (429, "Too many failed logins from this address: retry after Retry-After seconds"),
        (503, "The workspace or a service is unavailable"),
    )
}

_STATUS_CODES = {
    400: "invalid-input",
    401: "unauthenticated",
    403: "not-permitted",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "check-failed",
    413: "too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    429: "too-many-requests",
    500: "internal",
    503: "environment",
}
_STATUS_MESSAGES = {
    404: "There is no such endpoint; the API is described at /openapi.json.",
    405: "This endpoint does not accept that HTTP method.",
}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A response in the one error shape."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def status_for(exc: GarrisonError) -> int:
    """The HTTP status a Garrison error maps to."""
    if isinstance(exc, TooManyLoginFailures):
        return 429
    if isinstance(exc, AuthenticationFailed):
        return 401
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, NotPermitted):
        return 403
    if isinstance(exc, InvalidInput):
        return 400
    if isinstance(exc, CheckFailed):
        return 409
    if isinstance(exc, EnvironmentProblem):
        return 503
    return 500


def _garrison_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GarrisonError)
    status = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, TooManyLoginFailures):
        headers = {"Retry-After": str(exc.retry_after)}
    return error_response(status, exc.code, exc.message, headers)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if errors:
        first = errors[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "query")
        message = (
            f"Invalid parameter {where}: {str(first.get('msg', 'invalid value')).rstrip('.')}."
        )
    else:
        message = "The request's parameters are invalid."
    return error_response(422, "invalid-input", message)


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    message = _STATUS_MESSAGES.get(status, f"The request failed with HTTP status {status}.")
    return error_response(status, _STATUS_CODES.get(status, "error"), message, exc.headers)


def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    _log.error("unexpected error in the API", exc_info=exc)
    return error_response(
        500,
        "internal",
        "The server met an unexpected error; its administrator can find it in the server log.",
    )


def install_handlers(app: FastAPI) -> None:
    """Route every failure through the one error shape."""
    app.add_exception_handler(GarrisonError, _garrison_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
