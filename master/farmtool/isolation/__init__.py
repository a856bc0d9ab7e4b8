"""How a worker runs the package's own code, and the farm's tools next to it.

A step runs in a *place* (`Place`): the worker's own system, whose untrusted phases
run in bubblewrap (`host.py`), or a fresh container of the platform's build image per
phase (`container.py`). Either way there are two kinds of run:

- **trusted**: the farm's own tools (uv installing wheels, auditwheel, the toolchain
  query) on what the build gave them; they may reach the network (the farm's index
  may be on this machine's loopback) and write what the step says;
- **untrusted** (`Phase`): a build backend, the import check, a test command, the
  build of an sdist among the requirements, a crates fetch. Sandboxed, without the
  host's network (user-mode networking where a phase needs it, never the host's),
  within the step's limits (limits.py), writing only its own folders.

Which isolation a worker uses is its entry's choice (`ISOLATIONS`); where nothing
isolates, the worker refuses untrusted builds unless the volunteer opted out.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple, Protocol

from ..facts import fail
from ..processes import Result
from ..tools import which
from .limits import Limits


class Isolation(NamedTuple):
    """How a worker runs untrusted code: one row of ISOLATIONS."""

    name: str
    platforms: tuple[str, ...]  # sys.platform prefixes it works on
    tool: str | None  # must be on PATH
    sandboxed: bool


ISOLATIONS = {
    i.name: i
    for i in (
        Isolation("bubblewrap", ("linux",), "bwrap", True),
        # The volunteer's informed choice (workers.yaml): the build runs as the worker.
        Isolation("none-i-accept-the-risk", ("linux", "darwin", "win32"), None, False),
    )
}
AUTO_ISOLATION = ("bubblewrap",)  # `auto`: the first of these the worker can run


def resolve_isolation(declared: str) -> Isolation:
    """The worker's declared isolation, or the first that works here for `auto`."""
    here = sys.platform
    if declared == "auto":
        for name in AUTO_ISOLATION:
            kind = ISOLATIONS[name]
            if here.startswith(kind.platforms) and (kind.tool is None or which(kind.tool)):
                return kind
        fail(
            "untrusted build refused: nothing isolates it on this worker (install bubblewrap, "
            "or set `isolation: none-i-accept-the-risk` in its workers.yaml entry)"
        )
    chosen = ISOLATIONS.get(declared)
    if chosen is None:
        fail(f"unknown isolation {declared!r} (known: auto, {', '.join(ISOLATIONS)})")
    if not here.startswith(chosen.platforms):
        fail(f"untrusted build refused: isolation {declared} does not work on {here}")
    if chosen.tool and not which(chosen.tool):
        fail(f"untrusted build refused: isolation {declared} needs {chosen.tool} on PATH")
    return chosen


class Phase(NamedTuple):
    """One run of untrusted code."""

    what: str  # for reasons: "build backend", "tests", ...
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    writable: tuple[Path, ...]  # folders of the build directory it may write; all else read-only
    readable: tuple[str, ...] = ()  # host folders it needs besides the system and the build dir
    network: bool = False  # user-mode networking (network.py), never the host's
    shown: tuple[str, ...] = ()  # what the log shows of argv (a helper script is long)


class Outcome(NamedTuple):
    rc: int
    lines: list[str]
    reason: str | None  # the limit that ended it, if one did


class Place(Protocol):
    """Where a step's commands run (host.py, container.py)."""

    isolation: str  # what the build record says
    sandboxed: bool
    python: str  # the target Python, as commands here name it
    root: Path  # the build directory, at the same path for every command

    @property
    def uv(self) -> str:
        """uv, as commands here name it."""

    def prepare(self, folders: list[Path]) -> None:
        """Make these (empty) folders, writable by the place's runs."""

    def own(self, folders: list[Path]) -> None:
        """Let the place's runs write these folders the host filled."""

    def with_system_packages(self, wanted: dict[str, list[str]]) -> None:
        """Build where these system packages are (or decline the build)."""

    def toolchain(self) -> dict:
        """The toolchain of the place, as the farm finds it."""

    def trusted(
        self,
        argv: list[str],
        *,
        writable: tuple[Path, ...] = (),
        network: bool = True,
        quiet: bool = False,
        cache: bool = False,
    ) -> Result:
        """One of the farm's own tools; `cache`: the worker's wheel cache for uv."""

    def trusted_all(
        self, argvs: list[list[str]], *, writable: tuple[Path, ...] = (), cache: bool = False
    ) -> Result:
        """The farm's own tools one after the other, until one fails (one container)."""

    def untrusted(self, phase: Phase, limits: Limits) -> Outcome:
        """A phase of the package's own code, sandboxed and limited."""

    def close(self) -> None:
        """Whatever the place left running or to remove."""


def hidden_dirs(root: Path) -> list[Path]:
    """What no untrusted phase sees of the build directory: the facts for the master."""
    from ..facts import FACTS_DIR

    return [root / FACTS_DIR]
