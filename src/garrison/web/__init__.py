"""Garrison's web UI: server-rendered pages beside the REST API (``garrison serve``, ``/ui``).

Every page reads through the library as the signed-in subject and carries the classification
banner of everything it shows, top and bottom. See docs/web.md.
"""

from garrison.web._app import CSP, build_ui, create_app, mount_ui
from garrison.web._banner import BANNER_STYLES, BannerStyle, PageMarkings, banner_style
from garrison.web._sessions import SessionStore, WebSettings

__all__ = [
    "BANNER_STYLES",
    "CSP",
    "BannerStyle",
    "PageMarkings",
    "SessionStore",
    "WebSettings",
    "banner_style",
    "build_ui",
    "create_app",
    "mount_ui",
]
