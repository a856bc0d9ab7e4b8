"""SVG badges for READMEs: /badges/PKG.svg and /badges/PKG/PLATFORM.svg.

"wheelfarm | built" in the colour of the package's status (packages.py); an
unknown package or platform answers 404.
"""

from __future__ import annotations

import html

from packaging.utils import canonicalize_name
from twisted.web import resource, server

from .packages import PackagePages, blocked_targets, package_pages, package_status
from .site import WwwChild

BADGE_COLOURS = {
    "built": "#4c1",
    "failed": "#e05d44",
    "blocked": "#8b5a2b",
    "partly built": "#dfb317",
    "not built": "#9f9f9f",
    "skipped": "#9f9f9f",
}
LABEL = "wheelfarm"
CHAR_WIDTH = 7  # px per character of 11px Verdana, near enough for short words


def badge_svg(status: str, label: str = LABEL) -> bytes:
    left, right = 10 + CHAR_WIDTH * len(label), 10 + CHAR_WIDTH * len(status)
    colour = BADGE_COLOURS.get(status, "#9f9f9f")
    text, title = html.escape(status), html.escape(f"{label}: {status}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + right}" height="20" '
        f'role="img" aria-label="{title}"><title>{title}</title>'
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        '<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" '
        'text-anchor="middle">'
        f'<text x="{left / 2}" y="14">{html.escape(label)}</text>'
        f'<text x="{left + right / 2}" y="14">{text}</text></g></svg>'
    ).encode()


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
        status = package_status(
            package, pages.records(), blocked_targets(pages.store), platform, pages.served
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
