"""Print the API's OpenAPI document: ``python -m garrison.api.openapi > docs/openapi.json``."""

from __future__ import annotations

import json
import sys

from garrison.api._app import create_app

__all__ = ["openapi_text"]


def openapi_text() -> str:
    """The OpenAPI document as committed in ``docs/openapi.json`` (sorted keys, indent 2)."""
    # Building the app opens no workspace; the path is never used.
    app = create_app("/nonexistent-garrison-workspace")
    return json.dumps(app.openapi(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(openapi_text())
