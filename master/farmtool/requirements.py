"""Requirement strings a package, its backend or the registry names: parsed, never
passed on as they came.

Every one is parsed with `packaging.requirements.Requirement` (from the frontend the
trusted side installed into the step's tool folder before any of the package's code
ran); anything that does not parse, or names a URL or a path instead of a project,
fails the build with one line naming it. What reaches the installer is the parsed
requirement written out again, after `--`: never an option, a path or a URL.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .facts import fail

_packaging: dict[str, Any] = {}
# what installers take a bare name ending so for: a file in the folder they run in
ARCHIVES = (".whl", ".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".egg", ".pyz")


def use_packaging(tool: Path) -> None:
    """Import `packaging` from the step's tool folder, which only the trusted side wrote."""
    if _packaging:
        return
    # last on the path: the standard library is never shadowed
    sys.path.append(str(tool.absolute()))
    try:
        import packaging.specifiers  # noqa: F401 -- deps.py, tags.py use these too
        import packaging.version  # noqa: F401
        from packaging.requirements import InvalidRequirement, Requirement
        from packaging.utils import canonicalize_name
    except ImportError as e:
        fail(f"cannot load packaging from the build frontend in {tool}: {e}")
    _packaging.update(
        Requirement=Requirement, InvalidRequirement=InvalidRequirement,
        canonicalize_name=canonicalize_name,
    )  # fmt: skip


def plain(requirements: Iterable[object], whose: str, step: str = "build failed") -> list[str]:
    """Each requirement, parsed and written out again; a bad one fails the step with
    `STEP: bad requirement '...' in WHOSE: why`."""
    Requirement = _packaging["Requirement"]
    out = []
    for raw in requirements:
        shown = repr(raw)[:120]
        why = None
        if not isinstance(raw, str) or len(raw) > 1000:
            why = "not a requirement string"
        else:
            try:
                parsed = Requirement(raw)
            except _packaging["InvalidRequirement"]:
                why = "not a PEP 508 requirement"
            else:
                if parsed.url:
                    why = "a URL or path, not a project"
                elif parsed.name.lower().endswith(ARCHIVES):
                    why = "a file's name, not a project"  # installers read it as a path
        if why:
            fail(f"{step}: bad requirement {shown} in {whose}: {why}")
        out.append(str(parsed))
    return out


def names(requirements: Iterable[str]) -> set[str]:
    """The canonical project names of parsed requirements."""
    Requirement, canonical = _packaging["Requirement"], _packaging["canonicalize_name"]
    return {canonical(Requirement(r).name) for r in requirements}


def canonical(name: str) -> str:
    return _packaging["canonicalize_name"](name)


def specifier_of(requirements: Iterable[str], name: str):
    """The specifiers the requirements put on project `name`, together."""
    Requirement, canonical_name = _packaging["Requirement"], _packaging["canonicalize_name"]
    found = None
    for raw in requirements:
        parsed = Requirement(raw)
        if canonical_name(parsed.name) == canonical_name(name):
            found = parsed.specifier if found is None else found & parsed.specifier
    return found
