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
        historydb.refresh_statistics(conn)  # as the service does at start
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


# Buildbot's query for /api/v2/buildrequests (db/buildrequests.py, _saSelectQuery), newest first
REQUESTS = (
    "SELECT buildrequests.id FROM buildrequests "
    "LEFT OUTER JOIN buildrequest_claims ON buildrequests.id = buildrequest_claims.brid "
    "JOIN buildsets ON buildrequests.buildsetid = buildsets.id "
    "JOIN buildset_sourcestamps ON buildsets.id = buildset_sourcestamps.buildsetid "
    "JOIN sourcestamps ON buildset_sourcestamps.sourcestampid = sourcestamps.id "
    "JOIN builders ON buildrequests.builderid = builders.id "
    "ORDER BY buildrequests.id DESC LIMIT 200"
)


def test_with_statistics_the_newest_requests_are_read_without_sorting_them_all(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    model.Model.metadata.create_all(engine)
    n = 3000
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO builders (id, name, name_hash) VALUES (1, 'linux-x86_64', 'h')"
        )
        conn.exec_driver_sql(
            "INSERT INTO sourcestamps (id, ss_hash, branch, revision, patchid, repository, "
            "codebase, project, created_at) VALUES (1, 'h', '', NULL, NULL, '', '', '', 0)"
        )
        conn.exec_driver_sql(
            "INSERT INTO buildsets (id, external_idstring, reason, submitted_at, complete, "
            "complete_at, results) VALUES (?, NULL, 'r', ?, 1, ?, 0)",
            [(i, i, i) for i in range(1, n)],
        )
        conn.exec_driver_sql(
            "INSERT INTO buildset_sourcestamps (buildsetid, sourcestampid) VALUES (?, 1)",
            [(i,) for i in range(1, n)],
        )
        conn.exec_driver_sql(
            "INSERT INTO buildrequests (id, buildsetid, builderid, priority, complete, "
            "results, submitted_at, complete_at, waited_for) VALUES (?, ?, 1, 0, 1, 0, ?, ?, 0)",
            [(i, i, i, i) for i in range(1, n)],
        )
    with engine.connect() as conn:
        historydb.ensure_indexes(conn)
        # a farm of a million requests with statistics of some tables only (what this
        # module used to make): SQLite then starts from buildset_sourcestamps and
        # sorts every request
        conn.exec_driver_sql("ANALYZE sqlite_schema")  # makes sqlite_stat1
        conn.exec_driver_sql(
            "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)",
            [
                ("buildrequests", "buildrequests_buildsetid", "1000000 1"),
                ("buildrequests", "buildrequests_builderid", "1000000 200000"),
                ("buildsets", "buildsets_submitted_at", "1000000 1"),
            ],
        )
        conn.exec_driver_sql("ANALYZE sqlite_schema")  # read them again
        assert "TEMP B-TREE" in plan(conn, REQUESTS)
        assert "buildset_sourcestamps" in historydb.refresh_statistics(conn)
        assert "TEMP B-TREE" not in plan(conn, REQUESTS)
        assert len(conn.exec_driver_sql(REQUESTS).fetchall()) == 200
