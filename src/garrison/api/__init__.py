"""Garrison's REST API: a thin FastAPI adapter over the library (``garrison serve``)."""

from garrison.api._app import create_app
from garrison.api._auth import CLIENT_DN_KEY
from garrison.api._errors import ErrorBody, ErrorDetail
from garrison.api._marking import MARKING_HEADER

__all__ = ["CLIENT_DN_KEY", "MARKING_HEADER", "ErrorBody", "ErrorDetail", "create_app"]
