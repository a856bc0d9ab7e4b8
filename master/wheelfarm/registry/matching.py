"""Which worker may start which build: platform, Python version and downtime windows.

Buildbot already sends a builder's requests only to that builder's workers (one builder
per platform) and respects each worker's `max_builds`; `can_take` is the rest of the rule,
asked by the builder's canStartBuild for each free worker. When it says no, Buildbot tries
the builder's other workers, and the request waits if none can take it. A worker in
downtime is put in Buildbot's quarantine until `downtime_ends`: when it leaves it,
Buildbot offers it the waiting requests again.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from .packages import Package
from .workers import Downtime, WorkerEntry

# platform -> the Pythons its workers offer: what the farm can build at all
Served = dict[str, frozenset[str]]

DAY = 24 * 60  # minutes


def in_window(window: Downtime, when: datetime) -> bool:
    """Whether `when` (aware, any zone) falls inside the weekly UTC window."""
    when = when.astimezone(UTC)
    minute = when.hour * 60 + when.minute
    # an overnight window that opened yesterday is still open this early today
    yesterday = (when - timedelta(days=1)).weekday()
    if window.end <= window.start:
        if when.weekday() in window.days and minute >= window.start:
            return True
        return yesterday in window.days and minute < window.end
    return when.weekday() in window.days and window.start <= minute < window.end


def in_downtime(entry: WorkerEntry, when: datetime) -> bool:
    return any(in_window(w, when) for w in entry.downtime)


def window_end(window: Downtime, when: datetime) -> datetime:
    """When the window that is open at `when` closes (UTC)."""
    when = when.astimezone(UTC)
    midnight = when.replace(hour=0, minute=0, second=0, microsecond=0)
    minute = when.hour * 60 + when.minute
    if window.end <= window.start and minute >= window.start:
        midnight += timedelta(days=1)  # opened tonight: closes tomorrow
    return midnight + timedelta(minutes=window.end)


def downtime_ends(entry: WorkerEntry, when: datetime) -> datetime | None:
    """When the downtime `when` falls in ends, windows that overlap or follow each
    other counted as one (a week at most); None outside downtime."""
    end = None
    at = when
    for _ in range(8):
        ends = [window_end(w, at) for w in entry.downtime if in_window(w, at)]
        if not ends:
            break
        end = at = max(ends)
    return end


def served(entries: list[WorkerEntry]) -> Served:
    offers: dict[str, set[str]] = {}
    for entry in entries:
        offers.setdefault(entry.platform, set()).update(entry.pythons)
    return {platform: frozenset(pythons) for platform, pythons in offers.items()}


def served_targets(package: Package, served: Served) -> list[tuple[str, str]]:
    """The package's (platform, Python) pairs some worker offers; the others would
    wait in the queue for a worker that does not exist."""
    return [
        (platform, python)
        for platform in package.platforms
        for python in package.pythons
        if python in served.get(platform, ())
    ]


def prefer_native(entries: list[WorkerEntry]):
    """Buildbot's nextWorker: a free native worker before an emulated one (emulation is
    several times slower), else any free one."""
    emulated = {e.name for e in entries if e.emulated}

    def next_worker(builder, workers, request):
        pool = [w for w in workers if w.worker.workername not in emulated] or workers
        return random.choice(pool) if pool else None  # Buildbot's own rule, among these

    return next_worker


def can_take(entry: WorkerEntry, python: str | None, when: datetime) -> bool:
    """Whether the worker may start a build for `python` at `when` (it is already free)."""
    return python in entry.pythons and not in_downtime(entry, when)
