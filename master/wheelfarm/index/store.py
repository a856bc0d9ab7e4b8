"""The farm's own package index: wheels on disk, served as a PEP 503/691 simple index.

On disk, under the index root::

    <project>/<wheel>              the wheel (project: the normalised name)
    <project>/<wheel>.metadata     its *.dist-info/METADATA (PEP 658/714)
    <project>/<wheel>.json         its build record
    .staging/  .lock               (dot names are never projects)

A wheel is only ever added, never replaced: the same bytes again are a no-op,
other bytes under the same name are refused. A wheel appears last, after its
metadata and record, so a reader never sees one without the other two.

Served by the master's web server (same port as the UI), see `web.site.IndexService`::

    /simple/                            projects (HTML or JSON, PEP 691 negotiation)
    /simple/<project>/                  its files; other spellings redirect here (301)
    /simple/<project>/<wheel>           the wheel; also <wheel>.metadata and <wheel>.json
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import tempfile
import threading
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

from packaging.metadata import Metadata
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import (
    NormalizedName,
    canonicalize_name,
    is_normalized_name,
    parse_wheel_filename,
)
from packaging.version import Version

try:
    import fcntl
except ImportError:  # Windows: the thread lock alone (one master process per index)
    fcntl = None  # type: ignore[assignment]

MAX_METADATA = 16 << 20  # a METADATA bigger than this is a zip bomb, not a package
CHUNK = 1 << 20
PUBLIC = 0o644  # mkstemp makes files private; a package index is public


class IndexConflict(Exception):
    """A different file already has this name in the index."""


class InvalidWheel(ValueError):
    """The file is not a wheel the index accepts (name, zip or metadata)."""


@dataclass(frozen=True)
class AddResult:
    status: Literal["added", "exists"]
    record: dict[str, Any]

    def __str__(self) -> str:
        return self.status


class Index:
    """Wheels, their metadata and build records in a folder; safe to share between threads."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._cache_lock = threading.Lock()
        # project -> (its wheels with their records' inodes, the records): wheels are never
        # replaced and a record only by a rename (a new inode, see `_add_toolchain_key`),
        # so the listing says whether the cache is current (mtimes are too coarse)
        self._cache: dict[str, tuple[tuple[tuple[str, int], ...], list[dict[str, Any]]]] = {}

    # -- reading

    def projects(self) -> list[str]:
        try:
            with os.scandir(self.root) as entries:
                return sorted(e.name for e in entries if is_normalized_name(e.name) and e.is_dir())
        except FileNotFoundError:
            return []

    def has_project(self, project: str) -> bool:
        return self.wheel_names(project) is not None

    def wheel_names(self, project: str) -> tuple[str, ...] | None:
        """The project's wheel files, or None for a project the index does not have."""
        listing = self._listing(project)
        return None if listing is None else tuple(name for name, _ in listing)

    def _listing(self, project: str) -> tuple[tuple[str, int], ...] | None:
        """(wheel, inode of its record) per wheel file; None: no such project."""
        name = canonicalize_name(project)
        if not is_normalized_name(name):  # e.g. "..": never a path
            return None
        wheels, records = [], {}
        try:
            with os.scandir(self.root / name) as entries:
                for e in entries:
                    if e.name[0] == ".":
                        continue
                    if e.name.endswith(".whl"):
                        wheels.append(e.name)
                    elif e.name.endswith(".whl.json"):
                        records[e.name[: -len(".json")]] = e.inode()
        except OSError:  # missing, not a folder, or a name too long for the filesystem
            return None
        return tuple((w, records.get(w, 0)) for w in sorted(wheels))

    def records(self, project: str) -> list[dict[str, Any]]:
        """Build records of the project's wheels, oldest version first (copies)."""
        return copy.deepcopy(self.cached_records(project))

    def cached_records(self, project: str) -> list[dict[str, Any]]:
        """Like `records`, but shared with the cache: read, never change."""
        name = canonicalize_name(project)
        listing = self._listing(name)
        if not listing:
            return []
        with self._cache_lock:
            cached = self._cache.get(name)
        if cached and cached[0] == listing:
            return cached[1]
        found = [r for r in (self._read_record(name, n) for n, _ in listing) if r is not None]
        found.sort(key=lambda r: (Version(r["version"]), r["filename"]))
        with self._cache_lock:
            self._cache[name] = (listing, found)
        return found

    def _read_record(self, project: str, filename: str) -> dict[str, Any] | None:
        # A wheel without a readable record was not put there by `add`: not served.
        try:
            record = json.loads((self.root / project / f"{filename}.json").read_bytes())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("filename") == filename else None

    def find(
        self,
        project: str,
        version: str | None = None,
        python: str | None = None,
        platform: str | None = None,
        sdist_sha256: str | None = None,
        toolchain_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Records of wheels that match every filter given (None: any).

        version: a version without a local label also finds its pinned rebuilds
        (`1.0+abicore.1.0`). python "X.Y": the wheel's tags install on CPython X.Y.
        platform: the farm platform in the record; a wheel tagged for `any` platform
        matches every one.
        """
        want = Version(version) if version is not None else None
        found = []
        for record in self.records(project):
            tags = parse_wheel_filename(record["filename"])[3]
            if want is not None and _version_of(record, want) != want:
                continue
            if sdist_sha256 is not None and record.get("sdist_sha256") != sdist_sha256:
                continue
            if toolchain_key is not None and toolchain_key not in toolchain_keys(record):
                continue
            if platform is not None and record.get("platform") != platform:
                if any(t.platform != "any" for t in tags):
                    continue
            if python is not None and not installable_on(tags, python):
                continue
            found.append(record)
        return found

    # -- adding

    def add(self, wheel_path: Path, record: dict[str, Any]) -> AddResult:
        """Add a wheel with its build record; raises InvalidWheel or IndexConflict."""
        wheel_path = Path(wheel_path)
        filename = wheel_path.name
        name, version, build, tags = parse_filename(filename)
        staging = self.root / ".staging"
        staging.mkdir(parents=True, exist_ok=True)
        # Checked and hashed from our own copy, so what we store is what we checked.
        fd, tmp = tempfile.mkstemp(dir=staging, suffix=".whl")
        os.chmod(tmp, PUBLIC)
        staged = Path(tmp)
        try:
            with os.fdopen(fd, "wb") as out, wheel_path.open("rb") as src:
                digest, size = _copy_hashing(src, out)
                out.flush()
                os.fsync(out.fileno())
            metadata_bytes, meta = read_metadata(staged, filename)
            if canonicalize_name(meta.name) != name or meta.version != version:
                raise InvalidWheel(
                    f"{filename}: METADATA says {meta.name} {meta.version}, "
                    f"the file name says {name} {version}"
                )
            full = {
                **record,
                "filename": filename,
                "project": name,
                "version": str(version),
                "sha256": digest,
                "size": size,
                "requires_python": str(meta.requires_python) if meta.requires_python else None,
                "metadata_sha256": hashlib.sha256(metadata_bytes).hexdigest(),
                "added_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
            with self._locked():
                return self._publish(staged, full, metadata_bytes, (version, build, tags))
        finally:
            staged.unlink(missing_ok=True)

    def _publish(
        self, staged: Path, record: dict[str, Any], metadata: bytes, key: tuple
    ) -> AddResult:
        filename, project = record["filename"], record["project"]
        folder = self.root / project
        dest = folder / filename
        if dest.exists():
            return self._same_or_conflict(dest, record)
        for other in self.cached_records(project):  # same wheel, other spelling of its name
            if parse_filename(other["filename"])[1:] == key:
                raise IndexConflict(
                    f"{filename}: the index has this wheel already as {other['filename']}"
                )
        new_folder = not folder.is_dir()
        if new_folder:
            folder.mkdir()
            _fsync_dir(self.root)
        # metadata and record first: the wheel's appearance publishes all three
        staging = staged.parent
        body = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
        try:
            _write_atomic(folder / f"{filename}.metadata", metadata, staging)
            # default=str: a property of an odd type must not fail the publish
            _write_atomic(folder / f"{filename}.json", body.encode(), staging)
            os.link(staged, dest)  # unlike rename, never replaces an existing file
        except FileExistsError:
            return self._same_or_conflict(dest, record)
        except OSError:  # a full or read-only disk: leave no half-published wheel
            if not dest.exists():
                for side in (".metadata", ".json"):
                    (folder / f"{filename}{side}").unlink(missing_ok=True)
                if new_folder:
                    with contextlib.suppress(OSError):
                        folder.rmdir()
            raise
        _fsync_dir(folder)
        return AddResult("added", json.loads(body))  # as `records` will read it

    def _same_or_conflict(self, dest: Path, new: dict[str, Any]) -> AddResult:
        digest = new["sha256"]
        with dest.open("rb") as f:
            have = hashlib.file_digest(f, "sha256").hexdigest()
        if have != digest:
            raise IndexConflict(
                f"{dest.name} is in the index with sha256 {have}; refusing other bytes "
                f"with sha256 {digest}: a published file is never replaced"
            )
        record = self._read_record(dest.parent.name, dest.name) or {}
        key = new.get("toolchain_key")
        if record and key is not None and key not in toolchain_keys(record):
            record = self._add_toolchain_key(dest, record, key)
        return AddResult("exists", record)

    def _add_toolchain_key(self, dest: Path, record: dict[str, Any], key: str) -> dict[str, Any]:
        """Another toolchain made the same bytes: the record says so (`toolchain_keys`),
        so that the index check of that toolchain (a rollout run again) finds the wheel.
        The wheel and the record's other fields stay as published. Under the lock."""
        record = {**record, "toolchain_keys": [*toolchain_keys(record), key]}
        body = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
        _write_atomic(dest.with_name(f"{dest.name}.json"), body.encode(), self.root / ".staging")
        return json.loads(body)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with _IndexLock.of(self.root / ".lock").held():
            yield


class _IndexLock:
    """The index's lock: one per process and lock file, whatever the number of `Index`
    objects (a master keeps its running builds' ones across a reconfig).

    Threads of the process take a thread lock, then the process takes a POSIX record
    lock (lockf), which excludes other processes: a CLI next to the master, and the
    masters of a cluster on other hosts sharing the index over NFS (v4, or v3 with lockd)
    carries it to the server; the kernel and the server drop it when its holder dies
    (NFSv4: when its lease ends); CephFS and GlusterFS implement it too. A record lock
    belongs to the process and goes when any descriptor of its file is closed, so the
    file is opened once per process and never closed while the process runs.
    """

    _all: dict[str, _IndexLock] = {}
    _guard = threading.Lock()

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None

    @classmethod
    def of(cls, path: Path) -> _IndexLock:
        key = os.path.realpath(path)
        with cls._guard:
            if key not in cls._all:
                cls._all[key] = cls(key)
            return cls._all[key]

    @classmethod
    def _forget_inherited(cls) -> None:
        # a forked child holds none of its parent's locks: start again (a thread lock
        # copied while held would never be released there)
        cls._all, cls._guard = {}, threading.Lock()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._thread_lock:
            fd = self._open()
            if fcntl is not None:
                fcntl.lockf(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.lockf(fd, fcntl.LOCK_UN)

    def _open(self) -> int:
        """The descriptor, opened again only when the file was replaced (a recreated
        index): a lock on the old file would exclude nobody."""
        if self._fd is not None:
            try:
                same = os.path.samestat(os.fstat(self._fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                return self._fd
            os.close(self._fd)  # drops only this process's locks on the old file
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PUBLIC)
        return self._fd


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_IndexLock._forget_inherited)


def toolchain_keys(record: dict[str, Any]) -> list[str | None]:
    """Every toolchain key whose build gave this wheel's bytes, the first build's first."""
    return list(record.get("toolchain_keys") or [record.get("toolchain_key")])


def _version_of(record: dict[str, Any], want: Version) -> Version:
    """The record's version; without its local label (a pinned rebuild, see registry/pins.py) when
    `want` has none: `1.0+abicore.1.0` is a build of 1.0."""
    version = Version(record["version"])
    return version if want.local is not None else Version(version.public)


def parse_filename(filename: str) -> tuple[NormalizedName, Version, tuple, frozenset[Tag]]:
    """A wheel file name's parts; InvalidWheel for anything that is not one."""
    if "/" in filename or "\\" in filename or "\0" in filename or filename.startswith("."):
        raise InvalidWheel(f"{filename!r} is not a file name")
    try:
        return parse_wheel_filename(filename)
    except ValueError as e:  # InvalidWheelFilename and InvalidVersion are ValueErrors
        raise InvalidWheel(f"{filename!r} is not a wheel file name: {e}") from e


def read_metadata(wheel: Path, filename: str | None = None) -> tuple[bytes, Metadata]:
    """The wheel's METADATA bytes, parsed and validated by `packaging`."""
    filename = filename or wheel.name
    try:
        with zipfile.ZipFile(wheel) as zf:
            found = [
                i
                for i in zf.infolist()
                if i.filename.count("/") == 1 and i.filename.endswith(".dist-info/METADATA")
            ]
            if len(found) != 1:
                raise InvalidWheel(f"{filename}: {len(found)} *.dist-info/METADATA files")
            if found[0].file_size > MAX_METADATA:
                raise InvalidWheel(f"{filename}: METADATA is {found[0].file_size} bytes")
            data = zf.read(found[0])
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise InvalidWheel(f"{filename}: not a readable zip file: {e}") from e
    try:
        return data, Metadata.from_email(data, validate=True)
    except ExceptionGroup as e:
        problems = [str(x) for x in e.exceptions]
        # Older setuptools wrote License-File under Metadata-Version 2.1
        # (pypa/setuptools#4759): a field newer than the declared version is
        # harmless to installers, so such a wheel is accepted; anything else is not.
        if all("introduced in metadata version" in p for p in problems):
            return data, Metadata.from_email(data, validate=False)
        raise InvalidWheel(f"{filename}: invalid METADATA: {'; '.join(problems)}") from e
    except ValueError as e:
        raise InvalidWheel(f"{filename}: invalid METADATA: {e}") from e


def installable_on(tags: Iterable[Tag], python: str) -> bool:
    """Whether a wheel with these tags installs on CPython `python` ("3.11"), any platform."""
    tags = frozenset(tags)
    major, minor = Version(python).release[:2]
    interpreter = f"cp{major}{minor}"
    platforms = {t.platform for t in tags}
    accepted = set(cpython_tags((major, minor), abis=[interpreter], platforms=platforms))
    accepted.update(compatible_tags((major, minor), interpreter, platforms=platforms))
    return not accepted.isdisjoint(tags)


def _copy_hashing(src: BinaryIO, out: BinaryIO) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := src.read(CHUNK):
        digest.update(chunk)
        out.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _write_atomic(path: Path, data: bytes, tmpdir: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=tmpdir)
    os.chmod(tmp, PUBLIC)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not on every platform
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
