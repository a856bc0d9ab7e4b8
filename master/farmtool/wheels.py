"""Wheels as the host reads them: a wheel comes out of an untrusted backend, so before
anything else reads it the host copies it out of the backend's folder (no link
followed, a regular file, within the size limit) and checks that its zip stays within
the limits on members and unpacked bytes, with no member outside the wheel."""

from __future__ import annotations

import calendar
import csv
import email.parser
import io
import os
import re
import time
import zipfile
from pathlib import Path

from .archives import zip_members
from .facts import Failure, fail
from .files import one_file
from .isolation.limits import Limits, size
from .requirements import plain
from .sdist import copy_regular
from .tags import WHEEL_NAME, wheel_name_ok

DEFAULTS = Limits(wheel=1 << 30, unpacked=4 << 30, members=100_000)
EXTENSION_SUFFIXES = (".so", ".pyd")
ZIP_EPOCH_MIN = 315532800  # 1980-01-01, the earliest time a zip entry can say


def take_wheel(folder: Path, dest: Path, limits: Limits) -> Path:
    """The one wheel an untrusted phase left in `folder`, copied into `dest` (a folder
    only the trusted side writes) and checked (see the module)."""
    found = one_file(folder, "*.whl", "wheel", "build failed")
    if not wheel_name_ok(found.name):
        fail(f"build failed: {found.name[:100]!r} is not a wheel file name")
    named = WHEEL_NAME.fullmatch(found.name)
    if named and named["build"]:  # installers prefer the highest: the farm numbers its own
        fail(f"build failed: {found.name} carries a build tag ({named['build']})")
    most = limits.wheel or DEFAULTS.wheel or 0
    if (length := found.stat().st_size) > most:
        fail(f"wheel limit: {found.name} is {size(length)}, over {size(most)}")
    partial = copy_regular(found, dest / f".{found.name}.part", most)  # no link followed
    try:
        check_zip(partial, limits, found.name)
        check_requirements(partial, found.name)
        if found.name.endswith("-any.whl") and (compiled := compiled_members(partial)):
            fail(f"build failed: {found.name} is tagged for any platform but holds {compiled[0]}")
    except Failure:
        partial.unlink()
        raise
    return partial.rename(dest / found.name)


def check_requirements(wheel: Path, name: str = "") -> None:
    """The wheel's own requirements (its METADATA's Requires-Dist, the package's words)
    name projects, never a URL or a path: an installer would fetch or read it, ours on
    the trusted side and a user's pip alike."""
    with zipfile.ZipFile(wheel) as zf:
        metas = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        if len(metas) != 1:
            fail(f"build failed: {name or wheel.name} has {len(metas)} METADATA files")
        data = read_member(zf, metas[0], 16 << 20)
    headers = email.parser.BytesParser().parsebytes(data, headersonly=True)
    plain(headers.get_all("Requires-Dist") or [], "its wheel's Requires-Dist")


def check_zip(wheel: Path, limits: Limits, name: str = "") -> None:
    """Its members within the limits and inside it (`name`: the wheel's, for reasons).
    Their number is counted in the central directory first (archives.zip_members):
    zipfile's reading a directory of millions of members would take gigabytes."""
    name = name or wheel.name
    unpacked = limits.unpacked or DEFAULTS.unpacked or 0
    members = limits.members or DEFAULTS.members or 0
    if zip_members(wheel, name, members) > members:
        fail(f"wheel limit: {name} has over {members} members")
    try:
        with zipfile.ZipFile(wheel) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        fail(f"build failed: {name} is not a zip: {e}")
    if len(infos) > members:
        fail(f"wheel limit: {name} has {len(infos)} members, over {members}")
    total = sum(i.file_size for i in infos)
    if total > unpacked:
        fail(f"wheel limit: {name} unpacks to {size(total)}, over {size(unpacked)}")
    for info in infos:
        parts = info.filename.replace("\\", "/").split("/")
        if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            fail(f"unsafe wheel: member {info.filename[:100]!r} is outside the wheel")


BINARIES = (".so", ".pyd", ".dylib", ".dll")


def compiled_members(wheel: Path) -> list[str]:
    """The wheel's compiled files (extension modules, shared libraries)."""
    with zipfile.ZipFile(wheel) as zf:
        return [n for n in zf.namelist() if n.endswith(BINARIES) or ".so." in n]


def read_member(zf: zipfile.ZipFile, name: str, limit: int = 64 << 20) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > limit:
        fail(f"wheel member {name} is over {size(limit)}")
    return zf.read(info)


def is_pure(wheel: Path) -> bool:
    """A wheel with no compiled code: nothing to repair or audit (by what it holds, not
    by what its name says)."""
    if compiled_members(wheel):
        return False
    if wheel.name.endswith("-none-any.whl"):
        return True
    with zipfile.ZipFile(wheel) as zf:
        metas = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/WHEEL", n)]
        purelib = bool(metas) and re.search(
            rb"(?mi)^Root-Is-Purelib:\s*true\s*$", read_member(zf, metas[0], 1 << 20)
        )
    return bool(purelib)


def wheel_modules(wheel: Path) -> list[str]:
    """Every importable module the wheel ships, from its RECORD."""
    with zipfile.ZipFile(wheel) as zf:
        records = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/RECORD", n)]
        if len(records) != 1:
            fail(f"{wheel.name} has {len(records)} RECORD files")
        text = read_member(zf, records[0]).decode("utf-8", "replace")
    modules = set()
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        parts = row[0].split("/")
        if parts[0].endswith((".dist-info", ".data")):
            continue
        name = parts[-1]
        if name.endswith(".py"):
            stem = name[:-3]
        elif name.endswith(EXTENSION_SUFFIXES):
            stem = name.split(".")[0]  # _speedups.cpython-311-x86_64-linux-gnu.so
        else:
            continue
        dotted = parts[:-1] if stem == "__init__" else [*parts[:-1], stem]
        if dotted and all(p.isidentifier() for p in dotted):
            modules.add(".".join(dotted))
    return sorted(modules)


def source_date_epoch(backend_wheel: Path) -> int:
    """SOURCE_DATE_EPOCH, else the newest timestamp of the backend's wheel (which the
    build made with the sdist's SOURCE_DATE_EPOCH): the same for every build of one sdist."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    if value.isdigit():
        return int(value)
    with zipfile.ZipFile(backend_wheel) as zf:
        stamps = [calendar.timegm((*i.date_time, 0, 0, -1)) for i in zf.infolist()]
    return max(stamps, default=ZIP_EPOCH_MIN)


def normalise_wheel(wheel: Path, backend_wheel: Path) -> int:
    """Rewrite a repaired wheel so that the same contents always give the same bytes.

    Repair tools write a new zip with the current time: here every entry gets the
    timestamp source_date_epoch() gives, permissions 0644 (0755 where any execute
    bit was set), deflate, in sorted order with the .dist-info last and its RECORD
    at the very end (as the wheel spec recommends). Contents and RECORD are unchanged.
    """
    epoch = max(source_date_epoch(backend_wheel), ZIP_EPOCH_MIN)
    stamp = time.gmtime(epoch)[:6]
    with zipfile.ZipFile(wheel) as zf:
        entries = [(i, zf.read(i)) for i in zf.infolist() if not i.is_dir()]

    def order(name: str) -> tuple:
        top = name.split("/")[0]
        return (top.endswith(".dist-info"), name.endswith(".dist-info/RECORD"), name)

    entries.sort(key=lambda e: order(e[0].filename))
    tmp = wheel.with_name(wheel.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as out:
        for info, data in entries:
            new = zipfile.ZipInfo(info.filename, stamp)
            mode = (info.external_attr >> 16) & 0o777
            new.external_attr = (0o100755 if mode & 0o111 else 0o100644) << 16
            new.compress_type = zipfile.ZIP_DEFLATED
            new.create_system = 3  # unix, whatever machine did it
            out.writestr(new, data)
    tmp.replace(wheel)
    return epoch
