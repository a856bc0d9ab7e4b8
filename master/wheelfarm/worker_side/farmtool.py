"""Worker-side helper of wheelfarm: the master copies this file into every build.

It needs nothing but the standard library of the Python that runs it, so a
volunteer's worker needs only buildbot-worker and its Python versions. Every
subcommand takes plain arguments (never a shell line) and exits non-zero with
one clear line on stderr when it fails; the build summary shows that line.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

CHUNK = 1 << 20


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cmd_fetch(args: argparse.Namespace) -> None:
    """Download the sdist and check its sha256 against the one PyPI published."""
    if os.sep in args.filename or (os.altsep and os.altsep in args.filename):
        fail(f"sdist file name {args.filename!r} contains a path separator")
    dest = Path(args.dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    target = dest / args.filename
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(args.url, timeout=120) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
    except OSError as e:
        fail(f"sdist not found: {args.url}: {e}")
    got = sha256_of(partial)
    if got != args.sha256:
        partial.unlink()
        fail(f"hash mismatch for {args.filename}: expected sha256 {args.sha256}, got {got}")
    partial.rename(target)
    print(f"fetched {target} ({target.stat().st_size} bytes, sha256 {got})")


def cmd_build(args: argparse.Namespace) -> None:
    """Build a wheel from the one sdist in --sdist-dir into --out."""
    sdists = sorted(Path(args.sdist_dir).iterdir())
    if len(sdists) != 1:
        fail(f"expected one sdist in {args.sdist_dir}, found {len(sdists)}")
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir"]
    argv += ["--wheel-dir", str(out), str(sdists[0])]
    print("+", " ".join(argv), flush=True)
    rc = subprocess.call(argv)
    if rc:
        fail(f"build failed (pip wheel exited {rc})")
    wheels = sorted(p.name for p in out.glob("*.whl"))
    if not wheels:
        fail("build produced no wheel")
    print("built", *wheels)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="farmtool")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch")
    fetch.add_argument("--url", required=True)
    fetch.add_argument("--sha256", required=True)
    fetch.add_argument("--filename", required=True)
    fetch.add_argument("--dest", required=True)
    fetch.set_defaults(func=cmd_fetch)
    build = sub.add_parser("build")
    build.add_argument("--sdist-dir", required=True)
    build.add_argument("--out", required=True)
    build.set_defaults(func=cmd_build)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
