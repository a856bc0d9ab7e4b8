"""The one table of status names and colours.

The package pages, the campaign pages and the badges colour a status from here: the
stylesheet (templates/style.css) gives each status a CSS class with its colour, and the
badges fill with it. A status a package and a campaign share ("failed", "blocked") has
one colour.
"""

from __future__ import annotations

from ..cascade.campaign import BLOCKED, BUILDING, DONE, FAILED, WAITING
from ..state.status import CANCELLED_ROW

# A package's (and a target's) status, worst first.
PKG_FAILED, PKG_BLOCKED, PKG_PARTIAL, PKG_NOT_BUILT, PKG_BUILT, PKG_SKIPPED = (
    "failed",
    "blocked",
    "partly built",
    "not built",
    "built",
    "skipped",
)
PACKAGE_STATES = (PKG_FAILED, PKG_BLOCKED, PKG_PARTIAL, PKG_NOT_BUILT, PKG_BUILT, PKG_SKIPPED)
# A target no worker offers (platform, Python) and that was never built: it is shown,
# but it counts in no package's status, which is about what this farm can build.
PKG_NOT_OFFERED = "not offered"

# A campaign's build states, in the order its pages show them.
CAMPAIGN_STATES = (DONE, BUILDING, WAITING, BLOCKED, FAILED)
_LABELS = {WAITING: "waiting for parents"}  # the other states read as they are named

GREEN, AMBER, RED, BROWN = "#2e7d32", "#f9a825", "#c62828", "#6d4c41"
GREY, LIGHT_GREY, LIGHTER_GREY = "#9e9e9e", "#bdbdbd", "#e0e0e0"
COLOURS: dict[str, str] = {
    PKG_BUILT: GREEN,
    DONE: GREEN,
    PKG_FAILED: RED,  # and a campaign's FAILED, the same word
    PKG_BLOCKED: BROWN,  # and a campaign's BLOCKED
    PKG_PARTIAL: AMBER,
    BUILDING: AMBER,
    PKG_NOT_BUILT: GREY,
    WAITING: GREY,
    CANCELLED_ROW: GREY,
    PKG_SKIPPED: LIGHT_GREY,
    PKG_NOT_OFFERED: LIGHTER_GREY,
}
UNKNOWN = GREY  # a status this table does not know (never expected)


def colour(status: str) -> str:
    return COLOURS.get(status, UNKNOWN)


def css_class(status: str) -> str:
    """The status's class in the stylesheet: "partly built" -> "partly-built"."""
    return status.replace(" ", "-")


def label(state: str) -> str:
    """What a campaign state reads as on the pages."""
    return _LABELS.get(state, state)
