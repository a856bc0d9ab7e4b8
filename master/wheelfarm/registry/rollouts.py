"""Rollouts, rollouts.yaml: rebuild (part of) the registry for a new Python or toolchain.

    schema: 1
    rollouts:
      - name: python-3.13          # started from the UI's "rollout" force form
        description: build every package for Python 3.13
        python: ["3.13"]           # default: each package's own
        platforms: [linux-x86_64]  # default: all
        packages: all              # or a list of registry packages
        toolchain: "2026.12"       # optional: a new toolchain generation (rebuilds all)
        max_in_flight: 50          # builds queued at once (default 50)
        verify: true               # optional: verify builds (publish nothing, compare)

Nodes are released in dependency order, `max_in_flight` at a time, so a rollout
over 15,000 packages never floods Buildbot's queue.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from ..problems import FieldPath
from . import safeyaml
from .fields import Fields, unknown_platform, unsupported_python

KEYS = (
    "name",
    "description",
    "python",
    "platforms",
    "packages",
    "toolchain",
    "max_in_flight",
    "verify",
)
NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")


@dataclass(frozen=True)
class Rollout:
    name: str
    description: str
    pythons: tuple[str, ...] | None  # None: each package's own
    platforms: tuple[str, ...] | None  # None: all
    packages: tuple[str, ...] | None  # None: all (normalised names)
    toolchain: str | None
    max_in_flight: int
    verify: bool = False  # verify builds: build again, compare with the index, publish nothing

    def __repr__(self) -> str:  # a step's log lines name it: bounded, whatever it lists
        return f"<Rollout {self.name!r}>"


def load_rollouts(path: str | os.PathLike[str], known_packages: set[str]) -> list[Rollout]:
    """Read and validate rollouts.yaml (a missing file: no rollouts)."""
    if not Path(path).exists():
        return []
    doc = safeyaml.load(path)
    fields = Fields(doc, os.fspath(path))
    rollouts: dict[str, Rollout] = {}
    for i, entry in enumerate(fields.top_level(doc.data, "rollouts")):
        rollout = _read(fields, ("rollouts", i), entry, known_packages)
        if rollout is None:
            continue
        if rollout.name in rollouts:
            fields.error(("rollouts", i, "name"), f"duplicate rollout {rollout.name!r}")
        rollouts[rollout.name] = rollout
    fields.raise_problems()
    return list(rollouts.values())


def _read(fields: Fields, path: FieldPath, value: Any, known: set[str]) -> Rollout | None:
    entry = fields.mapping(path, value, KEYS, required=("name",))
    if entry is None:
        return None
    key = partial(fields.get, entry, path)

    def package_error(name: str) -> str | None:
        return None if canonicalize_name(name) in known else f"{name!r} is not in the registry"

    packages = key("packages", _read_packages, None, fields=fields, check=package_error)
    return Rollout(
        name=key("name", fields.string, "", check=_name_error),
        description=key("description", fields.string, ""),
        pythons=key("python", fields.strings, None, check=unsupported_python, nonempty=True),
        platforms=key("platforms", fields.strings, None, check=unknown_platform, nonempty=True),
        packages=tuple(canonicalize_name(p) for p in packages) if packages else None,
        toolchain=key("toolchain", fields.string, None),
        max_in_flight=key("max_in_flight", fields.positive, 50),
        verify=key("verify", fields.boolean, False),
    )


def _read_packages(path: FieldPath, value: Any, fields: Fields, check) -> tuple | None:
    if value == "all":
        return None
    return fields.strings(path, value, check=check, nonempty=True)


def _name_error(name: str) -> str | None:
    ok = NAME.fullmatch(name)
    return None if ok else f"{name!r} is not a valid rollout name (lowercase, digits, '.', '-')"
