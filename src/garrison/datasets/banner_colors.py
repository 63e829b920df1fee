"""The conventional banner colours, shared by dataset cards and the web UI.

=====================  ==========  ======
banner                 background  text
=====================  ==========  ======
UNCLASSIFIED           #007A33     white
CUI                    #502B85     white
CONFIDENTIAL           #0033A0     white
SECRET                 #C8102E     white
TOP SECRET             #FF8C00     black
TOP SECRET with SCI    #FCE83A     black
=====================  ==========  ======
"""

from __future__ import annotations

from dataclasses import dataclass

from garrison.security.markings import Level, Marking

__all__ = ["BANNER_STYLES", "BannerStyle", "banner_style"]


@dataclass(frozen=True)
class BannerStyle:
    """How a banner is drawn: a CSS class (in the web UI's garrison.css) and its colours."""

    css_class: str
    background: str
    color: str


#: Banner styles by name; the CSS classes in web/static/garrison.css use the same colours.
BANNER_STYLES = {
    "unclassified": BannerStyle("banner-u", "#007A33", "#FFFFFF"),
    "cui": BannerStyle("banner-cui", "#502B85", "#FFFFFF"),
    "confidential": BannerStyle("banner-c", "#0033A0", "#FFFFFF"),
    "secret": BannerStyle("banner-s", "#C8102E", "#FFFFFF"),
    "top-secret": BannerStyle("banner-ts", "#FF8C00", "#000000"),
    "top-secret-sci": BannerStyle("banner-ts-sci", "#FCE83A", "#000000"),
}


def banner_style(marking: Marking) -> BannerStyle:
    """The conventional colours for ``marking``'s banner: yellow for TS with any SCI, orange
    TS, red S, blue C, purple CUI, green U."""
    if marking.level >= Level.TS:
        return BANNER_STYLES["top-secret-sci" if marking.sci else "top-secret"]
    if marking.level == Level.S:
        return BANNER_STYLES["secret"]
    if marking.level == Level.C:
        return BANNER_STYLES["confidential"]
    if marking.level == Level.CUI or marking.cui:
        return BANNER_STYLES["cui"]
    return BANNER_STYLES["unclassified"]
