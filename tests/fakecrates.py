"""A small crates registry for the tests: cargo's sparse protocol (an index file per
crate and `config.json`, over HTTP) and the `.crate` archives it names.

crates.io is not reachable from here; a Rust sdist made by the tests names this
registry in its `.cargo/config.toml` (`cargo_config()`), and its crate depends on a
crate published here, so the build must fetch it, as a real one fetches from crates.io.
It listens on this machine's own network address, not on loopback: a crates fetch has
user-mode networking, which reaches the network but never the host's loopback.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REGISTRY = "farmtest"  # the name a Cargo.toml's dependency gives as its `registry`


def outside_address() -> str:
    """This machine's address on its network (the one its default route leaves from):
    what a sandbox with user-mode networking reaches, unlike 127.0.0.1."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("203.0.113.1", 9))  # no packet is sent: it only picks a route
            address = s.getsockname()[0]
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        import pytest

        pytest.skip("this machine has no network address besides loopback")
    return address


class FakeCrates:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.downloads: list[str] = []  # the .crate files asked for, in order
        handler = type("Handler", (_Files,), {"downloads": self.downloads})
        serve = functools.partial(handler, directory=str(root))
        address = outside_address()
        self.server = ThreadingHTTPServer((address, 0), serve)
        self.url = f"http://{address}:{self.server.server_address[1]}"
        index = root / "index"
        index.mkdir(exist_ok=True)
        dl = f"{self.url}/dl/{{crate}}-{{version}}.crate"
        (index / "config.json").write_text(json.dumps({"dl": dl}))

    def publish(self, name: str, version: str, lib_rs: str) -> None:
        """A crate without dependencies: its Cargo.toml and src/lib.rs."""
        files = {
            "Cargo.toml": f'[package]\nname = "{name}"\nversion = "{version}"\nedition = "2021"\n',
            "src/lib.rs": lib_rs,
        }
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for member, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(f"{name}-{version}/{member}")
                info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
                tar.addfile(info, io.BytesIO(data))
        crate = buf.getvalue()
        (self.root / "dl").mkdir(exist_ok=True)
        (self.root / "dl" / f"{name}-{version}.crate").write_bytes(crate)
        # the sparse index's layout: 1/, 2/, 3/a/, else ab/cd/ (cargo's own rule)
        if len(name) <= 2:
            folder = self.root / "index" / str(len(name))
        elif len(name) == 3:
            folder = self.root / "index" / "3" / name[0]
        else:
            folder = self.root / "index" / name[:2] / name[2:4]
        folder.mkdir(parents=True, exist_ok=True)
        entry = {
            "name": name,
            "vers": version,
            "deps": [],
            "cksum": hashlib.sha256(crate).hexdigest(),
            "features": {},
            "yanked": False,
        }
        with open(folder / name, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def cargo_config(self) -> str:
        """The `.cargo/config.toml` that names this registry."""
        return f'[registries.{REGISTRY}]\nindex = "sparse+{self.url}/index/"\n'

    def start(self) -> FakeCrates:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Files(SimpleHTTPRequestHandler):
    downloads: list[str]

    def do_GET(self) -> None:
        if self.path.startswith("/dl/"):
            self.downloads.append(self.path.rsplit("/", 1)[-1])
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass
