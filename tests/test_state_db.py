"""The farm's tables (state/db.py): migrations, the one-time import of an older farm's
files, and the store and status rows two masters share, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest
import sqlalchemy as sa

from wheelfarm.cascade.campaign import BUILDING, Campaign, Node
from wheelfarm.cascade.store import CampaignStore
from wheelfarm.state.db import SCHEMA_VERSION, StateDB, migrate


def campaign(cid: str, brid: int | None, finished: float | None = None) -> Campaign:
    nodes = {"a|linux-x86_64|3.11": Node("a", "linux-x86_64", "3.11", [], BUILDING)}
    return Campaign(cid, "rollout", cid, "c", 2, nodes, orchestrated_by=brid, finished_at=finished)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request):
    if request.param == "sqlite":
        return "sqlite:///state.sqlite"
    return request.getfixturevalue("pg_url")


def test_two_masters_share_campaigns_and_status_rows(tmp_path, db_url):
    a = StateDB(db_url, tmp_path / "a")  # two processes' engines on one database
    b = StateDB(db_url, tmp_path / "a" if db_url.startswith("sqlite") else tmp_path / "b")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    on_a, on_b = CampaignStore(a), CampaignStore(b)
    on_a.save(campaign("old", 7, finished=5.0))
    running = campaign("running", 7)
    on_a.save(running)
    running.nodes["a|linux-x86_64|3.11"].state = "done"
    on_a.save(running)  # a second save updates, never duplicates
    assert [c.id for c in on_b.all()] == ["running", "old"]  # newest first
    assert on_b.load("running") == running
    assert [c.id for c in on_b.interrupted(7)] == ["running"] and on_b.interrupted(8) == []
    assert on_b.load("../etc") is None

    a.status_add([(1, {"package": "six", "v": 1}), (2, {"package": "six", "v": 2})])
    b.status_add([(2, {"package": "six", "v": 2}), (3, {"package": "idna", "v": 3})])
    rows = b.status_since(0)
    assert [r for _, r in rows] == [
        {"package": p, "v": v} for p, v in [("six", 1), ("six", 2), ("idna", 3)]
    ]
    assert b.status_since(0, limit=2) == rows[:2]  # a start reads a big table in chunks
    assert b.status_since(rows[1][0], limit=2) == rows[2:]
    first = rows[0][0]
    a.status_delete([first])
    assert [i for i, _ in b.status_since(0)] == [i for i, _ in rows[1:]]


def test_masters_starting_together_migrate_once(tmp_path, db_url):
    dbs = [StateDB(db_url, tmp_path) for _ in range(4)]
    errors = []

    def start(db):
        try:
            assert db.engine is not None
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=start, args=(db,)) for db in dbs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert migrate(dbs[0].engine) == SCHEMA_VERSION  # applied: nothing left to do
    with dbs[0].engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version FROM wheelfarm_schema")).all() == [
            (SCHEMA_VERSION,)
        ]


def test_an_older_farms_files_are_imported_once(tmp_path, db_url):
    folder = tmp_path / "campaigns"
    folder.mkdir()
    old = campaign("cascade-x", 3)
    from dataclasses import asdict

    (folder / "cascade-x.json").write_text(json.dumps(asdict(old)))
    (folder / "broken.json").write_text("{")
    lines = [json.dumps({"package": "six", "n": n}) for n in range(3)]
    (tmp_path / "status.jsonl").write_text("\n".join(lines) + '\n{"package": "cut')
    db = StateDB(db_url, tmp_path)
    assert CampaignStore(db).load("cascade-x") == old
    assert [r["n"] for _, r in db.status_since(0)] == [0, 1, 2]
    assert not folder.exists() and (tmp_path / "campaigns.imported" / "cascade-x.json").exists()
    assert (tmp_path / "status.jsonl.imported").exists()
    again = StateDB(db_url, tmp_path)  # the next start: nothing imported twice
    assert len(again.status_since(0)) == 3 and len(CampaignStore(again).all()) == 1


def terminate_connections(pg_url: str) -> int:
    """pg_terminate_backend on every other connection to the test's database (what a
    database restart, a failover, a pooler or an idle timeout does to them)."""
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        return conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()[0]


@pytest.mark.postgres
def test_dropped_connections_are_replaced_and_calls_retried(tmp_path, pg_url):
    db = StateDB(pg_url, tmp_path)
    store = CampaignStore(db)
    store.save(campaign("c1", 7))
    db.status_add([(1, {"package": "six"})])
    for _ in range(3):
        assert terminate_connections(pg_url) >= 1  # the pool's idle connection
        store.save(campaign("c1", 7, finished=9.0))  # each call on a dropped connection
        assert terminate_connections(pg_url) >= 1
        assert [c.finished_at for c in store.all()] == [9.0]
        assert terminate_connections(pg_url) >= 1
        db.status_add([(2, {"package": "idna"})])
        assert terminate_connections(pg_url) >= 1
        assert [row["package"] for _, row in db.status_since(0)] == ["six", "idna"]


@pytest.mark.postgres
def test_a_database_that_stays_away_fails_the_call_after_retries(tmp_path, pg_url, monkeypatch):
    db = StateDB(pg_url, tmp_path)
    db.status_add([(1, {"package": "six"})])
    monkeypatch.setattr("wheelfarm.state.db.RETRY_FOR", 1.0)
    attempts = []
    real = db.engine.connect

    def refused():
        attempts.append(1)
        raise sa.exc.OperationalError("connect", {}, Exception("connection refused"))

    monkeypatch.setattr(db.engine, "connect", refused)
    with pytest.raises(sa.exc.OperationalError):
        db.status_since(0)
    assert len(attempts) > 1  # tried again before giving up
    monkeypatch.setattr(db.engine, "connect", real)
    assert len(db.status_since(0)) == 1
