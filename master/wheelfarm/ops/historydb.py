"""A year of builds in the database must not slow down Buildbot's UI.

Measured with bench/history.py on a million builds (SQLite), the UI's lists of
recent builds (`/api/v2/builds?order=-started_at&limit=40` for the waterfall, the
Builders page's 200, the home page's running builds) took 1 to 4 s each, for two
reasons this module removes:

- Buildbot's schema has no index on `builds.started_at` nor `builds.complete_at`
  (nor `buildsets.rebuilt_buildid`, which every build page asks for, nor
  `buildrequests.submitted_at`, the console's order), so each list sorted or
  scanned every build. `HistoryIndexes` creates them at start
  (`CREATE INDEX IF NOT EXISTS`, once: seconds on a million builds), named
  `wheelfarm_*`.
- SQLite plans a join by its statistics (`sqlite_stat1`), and Buildbot never makes
  any. With statistics of only some of the tables the grid's and console's list of
  build requests joins (six, newest first), SQLite sorted every request: 0.7 s on a
  million; with all of them it reads the newest 200 in a millisecond.
  `HistoryIndexes` runs `ANALYZE` on the tables the UI's lists join at start and
  every day (statistics of an empty farm would mislead the planner once it has
  grown): 0.8 s on a million builds, in the database's thread. PostgreSQL's
  autovacuum keeps its own.
- With a `limit`, Buildbot's data API also counts every matching row, as
  `SELECT count(*) FROM (the query, with its ORDER BY)`: the database sorts a
  million rows to count them. `count_without_order` drops the ORDER BY from
  that count only (the total is the same); the query itself is unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from buildbot.util.service import BuildbotService
from twisted.internet import defer, task
from twisted.python import log

from ..buildbot_internals import APPLY_TO_SQL_QUERY, count_queries_with

INDEXES = {
    "wheelfarm_builds_started_at": ("builds", "started_at"),
    "wheelfarm_builds_complete_at": ("builds", "complete_at"),
    "wheelfarm_buildsets_rebuilt_buildid": ("buildsets", "rebuilt_buildid"),
    "wheelfarm_buildrequests_submitted_at": ("buildrequests", "submitted_at"),
}
# What the UI's lists (builds, requests, buildsets, changes) read and join.
UI_TABLES = (
    "builds",
    "buildrequests",
    "buildrequest_claims",
    "buildsets",
    "buildset_sourcestamps",
    "sourcestamps",
    "builders",
    "changes",
)
STATISTICS_EVERY = 24 * 3600  # seconds


def ensure_indexes(conn) -> list[str]:
    """Create the indexes that are missing; return their names."""
    inspector = sa.inspect(conn)
    made = []
    for name, (table, column) in INDEXES.items():
        if name not in {i["name"] for i in inspector.get_indexes(table)}:
            conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})")
            made.append(name)
    conn.commit()
    return made


def refresh_statistics(conn) -> list[str]:
    """SQLite: measure the tables the UI's lists read, for its query planner."""
    if conn.dialect.name != "sqlite":
        return []
    present = set(sa.inspect(conn).get_table_names())
    tables = [t for t in UI_TABLES if t in present]
    for table in tables:
        conn.exec_driver_sql(f"ANALYZE {table}")
    conn.commit()
    return tables


class HistoryIndexes(BuildbotService):
    name = "wheelfarm-history-indexes"

    _statistics: task.LoopingCall | None = None

    def reconfigService(self):
        install()  # Buildbot's API lists stay fast with a year of builds
        return super().reconfigService()

    @defer.inlineCallbacks
    def startService(self):
        yield super().startService()
        try:
            made = yield self.master.db.pool.do(ensure_indexes)
        except Exception as e:  # e.g. another master of a cluster made it meanwhile
            log.msg(f"wheelfarm: could not create the history indexes: {e}")
        else:
            if made:
                log.msg(f"wheelfarm: created database indexes {', '.join(made)}")
        self._statistics = task.LoopingCall(self._refresh)
        self._statistics.clock = self.master.reactor
        self._statistics.start(STATISTICS_EVERY, now=True)

    @defer.inlineCallbacks
    def _refresh(self):
        try:
            yield self.master.db.pool.do(refresh_statistics)
        except Exception as e:  # a busy database: next time
            log.msg(f"wheelfarm: could not refresh the database statistics: {e}")

    def stopService(self):
        if self._statistics is not None and self._statistics.running:
            self._statistics.stop()
        return super().stopService()


def count_without_order(self, query):
    query, count_query = APPLY_TO_SQL_QUERY(self, query)
    if count_query is not None:
        bare = query.limit(None).offset(None).order_by(None)
        count_query = sa.select(sa.func.count()).select_from(bare.alias("query"))
    return query, count_query


def install() -> None:
    """Make Buildbot's data API count without sorting (idempotent)."""
    count_queries_with(count_without_order)
