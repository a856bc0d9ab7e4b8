"""The farm's status records: one row per (package, version, platform, Python).

A master-side service listens for finished builds on Buildbot's message queue
and keeps the outcome of each wheel build in memory, saved under the master's
basedir (at most once a second) and read back at start. The package pages and
badges render from these rows, never by asking Buildbot's API per package.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from buildbot.process.results import CANCELLED, EXCEPTION, FAILURE, SKIPPED, SUCCESS, WARNINGS
from buildbot.util.service import BuildbotService
from packaging.utils import canonicalize_name
from twisted.internet import defer, reactor, threads
from twisted.python import log

BUILT, FAILED, SKIPPED_ROW, CANCELLED_ROW = "built", "failed", "skipped", "cancelled"
STATUS_FILE = "status.json"
STATUS_SERVICE = "wheelfarm-status"
SAVE_DELAY = 1.0  # seconds: a burst of finished builds is saved once


@dataclass
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

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.package, self.version, self.platform, self.python)


class StatusRecords:
    """The rows, by key and by package; loaded from and saved to one JSON file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.by_package: dict[str, dict[tuple, Row]] = {}

    def add(self, row: Row) -> None:
        rows = self.by_package.setdefault(row.package, {})
        old = rows.get(row.key)
        # A skipped build (the wheel was already there) keeps the build that made it.
        if row.status == SKIPPED_ROW and old is not None and old.status == BUILT:
            return
        rows[row.key] = row

    def rows(self, package: str) -> list[Row]:
        return list(self.by_package.get(canonicalize_name(package), {}).values())

    def load(self) -> None:
        if self.path is None or not self.path.is_file():
            return
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError) as e:
            log.msg(f"wheelfarm: ignoring unreadable status records {self.path}: {e}")
            return
        for item in data.get("rows", []):
            self.add(Row(**item))

    def snapshot(self) -> list[Row]:
        return [row for rows in list(self.by_package.values()) for row in list(rows.values())]

    def save(self, rows: list[Row] | None = None) -> None:
        if self.path is None:
            return
        data = json.dumps({"rows": [asdict(r) for r in rows or self.snapshot()]}).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".status-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, self.path)


def row_status(results: int | None) -> str:
    if results in (SUCCESS, WARNINGS):
        return BUILT
    if results == SKIPPED:
        return SKIPPED_ROW
    if results == CANCELLED:
        return CANCELLED_ROW
    return FAILED


class StatusService(BuildbotService):
    """Turns Buildbot's "build finished" messages into status rows."""

    name = STATUS_SERVICE
    records: StatusRecords | None = None
    _save_call = None
    _consumer = None

    def checkConfig(self, basedir: str = "", **kwargs) -> None:
        pass

    def reconfigService(self, basedir: str = "", **kwargs):
        path = Path(basedir) / STATUS_FILE
        if self.records is None or self.records.path != path:
            self.records = StatusRecords(path)
            self.records.load()
        return super().reconfigService(**kwargs)

    @defer.inlineCallbacks
    def startService(self):
        yield super().startService()
        self._consumer = yield self.master.mq.startConsuming(
            self._finished, ("builds", None, "finished")
        )

    @defer.inlineCallbacks
    def stopService(self):
        if self._consumer is not None:
            self._consumer.stopConsuming()
            self._consumer = None
        if self._save_call is not None and self._save_call.active():
            self._save_call.cancel()
            self._save_call = None
            yield threads.deferToThread(self.records.save, self.records.snapshot())
        yield super().stopService()

    @defer.inlineCallbacks
    def _finished(self, key, build: dict):
        try:
            row = yield self._row(build)
        except Exception as e:  # a broken record must never break the master
            log.err(e, "wheelfarm: could not record a finished build")
            return
        if row is not None:
            self.records.add(row)
            self._schedule_save()

    def _schedule_save(self) -> None:
        if self._save_call is None or not self._save_call.active():
            self._save_call = reactor.callLater(SAVE_DELAY, self._save)

    def _save(self):
        self._save_call = None
        d = threads.deferToThread(self.records.save, self.records.snapshot())
        d.addErrback(log.err, "wheelfarm: could not save the status records")
        return d

    @defer.inlineCallbacks
    def _row(self, build: dict):
        props = yield self.master.data.get(("builds", build["buildid"], "properties"))
        prop = {k: v[0] for k, v in (props or {}).items()}
        if not prop.get("package") or not prop.get("platform") or not prop.get("python"):
            return None  # not a wheel build (e.g. the campaign orchestrator)
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
