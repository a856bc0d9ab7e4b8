"""System packages a build needs (`build.system` in the registry), per package manager.

On a worker's own system nothing is installed (a volunteer's system is theirs): they
are checked, and the build declined where one is missing. In a container worker's
build image they are installed into a derived image (isolation/container.py). Names
come from the registry, where they are checked, and are only ever argv items.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from subprocess import DEVNULL
from typing import Any

from .facts import fail
from .processes import say
from .tools import which

SYSTEM_MANAGERS: dict[str, dict[str, Any]] = {
    "apt": {"installed": ["dpkg-query", "-W", "-f=${Status}"], "says": "install ok installed"},
    "dnf": {"installed": ["rpm", "-q"], "says": ""},
    "brew": {"installed": ["brew", "list", "--versions"], "says": ""},
}
SYSTEM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9@+._-]{0,99}")


def system_packages(specs: Sequence[str]) -> dict[str, list[str]]:
    """`apt:libyaml-dev` ... -> {"apt": ["libyaml-dev"], ...} (a bad item fails)."""
    found: dict[str, list[str]] = {}
    for spec in specs:
        manager, _, name = spec.partition(":")
        if manager not in SYSTEM_MANAGERS or not SYSTEM_NAME.fullmatch(name):
            fail(f"not a system package: {spec!r} (MANAGER:NAME, MANAGER one of apt, dnf, brew)")
        found.setdefault(manager, []).append(name)
    return found


def this_manager() -> str | None:
    """The package manager of this machine, by the tool that asks it."""
    for manager, how in SYSTEM_MANAGERS.items():
        if which(how["installed"][0]):
            return manager
    return None


def require_system_packages(wanted: dict[str, list[str]]) -> None:
    """On a worker's own system: decline the build where a listed package is missing."""
    manager = this_manager()
    if manager is None or manager not in wanted:
        if wanted:
            say(f"system packages: none listed for {manager or 'this system'}")
        return
    how = SYSTEM_MANAGERS[manager]
    missing = []
    for name in wanted[manager]:
        done = subprocess.run(
            [*how["installed"], name], capture_output=True, text=True, stdin=DEVNULL
        )
        if done.returncode or how["says"] not in done.stdout:
            missing.append(name)
    if missing:
        fail(
            f"declined: needs system packages {', '.join(missing)} ({manager}), "
            "not installed on this worker"
        )
