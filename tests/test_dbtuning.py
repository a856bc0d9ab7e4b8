"""Fewer database round trips per build (ops/dbtuning.py), without a master."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from buildbot.db import enginestrategy, model
from buildbot.process.properties import Interpolate, Properties
from twisted.internet import defer

from wheelfarm.ops import dbtuning


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "postgresql://farm:pw@db/farm", "mysql://x@h/d"]
)
def test_only_sqlite_files_are_tuned(url):
    assert dbtuning.sqlite_engine_kwargs(url) == {}


def test_a_sqlite_file_keeps_its_connection_in_wal_with_full_sync(tmp_path):
    url = "sqlite:///state.sqlite"
    kwargs = dbtuning.sqlite_engine_kwargs(url)
    engine = enginestrategy.create_engine(url, basedir=str(tmp_path), **kwargs)
    seen = set()
    for _ in range(3):
        with engine.connect() as conn:
            seen.add(id(conn.connection.dbapi_connection))
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL: durable
    assert len(seen) == 1  # Buildbot's NullPool opened one per call
    engine.dispose()


class FakeDB:
    """What _write_properties uses of Buildbot's DBConnector, on a real table."""

    def __init__(self, engine: sa.engine.Engine) -> None:
        self.engine = engine
        self.model = SimpleNamespace(build_properties=model.Model.build_properties)
        self.builds = SimpleNamespace(checkLength=lambda column, value: None)
        self.pool = SimpleNamespace(do_with_transaction=self.do_with_transaction)
        self.transactions = 0

    def do_with_transaction(self, thd):
        self.transactions += 1
        with self.engine.begin() as conn:
            return defer.succeed(thd(conn))

    def rows(self, buildid: int) -> dict[str, tuple]:
        table = model.Model.build_properties
        with self.engine.connect() as conn:
            query = sa.select(table.c.name, table.c.value, table.c.source)
            result = conn.execute(query.where(table.c.buildid == buildid))
            return {r.name: (json.loads(r.value), r.source) for r in result}


@pytest.fixture
def db(tmp_path) -> FakeDB:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    model.Model.metadata.create_all(engine)
    return FakeDB(engine)


def test_a_flush_writes_what_buildbot_writes_in_one_transaction(db):
    events = []
    master = SimpleNamespace(db=db)

    def get(path):
        return defer.succeed(db.rows(int(path[1])))

    master.data = SimpleNamespace(
        get=get,
        rtypes=SimpleNamespace(
            property=SimpleNamespace(generateUpdateEvent=lambda b, p: events.append((b, p)))
        ),
        updates=SimpleNamespace(setBuildProperties="buildbot's"),
    )
    service = dbtuning.BatchedBuildProperties()
    service.parent = SimpleNamespace(master=master)  # as a master's child service
    service.startService()
    assert master.data.updates.setBuildProperties == service.set_build_properties

    props = Properties()
    props.setProperty("package", "six", "campaign")
    props.setProperty("build_env", {"A": ["b", 1]}, "campaign")
    props.setProperty("abi", None, "campaign")
    build = SimpleNamespace(getProperties=lambda: props)
    master.data.updates.setBuildProperties(7, build)
    assert db.transactions == 1
    assert db.rows(7) == {
        "package": ("six", "campaign"),
        "build_env": ({"A": ["b", 1]}, "campaign"),
        "abi": (None, "campaign"),
    }
    # the next flush: only what changed or is new, rendered like Buildbot renders it
    props.setProperty("abi", "cp311", "resolve")
    props.setProperty("label", Interpolate("%(prop:package)s!"), "resolve")
    master.data.updates.setBuildProperties(7, build)
    assert db.transactions == 2
    assert db.rows(7)["abi"] == ("cp311", "resolve")
    assert db.rows(7)["label"] == ("six!", "resolve")
    assert [sorted(p) for _, p in events] == [
        ["abi", "build_env", "package"],
        ["abi", "label"],
    ]
    master.data.updates.setBuildProperties(7, build)  # nothing changed: no write
    assert db.transactions == 2 and len(events) == 2

    service.stopService()
    assert master.data.updates.setBuildProperties == "buildbot's"
