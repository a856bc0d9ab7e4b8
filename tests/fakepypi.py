"""A small PyPI on loopback for the tests: the PEP 691 simple API and the files.

Tests publish sdists they made (or any file), optionally with a wrong sha256
or yanked, and point the farm's `pypi_url` at it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.utils import canonicalize_name, parse_sdist_filename


@dataclass
class Release:
    path: Path
    sha256: str
    yanked: bool = False


@dataclass
class FakePyPI:
    releases: dict[str, list[Release]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def publish(self, sdist: Path, sha256: str | None = None, yanked: bool = False) -> Release:
        """Serve `sdist`; `sha256` overrides the published digest (to fake a mismatch)."""
        name, _ = parse_sdist_filename(sdist.name)
        real = hashlib.sha256(sdist.read_bytes()).hexdigest()
        release = Release(sdist, sha256 or real, yanked)
        self.releases.setdefault(name, []).append(release)
        return release

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
                self.send_error(404)

            def _project(self, name: str) -> None:
                if name not in fake.releases:
                    return self.send_error(404)
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
                self.send_error(404)

            def _send(self, body: bytes, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
