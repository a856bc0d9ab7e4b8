"""Archives a stranger made, walked with bounded memory before Python's readers see them.

Python's `zipfile` parses the whole central directory the end record sizes, whatever
number of members that record says: a 400 MB wheel of tiny entries is gigabytes of
ZipInfo objects. Python's `tarfile` reads a GNU long name or a pax header whole into
memory: a 4 MB gzip of one zeroed 4 GiB long name is 4 GiB. Both run on the trusted
side, as the worker, outside any sandbox's limits; so the farm walks the archive first,
entry by entry, and refuses one over its limits before they are read.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
from pathlib import Path
from typing import Any, BinaryIO

from .facts import fail
from .isolation.limits import size

HEADER_MAX = 1 << 20  # a long name or a pax header: real ones are a few hundred bytes
EXTENSION_TYPES = {b"L": "long name", b"K": "long link name", b"x": "pax", b"g": "pax"}
CENTRAL_ENTRY = 46  # the fixed part of a central directory entry


def zip_members(path: Path, name: str, most: int) -> int:
    """The number of entries in the central directory `zipfile` will read, counted one
    by one (stopping past `most`): the end record's own count is the maker's word."""
    with path.open("rb") as f:
        start, length = _central_directory(f, name)
        f.seek(start)
        count = done = 0
        while done < length:
            entry = f.read(CENTRAL_ENTRY)
            if len(entry) < CENTRAL_ENTRY or entry[:4] != b"PK\x01\x02":
                break  # zipfile says what is wrong with it
            count += 1
            if count > most:
                return count
            n, m, k = struct.unpack("<HHH", entry[28:34])
            f.seek(n + m + k, 1)
            done += CENTRAL_ENTRY + n + m + k
    return count


def _central_directory(f: BinaryIO, name: str) -> tuple[int, int]:
    """Where zipfile looks for the central directory: its size from the end record
    (zip64's where it has one), ending where that record starts."""
    f.seek(0, 2)
    end = f.tell()
    f.seek(max(0, end - (1 << 16) - 22))
    tail_at = f.tell()
    tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        fail(f"build failed: {name} is not a zip")
    (length,) = struct.unpack("<I", tail[at + 12 : at + 16])
    record_at = tail_at + at
    locator = at - 20
    if locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
        (offset,) = struct.unpack("<Q", tail[locator + 8 : locator + 16])
        f.seek(offset)
        record = f.read(56)
        if record[:4] != b"PK\x06\x06" or len(record) < 56:
            fail(f"build failed: {name} is not a zip")
        (length,) = struct.unpack("<Q", record[40:48])
        record_at = offset
    return max(0, record_at - length), length


def check_tar_headers(path: Path, unpacked: int) -> None:
    """Walk the tar's headers (gzip, bzip2, xz or none), skipping member data: fail on an
    extension header over HEADER_MAX or members declaring over `unpacked` bytes in all."""
    with path.open("rb") as raw:
        head = raw.read(6)
    opener = (
        gzip.open if head[:2] == b"\x1f\x8b"
        else bz2.open if head[:3] == b"BZh"
        else lzma.open if head[:6] == b"\xfd7zXZ\x00"
        else open
    )  # fmt: skip
    total = zeros = 0
    try:
        with opener(path, "rb") as f:
            while True:
                block = f.read(512)
                if len(block) < 512:
                    return  # the end, or a truncated archive tarfile will name
                if block == bytes(512):
                    zeros += 1
                    if zeros == 2:
                        return
                    continue
                zeros = 0
                declared = _tar_number(block[124:136])
                if declared is None:
                    return  # not a header tarfile reads either: it says so
                kind = EXTENSION_TYPES.get(block[156:157])
                if kind and declared > HEADER_MAX:
                    over = f"over {size(HEADER_MAX)}"
                    fail(f"unsafe sdist: a {kind} header of {size(declared)}, {over}")
                total += max(0, declared)
                if total > unpacked:
                    fail(f"unsafe sdist: unpacks to over {size(unpacked)}")
                _skip(f, -(-declared // 512) * 512)
    except (OSError, EOFError, lzma.LZMAError) as e:
        fail(f"cannot read sdist {path.name}: {e}")


def _tar_number(field: bytes) -> int | None:
    """A tar header's number: octal digits, or base-256 when the first byte's high bit
    is set (GNU, for sizes over 8 GiB)."""
    if field[:1] in (b"\x80", b"\xff"):
        value = int.from_bytes(field[1:], "big")
        return -value if field[:1] == b"\xff" else value
    digits = field.split(b"\0", 1)[0].strip()
    try:
        return int(digits or b"0", 8)
    except ValueError:
        return None


def _skip(f: Any, count: int) -> None:
    while count > 0:
        chunk = f.read(min(count, 1 << 20))
        if not chunk:
            return
        count -= len(chunk)
