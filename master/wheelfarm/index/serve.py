"""The farm's index over HTTP: PEP 503/691 pages (HTML and JSON, by content negotiation),
with PEP 658/714 metadata files, for pip and uv. The master mounts it at /simple/
(web/site.py); `python -m wheelfarm.index.serve ROOT` serves a folder on its own.
"""

from __future__ import annotations

import argparse
import html
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from packaging.utils import (
    canonicalize_name,
)
from packaging.version import Version
from twisted.web import resource, server, static

from .store import Index

try:
    import fcntl
except ImportError:  # Windows: the thread lock alone (one master process per index)
    fcntl = None  # type: ignore[assignment]


# -- serving (PEP 503, 629, 658, 691, 700, 714)

JSON = "application/vnd.pypi.simple.v1+json"
V1_HTML = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
API_VERSION = "1.1"
# Tie order: the most widely understood first, so `*/*` (curl, browsers) gets text/html.
OFFERS = (TEXT_HTML, V1_HTML, JSON)
ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON,
    "application/vnd.pypi.simple.latest+html": V1_HTML,
}
SIDE_FILES = {".metadata": "text/plain; charset=utf-8", ".json": "application/json"}
CONTENT_TYPES = {
    JSON: JSON,
    V1_HTML: f"{V1_HTML}; charset=utf-8",
    TEXT_HTML: "text/html; charset=utf-8",
}


def negotiate(accept: str | None) -> str | None:
    """The format to answer with (PEP 691), or None when nothing acceptable is on offer.

    An offer's quality comes from the most specific range that matches it (RFC 9110);
    the best quality wins, then the more specific match, then the earlier range.
    """
    if accept is None or not accept.strip():
        return TEXT_HTML
    ranges = []
    for position, item in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        ranges.append((ALIASES.get(media, media), quality, position))
    best, best_key = None, None
    for rank, offer in enumerate(OFFERS):
        specificity_of = {offer: 2, f"{offer.split('/')[0]}/*": 1, "*/*": 0}
        matches = [(specificity_of[m], q, pos) for m, q, pos in ranges if m in specificity_of]
        if not matches:
            continue
        specificity, quality, position = max(matches, key=lambda m: (m[0], -m[2]))
        key = (quality, specificity, -position, -rank)
        if quality > 0 and (best_key is None or key > best_key):
            best, best_key = offer, key
    return best


class SimpleIndexResource(resource.Resource):
    """/simple/ and everything under it, for an `Index`; read-only (GET and HEAD)."""

    isLeaf = True

    def __init__(self, index: Index) -> None:
        super().__init__()
        self.index = index
        self._listing: tuple[tuple[str, ...], dict[str, bytes]] = ((), {})

    def render_GET(self, request: server.Request) -> bytes | int:
        try:
            path = [p.decode("utf-8") for p in request.postpath or []]
        except UnicodeDecodeError:
            return _not_found(request)
        base = "/" + "/".join(p.decode("utf-8", "replace") for p in request.prepath or []) + "/"
        if not path:
            return _redirect(request, base)
        if path == [""]:
            return self._project_list(request)
        project = canonicalize_name(path[0])
        if not self.index.has_project(project):
            return _not_found(request)
        if len(path) == 1 or (path[1] == "" and path[0] != project):
            return _redirect(request, f"{base}{project}/")
        if len(path) == 2 and path[1] == "":
            return self._project_page(request, project)
        if len(path) == 2 and path[0] == project:
            return self._file(request, project, path[1])
        return _not_found(request)

    def _negotiated(self, request: server.Request) -> str | None:
        request.setHeader(b"vary", b"Accept")
        accept = request.getHeader(b"accept")
        chosen = negotiate(accept.decode("latin-1") if accept is not None else None)
        if chosen is None:
            request.setResponseCode(406)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        else:
            request.setHeader(b"content-type", CONTENT_TYPES[chosen].encode())
            # pages change with every build; files never do
            request.setHeader(b"cache-control", b"no-cache")
        return chosen

    def _project_list(self, request: server.Request) -> bytes:
        chosen = self._negotiated(request)
        if chosen is None:
            return _not_acceptable()
        names = tuple(self.index.projects())
        listing, pages = self._listing
        if listing != names:  # 15,000 projects: render each format once per change
            pages = {}
            self._listing = (names, pages)
        if chosen not in pages:
            if chosen == JSON:
                body = {
                    "meta": {"api-version": API_VERSION},
                    "projects": [{"name": n} for n in names],
                }
                pages[chosen] = _json(body)
            else:
                links = [f'<a href="{quote(n)}/">{html.escape(n)}</a>' for n in names]
                pages[chosen] = _html("Simple index", links)
        return pages[chosen]

    def _project_page(self, request: server.Request, project: str) -> bytes:
        chosen = self._negotiated(request)
        if chosen is None:
            return _not_acceptable()
        records = self.index.cached_records(project)
        if chosen == JSON:
            return _json(
                {
                    "meta": {"api-version": API_VERSION},
                    "name": project,
                    "versions": sorted({r["version"] for r in records}, key=Version),
                    "files": [_json_file(r) for r in records],
                }
            )
        return _html(f"Links for {project}", [_html_link(r) for r in records])

    def _file(self, request: server.Request, project: str, name: str) -> bytes | int:
        wheel, kind = name, "application/octet-stream"
        for suffix, content_type in SIDE_FILES.items():
            if name.endswith(suffix):
                wheel, kind = name[: -len(suffix)], content_type
                break
        # Only wheels the index published (with a record) are served: nothing the
        # request spells becomes a path unless it is one of those names.
        if wheel not in {r["filename"] for r in self.index.cached_records(project)}:
            return _not_found(request)
        path = self.index.root / project / name
        if not path.is_file() or not path.resolve().is_relative_to(self.index.root.resolve()):
            return _not_found(request)
        request.setHeader(b"cache-control", b"public, max-age=31536000, immutable")
        # static.File streams with a producer (and does Range and HEAD)
        return static.File(str(path), defaultType=kind).render(request)


def _json_file(record: dict[str, Any]) -> dict[str, Any]:
    metadata = {"sha256": record["metadata_sha256"]}
    entry = {
        "filename": record["filename"],
        "url": quote(record["filename"]),
        "hashes": {"sha256": record["sha256"]},
        "core-metadata": metadata,
        "dist-info-metadata": metadata,  # the PEP 658 name, for clients before PEP 714
        "size": record["size"],
        "upload-time": record["added_at"],
        "yanked": False,
    }
    if record.get("requires_python"):
        entry["requires-python"] = record["requires_python"]
    return entry


def _html_link(record: dict[str, Any]) -> str:
    attrs = {"href": f"{quote(record['filename'])}#sha256={record['sha256']}"}
    if record.get("requires_python"):
        attrs["data-requires-python"] = record["requires_python"]
    attrs["data-dist-info-metadata"] = attrs["data-core-metadata"] = (
        f"sha256={record['metadata_sha256']}"
    )
    shown = " ".join(f'{k}="{html.escape(v, quote=True)}"' for k, v in attrs.items())
    return f"<a {shown}>{html.escape(record['filename'])}</a>"


def _html(title: str, links: list[str]) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        f'<meta name="pypi:repository-version" content="{API_VERSION}">',
        f"<title>{html.escape(title)}</title>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
        *(f"{link}<br>" for link in links),
        "</body>",
        "</html>",
    ]
    return ("\n".join(lines) + "\n").encode()


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _redirect(request: server.Request, location: str) -> bytes:
    request.setResponseCode(301)
    request.setHeader(b"location", quote(location).encode())
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return f"moved to {location}\n".encode()


def _not_found(request: server.Request) -> bytes:
    request.setResponseCode(404)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return b"not found\n"


def _not_acceptable() -> bytes:
    return f"acceptable: {', '.join(OFFERS)}\n".encode()


# -- on its own


def main(argv: list[str] | None = None) -> None:
    """`python -m wheelfarm.index.serve ROOT`: serve an index folder without a master."""
    from twisted.internet import endpoints, reactor

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--interface", default="127.0.0.1")
    args = parser.parse_args(argv)
    top = resource.Resource()
    top.putChild(b"simple", SimpleIndexResource(Index(args.root)))
    endpoint = endpoints.TCP4ServerEndpoint(reactor, args.port, interface=args.interface)

    def listening(port) -> None:
        print(f"http://{args.interface}:{port.getHost().port}/simple/", flush=True)

    def failed(failure) -> None:
        failure.printTraceback()
        reactor.stop()

    endpoint.listen(server.Site(top)).addCallbacks(listening, failed)
    reactor.run()


if __name__ == "__main__":
    main()
