"""The API's documentation pages, served with their assets from the package.

FastAPI's default ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) pages load their scripts, styles
and fonts from public CDNs, so on a closed network they stay blank. :func:`install_docs`
replaces them with pages whose every asset lives under ``garrison/api/static`` and is served at
``/docs/assets/`` (see the README there for versions and licences):

- ``/docs``: Swagger UI started by ``swagger-init.js`` with the validator badge off (it would
  ask ``validator.swagger.io``);
- ``/redoc``: ReDoc started by ``redoc-init.js`` with a system font stack (no Google Fonts).

Both pages carry a Content-Security-Policy that allows this origin only, so a browser refuses
any request elsewhere even if a future asset tried one. Scripts are files (no inline script);
inline *styles* are allowed on these two pages only, because Swagger UI and ReDoc set element
styles at run time. ReDoc's search index runs in a worker it creates from a ``blob:`` URL.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from markupsafe import escape

__all__ = ["ASSETS", "DOCS_CSP", "install_docs"]

#: Where the documentation assets are served.
ASSETS = "/docs/assets"
#: The policy of the two documentation pages.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": DOCS_CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

_SWAGGER = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - Swagger UI</title>
<link rel="stylesheet" href="{assets}/swagger-ui/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/swagger-ui/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{assets}/swagger-ui/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-ui/swagger-init.js"></script>
</body>
</html>
"""

_REDOC = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - ReDoc</title>
<link rel="icon" type="image/png" href="{assets}/swagger-ui/favicon-32x32.png">
</head>
<body>
<div id="redoc" data-openapi-url="{openapi}"></div>
<script src="{assets}/redoc/redoc.standalone.js"></script>
<script src="{assets}/redoc/redoc-init.js"></script>
</body>
</html>
"""


def _page(template: str, app: FastAPI, request: Request) -> HTMLResponse:
    root = str(request.scope.get("root_path", "")).rstrip("/")
    html = template.format(
        title=escape(app.title),
        assets=escape(root + ASSETS),
        openapi=escape(root + (app.openapi_url or "/openapi.json")),
    )
    return HTMLResponse(html, headers=_HEADERS)


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` from packaged assets (create the app with
    ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages are not registered)."""
    app.mount(ASSETS, StaticFiles(packages=[("garrison.api", "static")]), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        return _page(_SWAGGER, app, request)

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        return _page(_REDOC, app, request)
