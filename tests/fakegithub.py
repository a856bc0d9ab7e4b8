"""A stand-in for GitHub's REST API on loopback: records the commit statuses posted.

It also answers the two reads Buildbot's GitHub hook makes for a pull request
(the head commit's message, the PR's files).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FakeGitHub:
    statuses: list[dict] = field(default_factory=list)  # each with its "sha" added
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if "/commits/" in self.path:
                    self._json(200, {"commit": {"message": "registry change"}})
                elif self.path.split("?")[0].endswith("/files"):
                    self._json(200, [{"filename": "packages.yaml"}])
                else:
                    self._json(404, {"message": "Not Found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                parts = self.path.strip("/").split("/")
                if len(parts) == 5 and parts[0] == "repos" and parts[3] == "statuses":
                    body.update(sha=parts[4], repo=f"{parts[1]}/{parts[2]}")
                    body["authorization"] = self.headers.get("Authorization")
                    with fake.lock:
                        fake.statuses.append(body)
                    self._json(201, body)
                else:
                    self._json(404, {"message": "Not Found"})

            def _json(self, code: int, data) -> None:
                raw = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()

    def statuses_for(self, sha: str) -> list[dict]:
        with self.lock:
            return [s for s in self.statuses if s["sha"] == sha]


def pull_request_payload(number: int, head_sha: str, repo: str, clone_url: str) -> dict:
    """The fields of GitHub's pull_request event that a receiver reads."""
    html = f"https://github.com/{repo}"
    repository = {
        "name": repo.split("/")[1],
        "full_name": repo,
        "html_url": html,
        "clone_url": clone_url,
    }
    return {
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number,
            "title": "Add a package",
            "body": "Please build it.",
            "commits": 1,
            "created_at": "2026-11-23T10:00:00Z",
            "_links": {"html": {"href": f"{html}/pull/{number}"}},
            "head": {"sha": head_sha, "ref": "add-package", "repo": repository},
            "base": {"ref": "main", "sha": "0" * 40, "repo": repository},
        },
        "repository": repository,
        "sender": {"login": "contributor"},
    }


def push_payload(sha: str, repo: str, files: list[str], branch: str = "main") -> dict:
    """The fields of GitHub's push event that a receiver reads: one new commit."""
    person = {"name": "Maintainer", "email": "maintainer@example.org"}
    commit = {
        "id": sha,
        "message": "Registry change",
        "timestamp": "2026-11-23T10:00:00Z",
        "url": f"https://github.com/{repo}/commit/{sha}",
        "author": person,
        "committer": person,
        "modified": files,
    }
    return {
        "ref": f"refs/heads/{branch}",
        "after": sha,
        "commits": [commit],
        "head_commit": commit,
        "repository": {
            "name": repo.split("/")[1],
            "full_name": repo,
            "html_url": f"https://github.com/{repo}",
        },
        "pusher": person,
    }


def sign(body: bytes, secret: str) -> str:
    """The X-Hub-Signature header GitHub sends."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
