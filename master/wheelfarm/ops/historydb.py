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
  `wheelfarm_*`, and on SQLite runs `ANALYZE` on those tables so the planner
  uses them.
- With a `limit`, Buildbot's data API also counts every matching row, as
  `SELECT count(*) FROM (the query, with its ORDER BY)`: the database sorts a
  million rows to count them. `count_without_order` drops the ORDER BY from
  that count only (the total is the same); the query itself is unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from buildbot.data.resultspec import ResultSpec
from buildbot.util.service import BuildbotService
from twisted.internet import defer
from twisted.python import log

INDEXES = {
    "wheelfarm_builds_started_at": ("builds", "started_at"),
    "wheelfarm_builds_complete_at": ("builds", "complete_at"),
    "wheelfarm_buildsets_rebuilt_buildid": ("buildsets", "rebuilt_buildid"),
    "wheelfarm_buildrequests_submitted_at": ("buildrequests", "submitted_at"),
}


def ensure_indexes(conn) -> list[str]:
    """Create the indexes that are missing; return their names."""
    inspector = sa.inspect(conn)
    made = []
    for name, (table, column) in INDEXES.items():
        if name not in {i["name"] for i in inspector.get_indexes(table)}:
            conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})")
            made.append(name)
    if made and conn.dialect.name == "sqlite":
        # without statistics SQLite prefers builds_number for `builderid IN (...)`
        # and sorts every build; PostgreSQL's autovacuum keeps its own
        for table in sorted({INDEXES[name][0] for name in made}):
            conn.exec_driver_sql(f"ANALYZE {table}")
    conn.commit()
    return made


class HistoryIndexes(BuildbotService):
    name = "wheelfarm-history-indexes"

    @defer.inlineCallbacks
    def startService(self):
        yield super().startService()
        try:
            made = yield self.master.db.pool.do(ensure_indexes)
        except Exception as e:  # e.g. another master of a cluster made it meanwhile
            log.msg(f"wheelfarm: could not create the history indexes: {e}")
            return
        if made:
            log.msg(f"wheelfarm: created database indexes {', '.join(made)}")


_ORIGINAL = ResultSpec.applyToSQLQuery


def count_without_order(self, query):
    query, count_query = _ORIGINAL(self, query)
    if count_query is not None:
        bare = query.limit(None).offset(None).order_by(None)
        count_query = sa.select(sa.func.count()).select_from(bare.alias("query"))
    return query, count_query


def install() -> None:
    """Make Buildbot's data API count without sorting (idempotent)."""
    ResultSpec.applyToSQLQuery = count_without_order
