"""Buildbot's database calls through dropped connections (a database restart, a failover,
a pooler or an idle timeout ends them).

Buildbot runs each database call in a thread (`buildbot/db/pool.py`) and runs it again,
with a new connection and a backoff, when the engine's `should_retry(error)` says so.
Its PostgreSQL answer knows only `Lost connection` and `database is locked` (the
MySQL and SQLite wordings), so a call that meets a connection PostgreSQL terminated
(`AdminShutdown`, `server closed the connection unexpectedly`) fails: the step or build
that made it ends EXCEPTION (measured: a build mid-rollout, whose campaign then blocked
its dependents). Two remedies, both Buildbot's own means:

- `engine_kwargs` (state/db.py's `engine_options`): SQLAlchemy's `pool_pre_ping`
  checks each connection before use, so dead ones waiting in the pool are replaced.
- `RetryDroppedConnections`: a call whose connection SQLAlchemy found dropped
  (`connection_invalidated`) is run again, as Buildbot already does for MySQL's lost
  connections. A dropped connection's transaction is rolled back by the server; the one
  case a retry repeats work is a COMMIT the server did before the connection went and
  whose answer was lost, which is the same narrow window Buildbot accepts for MySQL.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from buildbot.util.service import BuildbotService


def dropped(error: Exception) -> bool:
    """Whether SQLAlchemy took `error` for a connection that went away."""
    return isinstance(error, sa.exc.DBAPIError) and bool(error.connection_invalidated)


class RetryDroppedConnections(BuildbotService):
    """Makes Buildbot's database pool run a call again when its connection was dropped."""

    name = "wheelfarm-db-reconnect"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._original: Any = None

    def startService(self):
        engine = self.master.db.pool.engine
        self._original = original = engine.should_retry
        engine.should_retry = lambda error: dropped(error) or original(error)
        return super().startService()

    def stopService(self):
        if self._original is not None:
            self.master.db.pool.engine.should_retry = self._original
            self._original = None
        return super().stopService()
