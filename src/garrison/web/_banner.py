"""The classification banner of a page: the join of every marking the page shows.

A route collects each marking it renders into a :class:`PageMarkings` while it builds the page
context; the template draws the banner from :meth:`PageMarkings.banner` at the top and the
bottom. Nothing is computed in the browser. A page that shows no marked content (an empty
result, the login page, an error page) is UNCLASSIFIED (CLI.md: "An empty result ... is marked
UNCLASSIFIED").

Colours are the conventional ones (green U, purple CUI, blue C, red S, orange TS, yellow
TS/SCI), from the one table dataset cards use too (:mod:`garrison.datasets.banner_colors`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from garrison.datasets.banner_colors import BANNER_STYLES, BannerStyle, banner_style
from garrison.security.markings import UNCLASSIFIED, Marking, join
from garrison.store.session import Session

__all__ = ["BANNER_STYLES", "BannerStyle", "PageMarkings", "banner_style"]


@dataclass
class PageMarkings:
    """Every marking rendered on one page, joined into the page's banner."""

    session: Session | None = None
    _markings: list[Marking] = field(default_factory=list)
    _parsed: dict[str, Marking] = field(default_factory=dict)

    def add(self, marking: Marking | str | None) -> str | None:
        """Record a marking shown on the page (a banner string or a Marking; None is nothing).

        Returns the banner text, so a template context can be built in one expression.
        """
        if marking is None:
            return None
        if isinstance(marking, str):
            self._parse(marking)
            return marking
        self._markings.append(marking)
        return marking.banner()

    def portion(self, marking: str | None) -> str | None:
        """Record ``marking`` (a banner string) and return its portion mark, e.g. ``(S//NF)``."""
        if marking is None:
            return None
        return self._parse(marking).portion()

    def _parse(self, banner: str) -> Marking:
        parsed = self._parsed.get(banner)
        if parsed is None:
            if self.session is None:
                raise ValueError("A PageMarkings without a session takes Marking objects only.")
            parsed = self._parsed[banner] = self.session.parse_marking(banner)
            self._markings.append(parsed)
        return parsed

    def marking(self) -> Marking:
        """The join of everything recorded (UNCLASSIFIED when nothing was)."""
        return join(*self._markings) if self._markings else UNCLASSIFIED

    def banner(self) -> str:
        return self.marking().banner()

    def style(self) -> BannerStyle:
        return banner_style(self.marking())
