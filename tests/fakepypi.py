"""A small PyPI on loopback for the tests: the PEP 691 simple API, the files, the
per-project JSON API (with ETags) and the XML-RPC changelog.

Tests publish sdists they made (or any file), optionally with a wrong sha256
or yanked, and point the farm's `pypi_url` at it. Every publish and yank is an
event in the changelog, numbered by a serial that only grows, as on PyPI.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import threading
import time
import xmlrpc.client
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename


class Server(ThreadingHTTPServer):
    # the standard backlog of 5 overflows when a farm's builds all resolve at once on a
    # loaded machine, and a connection the kernel dropped shows up as a reset
    request_queue_size = 128


@dataclass
class Release:
    path: Path
    sha256: str
    yanked: bool = False
    version: str = ""  # from the file's name

    def __post_init__(self) -> None:
        self.version = self.version or str(_name_version(self.path.name)[1])

    @property
    def packagetype(self) -> str:
        return "bdist_wheel" if self.path.name.endswith(".whl") else "sdist"


def _name_version(filename: str) -> tuple:
    """A file's project and version: an sdist's, or a wheel's (a real project's runtime
    dependency, which a test's package needs when its tests install it)."""
    if filename.endswith(".whl"):
        return parse_wheel_filename(filename)[:2]
    return parse_sdist_filename(filename)


@dataclass
class Hit:
    method: str
    path: str
    status: int
    bytes_in: int  # request body
    bytes_out: int  # response body


@dataclass
class FakePyPI:
    releases: dict[str, list[Release]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)  # paths asked for, in order
    hits: list[Hit] = field(default_factory=list)  # every request, with its sizes
    # (name, version, timestamp, action, serial), as PyPI's changelog_since_serial gives
    changelog: list[tuple] = field(default_factory=list)
    page_size: int = 50_000  # at most this many events per changelog call, like PyPI
    last_serials: dict[str, int] = field(default_factory=dict)  # per project, as PyPI keeps

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def serial(self) -> int:
        return self.changelog[-1][4] if self.changelog else 0

    def event(self, name: str, version: str | None, action: str) -> int:
        """Add a changelog event (publish and yank add theirs); returns its serial."""
        with self._lock:
            serial = self.serial + 1
            self.changelog.append((name, version, int(time.time()), action, serial))
            self.last_serials[canonicalize_name(name)] = serial
            return serial

    def events_since(self, serial: int) -> list[list]:
        start = bisect.bisect_right(self.changelog, serial, key=lambda e: e[4])
        return [list(e) for e in self.changelog[start : start + self.page_size]]

    def publish(self, sdist: Path, sha256: str | None = None, yanked: bool = False) -> Release:
        """Serve `sdist`; `sha256` overrides the published digest (to fake a mismatch,
        or to publish a file that need not exist, for a benchmark)."""
        name, version = _name_version(sdist.name)
        if sha256 is None:
            sha256 = hashlib.sha256(sdist.read_bytes()).hexdigest()
        release = Release(sdist, sha256, yanked)
        known = self.releases.setdefault(name, [])
        if not any(r.version == str(version) for r in known):
            self.event(name, str(version), "new release")
        known.append(release)
        self.event(name, str(version), f"add source file {sdist.name}")
        return release

    def yank(self, name: str, version: str) -> None:
        for r in self.releases[canonicalize_name(name)]:
            if r.version == version:
                r.yanked = True
        self.event(canonicalize_name(name), version, "yank release")

    def project_json(self, name: str) -> dict:
        """The project's page of PyPI's JSON API (`/pypi/NAME/json`)."""
        releases: dict[str, list[dict]] = {}
        for r in self.releases[name]:
            releases.setdefault(r.version, []).append(
                {
                    "filename": r.path.name,
                    "packagetype": r.packagetype,
                    "url": f"../../files/{r.path.name}",
                    "digests": {"sha256": r.sha256},
                    "yanked": r.yanked,
                    "yanked_reason": None,
                }
            )
        latest = list(releases)[-1] if releases else None
        return {
            "info": {"name": name, "version": latest},
            "last_serial": self.last_serials.get(name, 0),
            "releases": releases,
            "urls": releases.get(latest, []),
        }

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                fake.requests.append(self.path)
                parts = [p for p in self.path.split("?")[0].split("/") if p]
                if len(parts) == 2 and parts[0] == "simple":
                    return self._project(canonicalize_name(parts[1]))
                if len(parts) == 2 and parts[0] == "files":
                    return self._file(parts[1])
                if len(parts) == 3 and parts[0] == "pypi" and parts[2] == "json":
                    return self._json_api(canonicalize_name(parts[1]))
                self._error(404)

            def do_HEAD(self) -> None:
                # uv asks a wheel's size (and range support) before it downloads it
                parts = [p for p in self.path.split("?")[0].split("/") if p]
                found = [
                    r
                    for releases in fake.releases.values()
                    for r in releases
                    if len(parts) == 2 and parts[0] == "files" and r.path.name == parts[1]
                ]
                if not found:
                    return self._error(404)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(found[0].path.stat().st_size))
                self.end_headers()
                return None

            def do_POST(self) -> None:
                fake.requests.append(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.rstrip("/") != "/pypi":
                    return self._error(404, len(body))
                params, method = xmlrpc.client.loads(body)
                if method == "changelog_last_serial":
                    result = fake.serial
                elif method == "changelog_since_serial":
                    result = fake.events_since(params[0])
                else:
                    return self._error(404, len(body))
                answer = xmlrpc.client.dumps((result,), methodresponse=True, allow_none=True)
                self._send(answer.encode(), "text/xml", bytes_in=len(body))

            def _json_api(self, name: str) -> None:
                if name not in fake.releases:
                    return self._error(404)
                body = json.dumps(fake.project_json(name)).encode()
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                if self.headers.get("If-None-Match") == etag:
                    fake.hits.append(Hit("GET", self.path, 304, 0, 0))
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return None
                self._send(body, "application/json", etag=etag)

            def _error(self, status: int, bytes_in: int = 0) -> None:
                fake.hits.append(Hit(self.command, self.path, status, bytes_in, 0))
                self.send_error(status)

            def _project(self, name: str) -> None:
                if name not in fake.releases:
                    return self._error(404)
                files = [
                    {
                        "filename": r.path.name,
                        "url": f"../../files/{r.path.name}",
                        "hashes": {"sha256": r.sha256},
                        "yanked": r.yanked,
                    }
                    for r in fake.releases[name]
                ]
                body = json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": files})
                self._send(body.encode(), "application/vnd.pypi.simple.v1+json")

            def _file(self, filename: str) -> None:
                for releases in fake.releases.values():
                    for r in releases:
                        if r.path.name == filename:
                            return self._send(r.path.read_bytes(), "application/octet-stream")
                self._error(404)

            def _send(
                self, body: bytes, content_type: str, etag: str | None = None, bytes_in: int = 0
            ) -> None:
                fake.hits.append(Hit(self.command, self.path, 200, bytes_in, len(body)))
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if etag:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
