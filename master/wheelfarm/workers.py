"""The volunteer workers, workers/workers.yaml: who runs which machine for the farm.

Volunteers add an entry by pull request. Passwords never live in the repository: the
master reads each worker's password from its secrets directory, under the name given
by password_secret_name().
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import safeyaml
from .fields import Fields, unknown_platform, unsupported_python
from .problems import FieldPath

KEYS = ("name", "owner", "platform", "python", "max_builds", "tags", "container")
# Linux workers with one of these build in the platform's manylinux image.
CONTAINER_ENGINES = ("docker", "podman")
# The name is also a secret name and a directory name, so keep it plain.
WORKER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
EMAIL = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")
TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


@dataclass(frozen=True)
class WorkerEntry:
    name: str
    owner: str  # contact, with an email address
    platform: str  # a PLATFORMS key
    pythons: tuple[str, ...]
    max_builds: int
    tags: tuple[str, ...]
    line: int  # of the entry in the file
    container: str | None = None  # docker or podman: build inside manylinux images


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
    return [worker for _, worker in workers.values()]


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
    )
    return worker if worker.name else None


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


def _tag_error(tag: str) -> str | None:
    return None if TAG.fullmatch(tag) else f"{tag!r} is not a simple word"
