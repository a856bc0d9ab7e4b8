"""Files the host touches after untrusted code ran: never through a link it planted,
never more than asked for, and folders that go whatever modes the build left.

Every read of something a sandbox could have written goes through `read_bounded`:
opened without following a link (O_NOFOLLOW, and O_NONBLOCK so a FIFO cannot hang
us), required to be a regular file, read up to a limit. Removal (`remove_tree`)
never follows a link either, and makes folders it owns writable when a build left
them read-only (a non-root worker cannot otherwise empty a mode-0500 folder).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from .facts import fail

CHUNK = 1 << 20
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def open_regular(path: Path | str, limit: int | None = None) -> int:
    """An fd of `path`, opened without following a link, which must be a regular
    file (of at most `limit` bytes)."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | getattr(os, "O_BINARY", 0))
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror or e}")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        fail(f"{path} is not a regular file")
    if limit is not None and info.st_size > limit:
        os.close(fd)
        fail(f"{path} is {info.st_size} bytes, over the limit of {limit}")
    return fd


def read_bounded(path: Path | str, limit: int = 64 << 20) -> bytes:
    """The bytes of a file untrusted code could have written (see the module)."""
    with os.fdopen(open_regular(path, limit), "rb") as f:
        return f.read(limit + 1)[:limit]


def read_text_bounded(path: Path | str, limit: int = 64 << 20) -> str:
    return read_bounded(path, limit).decode("utf-8", "replace")


def sha256_of(path: Path | str) -> str:
    digest = hashlib.sha256()
    with os.fdopen(open_regular(path), "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def remove_tree(path: Path | str) -> None:
    """Remove `path` and everything under it, whatever modes a build left, never
    following a link (a link is removed, not what it points to)."""
    path = os.fspath(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(path)
        return
    _empty(path)
    os.rmdir(path)


def _empty(folder: str) -> None:
    _writable(folder)
    with os.scandir(folder) as entries:
        children = [(e.path, e.is_dir(follow_symlinks=False)) for e in entries]
    for child, is_dir in children:
        if is_dir:
            _empty(child)
            os.rmdir(child)
        else:
            os.unlink(child)


def _writable(folder: str) -> None:
    """Give the owner rwx on a folder it owns (a build may have left 0000 or 0500)."""
    info = os.lstat(folder)
    wanted = stat.S_IRWXU
    if info.st_mode & wanted != wanted and info.st_uid == os.geteuid():
        os.chmod(folder, stat.S_IMODE(info.st_mode) | wanted)


def fresh_dir(path: Path) -> Path:
    """An empty folder at `path`. Its contents go, not the folder itself: in a
    container it may be a mount point."""
    p = os.fspath(path)
    try:
        info = os.lstat(p)
    except FileNotFoundError:
        info = None
    if info is not None and stat.S_ISDIR(info.st_mode):
        _empty(p)
        return path
    if info is not None:
        os.unlink(p)
    Path(p).mkdir(parents=True)
    return path


def one_file(folder: Path, pattern: str, what: str, step: str = "") -> Path:
    """The one file matching `pattern` in `folder`, a regular file (not a link); else the
    step (`step: ...`) fails saying why."""
    prefix = f"{step}: " if step else ""
    found = sorted(folder.glob(pattern)) if folder.is_dir() and not folder.is_symlink() else []
    if len(found) != 1:
        names = ", ".join(p.name[:100] for p in found[:5]) or "none"
        fail(f"{prefix}expected one {what} in {folder.name}, found {len(found)} ({names})")
    if not stat.S_ISREG(os.lstat(found[0]).st_mode):
        fail(f"{prefix}{what} {found[0].name[:100]} is not a regular file")
    return found[0]


def tree_size(folders: list[Path], limit: int | None = None) -> int:
    """Bytes allocated under `folders` (links not followed); stops counting past `limit`."""
    total = 0
    stack = [os.fspath(f) for f in folders]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += getattr(info, "st_blocks", 0) * 512 or info.st_size
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)
        if limit is not None and total > limit:
            break
    return total
