"""The worker's Rust toolchain, which Rust backends (maturin, setuptools-rust) run
read-only, and the crates an sdist's Cargo.toml needs, fetched before its build."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from subprocess import DEVNULL
from typing import NamedTuple

from .environment import PROXY_ENV, pick_env, tool_env
from .facts import fail
from .isolation.bubblewrap import system_path

RUST_ENV = "WHEELFARM_RUST"  # a Rust toolchain's folder (bin/cargo, bin/rustc), or `none`
# What rustup reads to pick the toolchain the worker's `rustc` runs.
RUSTUP_ENV = ("RUSTUP_HOME", "CARGO_HOME", "RUSTUP_TOOLCHAIN")
RUST_BACKENDS = ("maturin", "setuptools-rust")


class Rust(NamedTuple):
    root: Path  # the sysroot: its bin/ has cargo and rustc, its lib/ the standard library
    version: str | None

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def mounts(self) -> tuple[str, ...]:
        """The toolchain, read-only in a sandbox, where the system does not show it."""
        return () if system_path(self.root) else (str(self.root),)


def rust_toolchain() -> Rust | None:
    """The folder WHEELFARM_RUST names, else the sysroot of the `rustc` on the worker's
    PATH (rustup's proxy answers with the toolchain it runs: the build calls that
    toolchain's own cargo and rustc, not the proxy, which reads ~/.rustup, a folder the
    sandbox does not see, and would follow an sdist's rust-toolchain.toml). None where
    the worker has none, or says `none`."""
    from .toolchain import first_line, version_number

    named = os.environ.get(RUST_ENV, "")
    if named.lower() == "none":
        return None
    if named:
        root = Path(named).resolve()  # bwrap mounts it where it really is
    else:
        rustc = shutil.which("rustc")
        if not rustc:
            return None
        # from `/`, so that no rust-toolchain.toml of the build directory's parents counts
        env = {**tool_env(), **pick_env(RUSTUP_ENV)}
        try:
            done = subprocess.run(
                [rustc, "--print", "sysroot"], capture_output=True, text=True,
                env=env, cwd="/", stdin=DEVNULL, timeout=60,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode or not done.stdout.strip():
            return None
        root = Path(done.stdout.strip()).resolve()
    rustc_path = shutil.which("rustc", path=str(root / "bin"))
    if not (rustc_path and shutil.which("cargo", path=str(root / "bin"))):
        if named:
            fail(f"{RUST_ENV}={named} is not a Rust toolchain: its bin/ lacks cargo or rustc")
        return None
    return Rust(root, version_number(first_line([rustc_path, "--version"])))


def cargo_manifests(src: Path, limit: int = 8) -> list[Path]:
    """The sdist's top-most Cargo.toml files: fetching a workspace's root fetches its
    members' crates too (links are not followed)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d not in ("target", ".git"))
        if "Cargo.toml" in files and not os.path.islink(os.path.join(root, "Cargo.toml")):
            found.append(Path(root) / "Cargo.toml")
            dirs[:] = []
            if len(found) == limit:
                break
    return found


def crates_env(home: Path) -> dict[str, str]:
    """What a crates fetch gets besides the untrusted environment: the proxy, its home."""
    return {**pick_env(PROXY_ENV), "CARGO_HOME": str(home)}
