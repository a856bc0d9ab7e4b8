"""The sdist: downloaded and checked against the sha256 its index published, then
unpacked by the trusted side, refusing whatever would land outside the source tree
and staying within the step's size limits (an sdist is the package's data)."""

from __future__ import annotations

import argparse
import calendar
import os
import posixpath
import re
import shutil
import stat
import tarfile
import urllib.request
import zipfile
from pathlib import Path

from .archives import check_tar_headers, zip_members
from .facts import fail
from .files import CHUNK, fresh_dir, read_bounded, remove_tree, sha256_of
from .isolation.limits import Limits, size
from .layout import EARLIER_BUILDS
from .processes import say

SDIST_MAX = 1 << 30  # bytes of a downloaded sdist
DEFAULTS = Limits(unpacked=4 << 30, members=200_000)


def download(url: str, sha256: str, dest: Path, limit: int = SDIST_MAX) -> Path:
    """`url` to `dest`, whose sha256 must be `sha256` (an index's http(s) URL only)."""
    if not url.startswith(("https://", "http://")):
        fail(f"sdist not found: {url[:200]!r} is not an http(s) URL")
    partial = dest.with_name(dest.name + ".part")
    got = 0
    try:
        with urllib.request.urlopen(url, timeout=120) as response, partial.open("wb") as out:
            while chunk := response.read(CHUNK):
                got += len(chunk)
                if got > limit:
                    fail(f"sdist too large: {url} is over {size(limit)}")
                out.write(chunk)
    except OSError as e:
        fail(f"sdist not found: {url}: {e}")
    digest = sha256_of(partial)
    if digest != sha256:
        partial.unlink()
        fail(f"hash mismatch for {dest.name}: expected sha256 {sha256}, got {digest}")
    partial.rename(dest)
    return dest


def cmd_fetch(args: argparse.Namespace) -> None:
    """Download the sdist and check its sha256 against the one PyPI published."""
    if os.sep in args.filename or (os.altsep and os.altsep in args.filename):
        fail(f"sdist file name {args.filename!r} contains a path separator")
    for folder in EARLIER_BUILDS:  # a new build: nothing an earlier one left stays
        remove_tree(folder)
    dest = fresh_dir(Path(args.dest))
    target = download(args.url, args.sha256, dest / args.filename)
    say(f"fetched {target} ({target.stat().st_size} bytes, sha256 {args.sha256})")


def _unsafe_name(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", name)) or ".." in parts


def scan_sdist(sdist: Path, limits: Limits = DEFAULTS) -> int:
    """Read the archive's headers (no file is written): refuse members that would land
    outside the source tree (absolute paths, `..`, links pointing out, devices) and
    archives over the limits on members and unpacked bytes, rather than silently skip
    them: such an sdist is broken or hostile. Returns the newest member's mtime.

    The trusted side only reads; extracting is an untrusted phase (`cmd_unpack`, in a
    sandbox that can write nothing but the source tree): a bug of tarfile's own
    (CVE-2025-4517 in Python 3.11.7's `data` filter) then stays in there.
    """
    unpacked = limits.unpacked or DEFAULTS.unpacked or 0
    members = limits.members or DEFAULTS.members or 0
    newest = total = count = 0
    if sdist.name.endswith(".zip"):
        if zip_members(sdist, sdist.name, members) > members:
            fail(f"unsafe sdist: over {members} members")
        try:
            with zipfile.ZipFile(sdist) as zf:
                for info in zf.infolist():
                    count += 1
                    if count > members:
                        fail(f"unsafe sdist: over {members} members")
                    if _unsafe_name(info.filename):
                        fail(f"unsafe sdist: member {info.filename!r} is outside the source tree")
                    total += info.file_size
                    newest = max(newest, calendar.timegm((*info.date_time, 0, 0, -1)))
        except (zipfile.BadZipFile, ValueError, OverflowError) as e:  # e.g. a month 0
            fail(f"unsafe sdist: {sdist.name} is not a zip Python reads: {str(e)[:200]}")
        if total > unpacked:
            fail(f"unsafe sdist: unpacks to over {size(unpacked)}")
        return newest
    check_tar_headers(sdist, unpacked)  # before tarfile reads a header whole
    try:
        tar = tarfile.open(sdist)
    except (tarfile.TarError, OSError) as e:
        fail(f"cannot open sdist {sdist.name}: {e}")
    with tar:
        for member in tar:
            count += 1
            if count > members:
                fail(f"unsafe sdist: over {members} members")
            tar.members = []  # type: ignore[attr-defined]  # its list would grow with it
            name = member.name
            if _unsafe_name(name):
                fail(f"unsafe sdist: member {name!r} is outside the source tree")
            if member.issym() or member.islnk():
                base = posixpath.dirname(name) if member.issym() else ""
                target = posixpath.normpath(posixpath.join(base, member.linkname))
                if member.linkname.startswith("/") or target.split("/")[0] == "..":
                    fail(f"unsafe sdist: link {name!r} points outside the source tree")
            elif not (member.isfile() or member.isdir()):
                fail(f"unsafe sdist: member {name!r} is not a file or directory")
            total += member.size
            if total > unpacked:
                fail(f"unsafe sdist: unpacks to over {size(unpacked)}")
            newest = max(newest, int(member.mtime))
    return newest


def cmd_unpack(args: argparse.Namespace) -> None:
    """Unpack the sdist (run in a sandbox that may write --dest only: see scan_sdist)."""
    sdist, dest = Path(args.sdist), Path(args.dest)
    scan_sdist(sdist, Limits.parse(args.limit))  # in here too: what is unpacked is checked
    if sdist.name.endswith(".zip"):
        with zipfile.ZipFile(sdist) as zf:
            zf.extractall(dest)
        return
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):  # 3.10.12+, 3.11.4+
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)  # noqa: S202 -- checked, and only a sandbox's folder


def project_folder(dest: Path, sdist: Path) -> Path:
    """The unpacked project: the one real folder an sdist holds (links not followed),
    with a pyproject.toml or a setup.py that is a regular file."""
    entries = list(os.scandir(dest))
    only = entries[0] if len(entries) == 1 else None
    project = Path(only.path) if only and only.is_dir(follow_symlinks=False) else dest
    for name in ("pyproject.toml", "setup.py"):
        try:
            if stat.S_ISREG(os.lstat(project / name).st_mode):
                return project
        except OSError:
            continue
    fail(f"sdist {sdist.name} has neither pyproject.toml nor setup.py")


DEFAULT_BUILD_REQUIRES = ["setuptools >= 40.8.0"]  # PEP 517's fallback, as `build` has it


def declared_build_requires(src: Path) -> list | None:
    """[build-system] requires, read by the trusted side before any code of the package
    ran (None where this Python has no tomllib: the sandboxed frontend reads it)."""
    try:
        import tomllib
    except ImportError:  # 3.10
        return None
    pyproject = src / "pyproject.toml"
    if not pyproject.exists() and not pyproject.is_symlink():
        return list(DEFAULT_BUILD_REQUIRES)
    try:
        table = tomllib.loads(read_bounded(pyproject, 1 << 20).decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        fail(f"build failed: pyproject.toml: {e}")
    system = table.get("build-system")
    if system is None:
        return list(DEFAULT_BUILD_REQUIRES)
    requires = system.get("requires") if isinstance(system, dict) else None
    if not isinstance(requires, list):
        fail("build failed: pyproject.toml: [build-system] requires is not a list")
    return requires


def copy_regular(source: Path, dest: Path, limit: int) -> Path:
    """Copy a file untrusted code left (no link followed, within `limit`) to `dest`."""
    from .files import open_regular

    with os.fdopen(open_regular(source, limit), "rb") as f, dest.open("wb") as out:
        shutil.copyfileobj(f, out, CHUNK)
    return dest
