"""Whether the workers and the registry fit: idle workers and platforms nobody builds on.

`wheelfarm check` prints these as warnings; the master logs them at every (re)config
and shows them on /farm/workers. Neither is an error: a volunteer may join before the
first package for their platform, and a platform may wait for its first volunteer.
"""

from __future__ import annotations

from collections.abc import Iterable

from .packages import Registry
from .platforms import PLATFORMS
from .workers import WorkerEntry


def targeted(registry: Registry) -> dict[str, int]:
    """Platform -> how many packages build there."""
    return {p: len(registry.for_platform(p)) for p in PLATFORMS}


def idle_workers(registry: Registry, workers: Iterable[WorkerEntry]) -> list[WorkerEntry]:
    """Workers on a platform no package targets."""
    counts = targeted(registry)
    return [w for w in workers if not counts[w.platform]]


def unserved_platforms(registry: Registry, workers: Iterable[WorkerEntry]) -> dict[str, int]:
    """Platforms with packages to build but no worker: platform -> package count."""
    served = {w.platform for w in workers}
    return {p: n for p, n in targeted(registry).items() if n and p not in served}


def idle_message(registry: Registry, worker: WorkerEntry) -> str:
    return f"no package in {registry.path} builds for {worker.platform!r}"


def unserved_message(platform: str, count: int) -> str:
    return f"no worker serves {platform!r} (packages to build there: {count})"


def coverage_lines(registry: Registry, workers: list[WorkerEntry]) -> list[str]:
    """The warnings as the master logs and shows them, one line each."""
    lines = [
        f"worker {w.name!r}: {idle_message(registry, w)}" for w in idle_workers(registry, workers)
    ]
    lines += [unserved_message(p, n) for p, n in unserved_platforms(registry, workers).items()]
    return lines
