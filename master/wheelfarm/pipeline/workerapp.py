"""The worker side as one file: `farmtool.pyz`, a zipapp of the `farmtool` package.

The master ships it with every build (so master and worker never drift), and the
build record names its sha256. The archive is deterministic (sorted members, one
fixed timestamp, fixed permissions, no bytecode): the same sources always give the
same bytes, and so the same sha256, on any master.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import farmtool

PACKAGE = Path(farmtool.__file__).resolve().parent
MAIN = b"import sys\n\nfrom farmtool.cli import main\n\nsys.exit(main())\n"
STAMP = (1980, 1, 1, 0, 0, 0)  # the earliest a zip entry can say


@dataclass(frozen=True)
class WorkerApp:
    path: Path
    sha256: str


def zipapp_bytes(package: Path = PACKAGE) -> bytes:
    members = {"__main__.py": MAIN}
    for source in sorted(package.rglob("*.py")):
        if "__pycache__" not in source.parts:
            members[f"farmtool/{source.relative_to(package).as_posix()}"] = source.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, STAMP)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            zf.writestr(info, members[name], compresslevel=9)
    return buffer.getvalue()


@cache
def worker_app(folder: Path) -> WorkerApp:
    """The zipapp, written once into `folder` (the master's basedir) under its digest."""
    data = zipapp_bytes()
    digest = hashlib.sha256(data).hexdigest()
    path = Path(folder) / "farmtool" / f"farmtool-{digest[:16]}.pyz"
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(path)
    return WorkerApp(path, digest)
