"""Verify builds: is a published wheel reproducible from its sdist with its toolchain?

A verify build (the force form's `verify`) builds the wheel again, publishes
nothing, and compares what it would publish with the published file. Results are
kept per project, one JSON line per verification, in `<index>/.verify/<project>.jsonl`
(a dot name is never a project of the index, and the index's own files stay as they
were published); the package page shows each wheel's latest result.
"""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

FOLDER = ".verify"


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def wheel_differences(published: Path, rebuilt: Path) -> list[str]:
    """The members whose contents differ (or that one wheel lacks); `(zip metadata)` when
    the files differ though every member is the same (timestamps, order, permissions)."""
    if _sha256(published) == _sha256(rebuilt):
        return []
    with zipfile.ZipFile(published) as a, zipfile.ZipFile(rebuilt) as b:
        have_a, have_b = set(a.namelist()), set(b.namelist())
        differ = [
            n
            for n in sorted(have_a | have_b)
            if n not in have_a or n not in have_b or a.read(n) != b.read(n)
        ]
    return differ or ["(zip metadata)"]


def _path(index_root: Path, project: str) -> Path:
    return Path(index_root) / FOLDER / f"{canonicalize_name(project)}.jsonl"


def record_verification(index_root: Path, project: str, result: dict[str, Any]) -> None:
    """Append one verification (wheel, reproducible, differ, build_url) of `project`."""
    path = _path(index_root, project)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({**result, "at": time.time()}, sort_keys=True) + "\n"
    with path.open("a", encoding="utf-8") as f:
        f.write(line)


def verifications(index_root: Path, project: str) -> dict[str, dict[str, Any]]:
    """The latest verification of each wheel of `project`, by file name."""
    latest: dict[str, dict[str, Any]] = {}
    try:
        lines = _path(index_root, project).read_text(encoding="utf-8").splitlines()
    except OSError:
        return latest
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:  # half a line, from a master that died writing it
            continue
        if isinstance(entry, dict) and isinstance(entry.get("wheel"), str):
            latest[entry["wheel"]] = entry
    return latest


def share(index_root: Path, projects: list[str]) -> dict[str, Any]:
    """The registry's share of reproducible packages, from the latest verify builds.

    A package counts when some wheel of it was verified; it is reproducible when the
    latest verification of every verified wheel found the same bytes.
    """
    verified, reproducible, not_reproducible = [], [], {}
    for project in projects:
        latest = verifications(index_root, project)
        if not latest:
            continue
        verified.append(project)
        bad = {w: e.get("differ", []) for w, e in sorted(latest.items()) if not e["reproducible"]}
        if bad:
            not_reproducible[project] = bad
        else:
            reproducible.append(project)
    return {
        "packages": len(projects),
        "verified": len(verified),
        "reproducible": len(reproducible),
        "not_reproducible": not_reproducible,
    }
