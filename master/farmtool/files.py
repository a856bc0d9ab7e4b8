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
import sys
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
    """Remove `path` and everything under it, whatever modes a build left and however deep
    it went, never following a link (a link is removed, not what it points to)."""
    path = os.fspath(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(path)
        return
    _writable(path)
    top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW)
    try:
        _empty(top)
    finally:
        os.close(top)
    os.rmdir(path)


BATCH = 10_000  # subfolders' names held at once while emptying a folder
DEEPEST = 32  # folders open at once while emptying; deeper ones are moved up first


def _empty(top: int) -> None:
    """Empty the folder open as `top`, by folder descriptors (a path may be longer than
    the system takes), giving the owner back rwx on each folder on the way. A folder
    deeper than DEEPEST is moved up into `top`, where the walk finds it again later, so
    that no tree a build made can run this out of descriptors.

    Each folder is read once per BATCH of subfolders, its files unlinked as they are
    read: reading a folder again for each entry would cost the square of its size (a
    build may leave a million files in one folder)."""
    moved = 0
    stack, names = [top], [""]  # the open folders and their names
    pending: list[list[str]] = [[]]  # each open folder's subfolders still to empty
    while stack:
        fd, todo = stack[-1], pending[-1]
        if not todo:
            todo.extend(_files_removed(fd))
        if not todo:  # empty now: close it and remove it from its parent
            stack.pop()
            pending.pop()
            done = names.pop()
            if stack:
                os.close(fd)
                os.rmdir(done, dir_fd=stack[-1])
            continue
        child_name = todo.pop()
        if len(stack) >= DEEPEST:
            moved += 1  # a name of chance: the build may have left any name there
            up = f".wheelfarm-deep-{moved}-{os.urandom(8).hex()}"
            os.rename(child_name, up, src_dir_fd=fd, dst_dir_fd=top)
        else:
            stack.append(_open_dir(fd, child_name))
            names.append(child_name)
            pending.append([])


def _files_removed(fd: int) -> list[str]:
    """Unlink every entry of the folder that is not a folder; up to BATCH subfolders'
    names, for the caller to empty and remove (it reads the folder again after)."""
    folders: list[str] = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.name)
                if len(folders) >= BATCH:
                    break
            else:
                os.unlink(entry.name, dir_fd=fd)
    return folders


def _open_dir(parent: int, name: str) -> int:
    """A folder of `parent` opened (not through a link), made rwx for its owner first."""
    info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    if info.st_uid == os.geteuid() and info.st_mode & stat.S_IRWXU != stat.S_IRWXU:
        os.chmod(name, stat.S_IMODE(info.st_mode) | stat.S_IRWXU, dir_fd=parent)
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW, dir_fd=parent)


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
        _writable(p)
        top = os.open(p, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW)
        try:
            _empty(top)
        finally:
            os.close(top)
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


UNCOUNTABLE = sys.maxsize  # a tree nested deeper than WALK_DEPTH: over any limit
WALK_DEPTH = 128  # folders open at once while counting


def tree_size(folders: list[Path], limit: int | None = None) -> tuple[int, int]:
    """(bytes allocated, entries) under `folders` (links not followed); stops counting
    past `limit` bytes. It walks by folder descriptors, so no path is too long for it;
    a tree nested deeper than WALK_DEPTH counts as UNCOUNTABLE bytes."""
    total = count = 0
    for folder in folders:
        try:
            top = os.open(os.fspath(folder), os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW)
        except OSError:
            continue
        stack: list[tuple[int, list[str]]] = []  # open folders, subfolders still to count
        opened: int | None = top
        try:
            while True:
                if opened is not None:
                    used, entries, subfolders = _folder(opened)
                    total, count = total + used, count + entries
                    stack.append((opened, subfolders))
                    opened = None
                if not stack or (limit is not None and total > limit):
                    break
                fd, subfolders = stack[-1]
                if not subfolders:
                    os.close(stack.pop()[0])
                    continue
                name = subfolders.pop()
                if len(stack) >= WALK_DEPTH:
                    return UNCOUNTABLE, count
                try:
                    opened = os.open(name, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW, dir_fd=fd)
                except OSError:
                    continue  # gone meanwhile, or not the worker's to read
        finally:
            for fd, _ in stack:
                os.close(fd)
        if limit is not None and total > limit:
            break
    return total, count


def _folder(fd: int) -> tuple[int, int, list[str]]:
    """(bytes, entries, names of subfolders) of the folder open as `fd`."""
    used = entries = 0
    subfolders = []
    try:
        with os.scandir(fd) as found:
            for entry in found:
                entries += 1
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                used += getattr(info, "st_blocks", 0) * 512 or info.st_size
                if stat.S_ISDIR(info.st_mode):
                    subfolders.append(entry.name)
    except OSError:
        pass
    return used, entries, subfolders
