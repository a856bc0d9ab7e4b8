"""SVG badges for READMEs: /badges/PKG.svg and /badges/PKG/PLATFORM.svg.

"wheelfarm | built" in the colour of the package's status (status_colours.py),
from templates/badge.svg; an unknown package or platform answers 404.
"""

from __future__ import annotations

from packaging.utils import canonicalize_name
from twisted.web import resource, server

from .packages import PackagePages, blocked_targets, loading, package_pages, package_status
from .render import render
from .site import WwwChild
from .status_colours import colour

LABEL = "wheelfarm"
CHAR_WIDTH = 7  # px per character of 11px Verdana, near enough for short words


def badge_svg(status: str, label: str = LABEL) -> bytes:
    left, right = 10 + CHAR_WIDTH * len(label), 10 + CHAR_WIDTH * len(status)
    return render(
        "badge.svg", status=status, label=label, colour=colour(status), left=left, right=right
    )


class Badges(resource.Resource):
    isLeaf = True

    def __init__(self, pages: PackagePages) -> None:
        super().__init__()
        self.pages = pages

    def render_GET(self, request: server.Request) -> bytes:
        parts = [p.decode("utf-8", "replace") for p in request.postpath if p]
        if not parts or not parts[-1].endswith(".svg") or len(parts) > 2:
            return self._missing(request)
        parts[-1] = parts[-1][: -len(".svg")]
        package = self.pages.registry.packages.get(canonicalize_name(parts[0]))
        platform = parts[1] if len(parts) == 2 else None
        if package is None or (platform is not None and platform not in package.platforms):
            return self._missing(request)
        pages = self.pages
        records = pages.records()
        if records is None:
            return loading(request)
        status = package_status(
            package, records, blocked_targets(pages.store), platform, pages.served
        )
        request.setHeader(b"content-type", b"image/svg+xml")
        request.setHeader(b"cache-control", b"max-age=60")  # README viewers cache it briefly
        return badge_svg(status, LABEL if platform is None else f"{LABEL} {platform}")

    def _missing(self, request: server.Request) -> bytes:
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"no such package or platform in the registry\n"


class BadgeService(WwwChild):
    child = b"badges"

    def make_resource(self, **kwargs) -> resource.Resource:
        return Badges(package_pages(self, **kwargs))
