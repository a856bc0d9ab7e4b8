"""Small real wheels for the tests: a module and a valid *.dist-info, installable by pip and uv.

The same arguments always give the same bytes (fixed zip timestamps), so a test
can make "the same wheel again" or, with another `payload`, other bytes.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name


def make_wheel(
    folder: Path,
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    requires_python: str | None = None,
    metadata_name: str | None = None,
    metadata_version: str | None = None,
    payload: str = "",
    filename: str | None = None,
    extra: dict[str, str] | None = None,
) -> Path:
    """A wheel of module `<name>` with VALUE = payload; metadata_* fake a lying METADATA;
    `extra` members (path -> text) besides, in RECORD too."""
    dist = canonicalize_name(name).replace("-", "_")
    dist_info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {metadata_name or name}\n"
    metadata += f"Version: {metadata_version or version}\n"
    if requires_python:
        metadata += f"Requires-Python: {requires_python}\n"
    files = {
        f"{dist}/__init__.py": f"VALUE = {payload!r}\n",
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: wheelmaker\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ),
        **(extra or {}),
    }
    record = ""
    for path, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\n"
    files[f"{dist_info}/RECORD"] = record + f"{dist_info}/RECORD,,\n"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (filename or f"{dist}-{version}-{tag}.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name_in_zip, text in files.items():
            zf.writestr(zipfile.ZipInfo(name_in_zip, date_time=(2020, 1, 1, 0, 0, 0)), text)
    return path
