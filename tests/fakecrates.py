"""A small crates registry for the tests: cargo's sparse protocol (an index file per
crate and `config.json`, over HTTP) and the `.crate` archives it names.

crates.io is not reachable from here; a Rust sdist made by the tests names this
registry in its `.cargo/config.toml` (`cargo_config()`), and its crate depends on a
crate published here, so the build must fetch it, as a real one fetches from crates.io.
It is served from a test host outside this machine (tests/outside.py): a crates fetch
has user-mode networking, which reaches the outside but never this machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from outside import OutsideHost

REGISTRY = "farmtest"  # the name a Cargo.toml's dependency gives as its `registry`


class FakeCrates:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "index").mkdir(exist_ok=True)
        self.host = OutsideHost()
        self.url = ""
        self.asked: list[str] | None = None  # what was asked, once stopped

    @property
    def downloads(self) -> list[str]:
        """The .crate files asked for, in order (also once stopped)."""
        asked = self.host.requests() if self.asked is None else self.asked
        return [p.rsplit("/", 1)[-1] for p in asked if p.startswith("/dl/")]

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
        self.host.__enter__()
        self.url = self.host.serve(self.root)
        dl = f"{self.url}/dl/{{crate}}-{{version}}.crate"
        (self.root / "index" / "config.json").write_text(json.dumps({"dl": dl}))
        return self

    def stop(self) -> None:
        self.asked = self.host.requests()
        self.host.__exit__(None, None, None)
