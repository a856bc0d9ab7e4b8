"""The volunteer workers, workers/workers.yaml: who runs which machine for the farm.

Volunteers add an entry by pull request. Passwords never live in the repository: the
master reads each worker's password from its secrets directory, under the name given
by password_secret_name().
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from ..problems import FieldPath, Problem, ValidationError
from . import safeyaml
from .fields import Fields, kind, unknown_platform, unsupported_python
from .platforms import PLATFORMS

KEYS = (
    "name",
    "owner",
    "platform",
    "python",
    "max_builds",
    "tags",
    "container",
    "emulated",
    "isolation",
    "downtime",
)
DOWNTIME_KEYS = ("days", "start", "end")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")
# Linux workers with one of these build in the platform's manylinux image.
CONTAINER_ENGINES = ("docker", "podman")
# How a worker isolates the package's own code (farmtool's ISOLATIONS, plus `auto`:
# bubblewrap where it is installed; a worker with nothing refuses untrusted builds).
ISOLATIONS = ("auto", "bubblewrap", "none-i-accept-the-risk")
# The name is also a secret name and a directory name, so keep it plain.
WORKER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
EMAIL = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")
TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


@dataclass(frozen=True)
class Downtime:
    """A weekly window, in UTC, in which a worker takes no new builds.

    It opens at `start` on each of `days` and closes at `end`; an `end` at or before
    `start` closes on the next day (an overnight window).
    """

    days: tuple[int, ...]  # weekdays it opens on, Monday = 0
    start: int  # minutes after midnight UTC
    end: int  # minutes after midnight UTC, up to 24 * 60


@dataclass(frozen=True)
class WorkerEntry:
    name: str
    owner: str  # contact, with an email address
    platform: str  # a PLATFORMS key
    pythons: tuple[str, ...]
    max_builds: int
    tags: tuple[str, ...]
    line: int  # of the entry in the file
    container: str | None = None  # docker or podman: steps run in the build image
    downtime: tuple[Downtime, ...] = ()
    # another architecture's platform, offered by running its image under QEMU
    # (binfmt_misc): slower, so native workers of the platform go first
    emulated: bool = False
    isolation: str = "auto"
    file: str = field(default="", compare=False)  # the workers file that declares it


def password_secret_name(name: str) -> str:
    return f"worker-{name}"


def load_workers(path: str | os.PathLike[str]) -> list[WorkerEntry]:
    """Read and validate the workers file, raising ValidationError listing every problem."""
    doc = safeyaml.load(path)
    fields = Fields(doc, os.fspath(path))
    workers: dict[str, tuple[int, WorkerEntry]] = {}  # name -> (index, entry)
    for i, entry in enumerate(fields.top_level(doc.data, "workers")):
        worker = _read_worker(fields, ("workers", i), entry)
        if worker is None:
            continue
        if worker.name in workers:
            j, first = workers[worker.name]
            message = f"duplicate of workers[{j}] ({first.name!r}, line {first.line})"
            fields.error(("workers", i, "name"), message)
            continue
        workers[worker.name] = (i, worker)
    fields.raise_problems()
    return [replace(worker, file=os.fspath(path)) for _, worker in workers.values()]


def load_worker_files(paths: Sequence[str | os.PathLike[str]]) -> list[WorkerEntry]:
    """Every worker of several files; ValidationError lists every problem of them all,
    including a worker declared in two files (naming both files and lines)."""
    problems: list[Problem] = []
    entries: list[WorkerEntry] = []
    first: dict[str, tuple[str, WorkerEntry]] = {}  # name -> (its file, entry)
    for path in paths:
        try:
            found = load_workers(path)
        except ValidationError as e:
            problems += e.problems
            continue
        for i, worker in enumerate(found):
            if worker.name in first:
                other, entry = first[worker.name]
                message = f"worker {worker.name!r} is declared in two files: first in {other}"
                message += f":{entry.line}"
                problems.append(
                    Problem(os.fspath(path), worker.line, f"workers[{i}].name", message)
                )
                continue
            first[worker.name] = (os.fspath(path), worker)
            entries.append(worker)
    if problems:
        raise ValidationError(problems)
    return entries


def _read_worker(fields: Fields, path: FieldPath, value: Any) -> WorkerEntry | None:
    """One entry of `workers`; None if it has no usable name (other problems are recorded)."""
    entry = fields.mapping(path, value, KEYS, required=("name", "owner", "platform", "python"))
    if entry is None:
        return None
    string = fields.string
    key = partial(fields.get, entry, path)  # read one key of this entry, or its default
    worker = WorkerEntry(
        name=key("name", string, "", check=_name_error),
        owner=key("owner", string, "", check=_owner_error),
        platform=key("platform", string, "", check=unknown_platform),
        pythons=key("python", fields.strings, (), check=unsupported_python, nonempty=True),
        max_builds=key("max_builds", fields.positive, 1),
        tags=key("tags", fields.strings, (), check=_tag_error),
        line=fields.doc.line(path),
        container=key("container", string, None, check=_container_error),
        isolation=key("isolation", string, "auto", check=_isolation_error),
        downtime=tuple(_read_downtimes(fields, (*path, "downtime"), entry.get("downtime", []))),
        emulated=bool(key("emulated", fields.boolean, False)),
    )
    if worker.emulated and not (worker.container and worker.platform.startswith("linux-")):
        # emulation runs the platform's image: only a Linux container worker has one
        fields.error((*path, "emulated"), "needs a Linux platform and `container: podman`")
    platform = PLATFORMS.get(worker.platform)
    if worker.isolation == "bubblewrap" and platform is not None and platform.os != "linux":
        message = f"bubblewrap runs on Linux only, not on {worker.platform}"
        fields.error((*path, "isolation"), message)
    return worker if worker.name else None


def _read_downtimes(fields: Fields, path: FieldPath, value: Any) -> list[Downtime]:
    if not isinstance(value, list):
        fields.error(path, f"expected a list, got {kind(value)}")
        return []
    windows = (_read_downtime(fields, (*path, i), item) for i, item in enumerate(value))
    return [w for w in windows if w is not None]


def _read_downtime(fields: Fields, path: FieldPath, value: Any) -> Downtime | None:
    """`{days: [sat, sun], start: "02:00", end: "06:00"}`; days default to every day."""
    window = fields.mapping(path, value, DOWNTIME_KEYS, required=("start", "end"))
    if window is None:
        return None
    key = partial(fields.get, window, path)
    days = key("days", fields.strings, DAYS, check=_day_error, nonempty=True)
    start = key("start", fields.string, None, check=_clock_error)
    end = key("end", fields.string, None, check=_clock_error)
    if start is None or end is None:
        return None
    if start == "24:00":
        fields.error((*path, "start"), "a window starts at 23:59 at the latest")
        return None
    return Downtime(tuple(sorted({DAYS.index(d) for d in days})), _minutes(start), _minutes(end))


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _day_error(day: str) -> str | None:
    if day in DAYS:
        return None
    return f"unknown day {day!r} (one of: {', '.join(DAYS)})"


def _clock_error(clock: str) -> str | None:
    if CLOCK.fullmatch(clock):
        return None
    return f'{clock!r} is not a time of day in UTC like "02:30" (00:00 to 24:00)'


def _name_error(name: str) -> str | None:
    if WORKER_NAME.fullmatch(name):
        return None
    return (
        f"{name!r} is not a valid worker name "
        "(lowercase letters, digits and '-', starting with a letter or digit, at most 63)"
    )


def _owner_error(owner: str) -> str | None:
    return None if EMAIL.search(owner) else f"{owner!r} has no email address to contact"


def _container_error(engine: str) -> str | None:
    if engine in CONTAINER_ENGINES:
        return None
    return f"unknown container engine {engine!r} (one of: {', '.join(CONTAINER_ENGINES)})"


def _isolation_error(kind: str) -> str | None:
    if kind in ISOLATIONS:
        return None
    return f"unknown isolation {kind!r} (one of: {', '.join(ISOLATIONS)})"


def _tag_error(tag: str) -> str | None:
    return None if TAG.fullmatch(tag) else f"{tag!r} is not a simple word"
