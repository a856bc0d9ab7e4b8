"""The indexes and the count that keep Buildbot's API fast on a year of builds (no master)."""

from __future__ import annotations

import sqlalchemy as sa
from buildbot.data.resultspec import ResultSpec
from buildbot.db import model

from wheelfarm.ops import historydb


def make_db(tmp_path, builds: int = 300) -> sa.engine.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    model.Model.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO builds (id, number, builderid, buildrequestid, masterid, started_at, "
            "complete_at, locks_duration_s, state_string, results) "
            "VALUES (?, ?, ?, ?, 1, ?, ?, 0, 'x', 0)",
            [(i, i, 1 + i % 5, i, 1000 + i, 1010 + i if i % 7 else None) for i in range(1, builds)],
        )
    return engine


def plan(conn, sql: str) -> str:
    return " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))


def test_indexes_are_made_once_and_the_recent_builds_use_them(tmp_path):
    engine = make_db(tmp_path)
    with engine.connect() as conn:
        assert historydb.ensure_indexes(conn) == list(historydb.INDEXES)
        assert historydb.ensure_indexes(conn) == []  # at every later start: nothing to do
        recent = plan(conn, "SELECT * FROM builds ORDER BY started_at DESC LIMIT 40")
        assert "wheelfarm_builds_started_at" in recent and "TEMP B-TREE" not in recent
        # the Builders page asks for the builds of every builder, newest first
        builders = plan(
            conn,
            "SELECT * FROM builds WHERE builderid IN (1, 2, 3, 4, 5) "
            "ORDER BY started_at DESC LIMIT 200",
        )
        assert "TEMP B-TREE" not in builders
        running = plan(conn, "SELECT * FROM builds WHERE complete_at IS NULL")
        assert "wheelfarm_builds_complete_at" in running


def test_the_api_counts_without_sorting_and_still_sorts_and_limits(tmp_path):
    engine = make_db(tmp_path)
    historydb.install()
    builds = model.Model.metadata.tables["builds"]
    spec = ResultSpec(order=["-started_at"], limit=40)
    spec.fieldMapping = {"started_at": "builds.started_at", "builderid": "builds.builderid"}
    query, count = spec.applyToSQLQuery(sa.select(builds))
    with engine.connect() as conn:
        rows = conn.execute(query).fetchall()
        assert [r.started_at for r in rows] == list(range(1299, 1259, -1))
        assert conn.execute(count).scalar() == 299
    assert "ORDER BY" not in str(count) and "ORDER BY" in str(query)
