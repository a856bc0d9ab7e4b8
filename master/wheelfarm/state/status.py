"""The farm's status records: one row per (package, version, platform, Python).

A master-side service listens for finished builds on Buildbot's message queue and
appends the outcome of each wheel build to the farm's table (`state/db.py`, at most once
a second); every master tails that table into memory (the rows since the last one it
read), so a build finished on any master shows on every master's pages. The package
pages and badges render from these rows, never by asking Buildbot's API per package.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass, field, fields

from buildbot.process.results import (
    CANCELLED,
    EXCEPTION,
    FAILURE,
    RETRY,
    SKIPPED,
    SUCCESS,
    WARNINGS,
)
from buildbot.util.service import BuildbotService
from packaging.utils import canonicalize_name
from twisted.internet import defer, reactor, task, threads
from twisted.python import log

from .db import StateDB

BUILT, FAILED, SKIPPED_ROW, CANCELLED_ROW = "built", "failed", "skipped", "cancelled"
STATUS_SERVICE = "wheelfarm-status"
SAVE_DELAY = 1.0  # seconds: a burst of finished builds is saved once
TAIL_EVERY = 1.0  # seconds between reads of the rows other masters added
# PostgreSQL hands out ids at insert, not commit: a row may appear after a higher id was
# read. Ids are read again this long after they were passed (a transaction here is short).
TAIL_GRACE = 10.0
# ...and never more than this many ids back: more rows than all masters together write in
# a grace period, so a start does not read a big farm's whole table again every second.
TAIL_WINDOW = 1000
READ_CHUNK = 20_000  # rows per read: a year's half a million never sit in memory as JSON


@dataclass(slots=True)  # a year at PyPI scale is half a million rows: no __dict__ each
class Row:
    package: str  # normalised name
    version: str  # "" when the build failed before it knew one
    platform: str
    python: str
    status: str  # built / failed / skipped / cancelled
    build_url: str
    finished_at: float
    step: str | None = None  # the first failing step
    log_url: str | None = None  # that step's log, as text
    reason: str | None = None  # the build's one-line summary
    wheel: str | None = None  # file name in the index
    # its row in the farm's table (not part of the record): replaced rows are deleted
    rowid: int = field(default=0, compare=False, repr=False)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.package, self.version, self.platform, self.python)


class StatusRecords:
    """The rows in memory, by package and key: the newest row of a key wins, except
    that a skipped build (the wheel was already there) keeps the build that made it."""

    def __init__(self) -> None:
        self.by_package: dict[str, dict[tuple, Row]] = {}

    def add(self, row: Row) -> bool:
        """Whether the row was taken."""
        rows = self.by_package.setdefault(row.package, {})
        old = rows.get(row.key)
        if row.status == SKIPPED_ROW and old is not None and old.status == BUILT:
            return False
        rows[row.key] = row
        return True

    def get(self, key: tuple[str, str, str, str]) -> Row | None:
        return self.by_package.get(key[0], {}).get(key)

    def rows(self, package: str) -> list[Row]:
        return list(self.by_package.get(canonicalize_name(package), {}).values())

    def count(self) -> int:
        return sum(len(rows) for rows in self.by_package.values())

    def snapshot(self) -> list[Row]:
        return [row for rows in list(self.by_package.values()) for row in list(rows.values())]


_FIELDS = [f.name for f in fields(Row) if f.name != "rowid"]
# values that repeat from row to row: one string each in memory, not one per row
_SHARED = ("package", "version", "platform", "python", "status", "step")


def _row(data: dict) -> Row:
    for name in _SHARED:
        value = data.get(name)
        if type(value) is str:
            data[name] = sys.intern(value)
    return Row(**data)


def row_data(row: Row) -> dict:
    """The record of a row, as the farm's table keeps it."""
    return {name: getattr(row, name) for name in _FIELDS}


def row_status(results: int | None) -> str:
    if results in (SUCCESS, WARNINGS):
        return BUILT
    if results == SKIPPED:
        return SKIPPED_ROW
    if results in (CANCELLED, RETRY):  # stopped, or the worker or master went away
        return CANCELLED_ROW
    return FAILED


class StatusService(BuildbotService):
    """Turns Buildbot's "build finished" messages into status rows in the database, and
    keeps `records` (what the pages read) current from that table."""

    name = STATUS_SERVICE
    records: StatusRecords | None = None
    db: StateDB | None = None
    _save_call = None
    _consumer = None
    _tail_loop: task.LoopingCall | None = None
    # False until the rows are read after a start (seconds at PyPI scale, while Buildbot
    # starts): the pages answer "loading" meanwhile rather than show a part
    loaded = False
    _pending: list[tuple[int, dict]]

    def checkConfig(self, basedir: str = "", db_url: str = "", **kwargs) -> None:
        pass

    def reconfigService(self, basedir: str = "", db_url: str = "sqlite:///state.sqlite", **kw):
        db = StateDB.open(db_url, basedir)
        if self.db is not db:
            self.db, self.records, self._pending = db, StatusRecords(), []
            self.loaded = False
            self._reading = defer.DeferredLock()  # one tail at a time
            self._dead: list[int] = []  # rows a newer one replaced: deleted in batches
            self._safe = 0  # every row up to this id has been read
            self._seen: set[int] = set()  # ids above _safe already read
            self._marks: deque[tuple[float, int]] = deque()  # (when, highest id read)
        return super().reconfigService(**kw)

    @defer.inlineCallbacks
    def startService(self):
        yield super().startService()
        self._consumer = yield self.master.mq.startConsuming(
            self._finished, ("builds", None, "finished")
        )
        self._tail_loop = task.LoopingCall(self._tail_logged)
        self._tail_loop.start(TAIL_EVERY, now=True)  # the first read sets `loaded`

    @defer.inlineCallbacks
    def stopService(self):
        if self._tail_loop is not None and self._tail_loop.running:
            self._tail_loop.stop()
        if self._consumer is not None:
            self._consumer.stopConsuming()
            self._consumer = None
        if self._save_call is not None and self._save_call.active():
            self._save_call.cancel()
            yield self._save()
        yield super().stopService()

    @defer.inlineCallbacks
    def _finished(self, key, build: dict):
        try:
            row = yield self._row(build)
        except Exception as e:  # a broken record must never break the master
            log.err(e, "wheelfarm: could not record a finished build")
            return
        if row is not None:
            assert self.records is not None  # reconfigService ran
            # this master's pages show it at once; its id comes with the next read
            self.records.add(row)
            self._pending.append((build["buildid"], row_data(row)))
            self._schedule_save()

    def _schedule_save(self) -> None:
        if self._save_call is None or not self._save_call.active():
            self._save_call = reactor.callLater(SAVE_DELAY, self._save)

    def _save(self):
        assert self.db is not None  # reconfigService ran
        self._save_call = None
        rows, self._pending = self._pending, []
        d = threads.deferToThread(self.db.status_add, rows)
        d.addCallback(lambda _: self.tail())
        d.addErrback(log.err, "wheelfarm: could not save the status records")
        return d

    def _tail_logged(self):
        return self.tail().addErrback(log.err, "wheelfarm: could not read the status records")

    def tail(self):
        """Read the rows added since the last read (by any master) into `records`."""
        return self._reading.run(self._tail)

    @defer.inlineCallbacks
    def _tail(self):
        db, records, now = self.db, self.records, time.monotonic()
        assert db is not None and records is not None  # reconfigService ran
        after = highest = self._safe
        while True:
            found = yield threads.deferToThread(db.status_since, after, READ_CHUNK)
            if db is not self.db:  # reconfigured to another database meanwhile
                return
            for rowid, data in found:
                if rowid not in self._seen:
                    self._seen.add(rowid)
                    self._apply(rowid, data)
            if found:
                after = highest = max(highest, found[-1][0])
            if len(found) < READ_CHUNK:
                break
        self.loaded = True
        self._marks.append((now, highest))
        while self._marks and self._marks[0][0] < now - TAIL_GRACE:
            self._safe = max(self._safe, self._marks.popleft()[1])
        self._safe = max(self._safe, highest - TAIL_WINDOW)
        self._seen = {i for i in self._seen if i > self._safe}
        if len(self._dead) > records.count() + 100:  # replaced rows outnumber current ones
            dead, self._dead = self._dead, []
            yield threads.deferToThread(db.status_delete, dead)

    def _apply(self, rowid: int, data: dict) -> None:
        try:
            row = _row(data)
        except (TypeError, ValueError) as e:
            log.msg(f"wheelfarm: status row {rowid}: skipped: {e}")
            return
        assert self.records is not None  # reconfigService ran
        old = self.records.get(row.key)
        row.rowid = rowid
        if old is not None and old.rowid > rowid:  # an older row, read late
            self._dead.append(rowid)
        elif self.records.add(row):
            if old is not None and old.rowid and old.rowid != rowid:
                self._dead.append(old.rowid)
        else:  # a skipped build of a wheel that was built: the built row stays
            self._dead.append(rowid)

    @defer.inlineCallbacks
    def _row(self, build: dict):
        props = yield self.master.data.get(("builds", build["buildid"], "properties"))
        prop = {k: v[0] for k, v in (props or {}).items()}
        if not prop.get("package") or not prop.get("platform") or not prop.get("python"):
            return None  # not a wheel build (e.g. the campaign orchestrator)
        if prop.get("publish") is False:
            return None  # a pull request's test build says nothing of the package
        base = self.master.config.buildbotURL
        build_url = f"{base}#/builders/{build['builderid']}/builds/{build['number']}"
        status = row_status(build.get("results"))
        row = Row(
            package=canonicalize_name(prop["package"]),
            version=str(prop.get("version") or ""),
            platform=prop["platform"],
            python=str(prop["python"]),
            status=status,
            build_url=build_url,
            finished_at=_timestamp(build.get("complete_at")),
            reason=build.get("state_string"),
            wheel=prop.get("wheel") or prop.get("already_built"),
        )
        if status == FAILED:
            row.step, row.log_url = yield self._failing_step(build["buildid"], base)
        return row

    @defer.inlineCallbacks
    def _failing_step(self, buildid: int, base: str):
        steps = yield self.master.data.get(("builds", buildid, "steps"))
        for step in steps or []:
            if step.get("results") in (FAILURE, EXCEPTION):
                logs = yield self.master.data.get(("steps", step["stepid"], "logs"))
                logs = sorted(logs or [], key=lambda lg: lg["slug"] != "stdio")
                url = f"{base}api/v2/logs/{logs[0]['logid']}/raw_inline" if logs else None
                return step["name"], url
        return None, None


def _timestamp(value) -> float:
    if value is None:
        return 0.0
    return value.timestamp() if hasattr(value, "timestamp") else float(value)
