"""Fewer database round trips per build: what bounds a master's builds per second.

Profiled with bench/dispatch.py (trivial builds, 4 local workers, SQLite), the
master's one database thread was busy about 80% of the time, at about 115 calls
per build, while the reactor thread idled. Two of Buildbot's habits made most of it:

- Buildbot opens SQLite with `NullPool`: every call opens a new connection (and
  sets its pragmas) and closes it, and closing the last connection of a WAL
  database checkpoints it. Buildbot's own `engine_kwargs` setting
  (`sqlite_engine_kwargs`) gives it SQLAlchemy's default pool for a file database
  instead, which keeps the connection; Buildbot still runs a single database
  thread for SQLite. Alone, this took 200 trivial builds from 4.1 to 11.5 per
  second. (`synchronous=NORMAL` on top measured within the noise: commits keep
  SQLite's full durability.)
- A build's properties (38 for a wheel build: the request's, the builder's, the
  worker's, the build's, then the resolve step's) are written one transaction per
  property, each a select, an insert and a commit (alone: 4.1 -> 5.9 builds per
  second; with the kept connection: 11.5 -> 16.8). `BatchedBuildProperties` writes
  the properties a flush adds or changes in one transaction: the same rows, and
  the same single update message Buildbot sends for that flush. It skips
  Buildbot's rendering of the properties when they hold only plain values, which
  rendering would give back unchanged (a sixth of the reactor's time per build).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from buildbot.util.service import BuildbotService
from sqlalchemy.pool import QueuePool
from twisted.internet import defer


def sqlite_engine_kwargs(db_url: str) -> dict[str, Any]:
    """Buildbot's `engine_kwargs` for the farm's database: a kept connection on SQLite
    files; nothing for other databases, whose drivers already pool."""
    url = sa.engine.make_url(db_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return {}  # Buildbot keeps an in-memory database on one connection itself
    return {"poolclass": QueuePool}


def _write_properties(db, buildid: int, changed: dict[str, tuple[Any, str]]):
    """Buildbot's BuildsConnectorComponent.setBuildProperty for many properties, in
    one transaction (its checks, its select then insert or update)."""
    table = db.model.build_properties

    def thd(conn) -> None:
        for name, (value, source) in changed.items():
            db.builds.checkLength(table.c.name, name)
            db.builds.checkLength(table.c.source, source)
            where = sa.and_(table.c.buildid == buildid, table.c.name == name)
            row = conn.execute(sa.select(table.c.value, table.c.source).where(where)).fetchone()
            value_js = json.dumps(value)
            if row is None:
                conn.execute(
                    table.insert(),
                    {"buildid": buildid, "name": name, "value": value_js, "source": source},
                )
            elif row.value != value_js or row.source != source:
                conn.execute(table.update().where(where), {"value": value_js, "source": source})

    return db.pool.do_with_transaction(thd)


_PLAIN = (str, int, float, bool, type(None))


def _plain(value: Any) -> bool:
    """Whether `value` holds nothing Buildbot would render (JSON-like values only)."""
    if type(value) in _PLAIN:
        return True
    if type(value) in (list, tuple):
        return all(_plain(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    return False


class BatchedBuildProperties(BuildbotService):
    """Makes `master.data.updates.setBuildProperties` write one transaction per flush."""

    name = "wheelfarm-batched-build-properties"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._original: Any = None

    def startService(self):
        updates = self.master.data.updates
        self._original = updates.setBuildProperties
        updates.setBuildProperties = self.set_build_properties
        return super().startService()

    def stopService(self):
        if self._original is not None:
            self.master.data.updates.setBuildProperties = self._original
            self._original = None
        return super().stopService()

    @defer.inlineCallbacks
    def set_build_properties(self, buildid: int, properties):
        """Buildbot's Properties.setBuildProperties, with one write for the whole flush."""
        master = self.master
        old = yield master.data.get(("builds", str(buildid), "properties"))
        real = properties.getProperties()
        new = real.asDict()
        if not _plain(new):  # rendering plain values gives them back, slowly (adapters)
            new = yield real.render(new)
        changed = {k: v for k, v in new.items() if not (k in old and old[k] == v)}
        if changed:
            yield _write_properties(master.db, buildid, changed)
            yield master.data.rtypes.property.generateUpdateEvent(buildid, changed)
