"""Buildbot's database pool runs a call again when its connection was dropped."""

from __future__ import annotations

from types import SimpleNamespace

import sqlalchemy as sa

from wheelfarm.ops.dbreconnect import RetryDroppedConnections, dropped


def error(invalidated: bool, message: str = "terminating connection") -> sa.exc.OperationalError:
    return sa.exc.OperationalError(
        "SELECT 1", {}, Exception(message), connection_invalidated=invalidated
    )


def test_a_dropped_connection_is_retried_and_buildbots_own_answers_stay():
    engine = SimpleNamespace(should_retry=lambda e: "database is locked" in str(e))
    service = RetryDroppedConnections()
    master = SimpleNamespace(db=SimpleNamespace(pool=SimpleNamespace(engine=engine)))
    service.parent = SimpleNamespace(master=master)  # what a master gives its services
    service.startService()
    assert engine.should_retry(error(True))  # AdminShutdown, server closed the connection
    assert engine.should_retry(error(False, "database is locked"))  # Buildbot's own
    assert not engine.should_retry(error(False, "syntax error"))
    service.stopService()
    assert not engine.should_retry(error(True))  # Buildbot's own again
    assert dropped(error(True)) and not dropped(ValueError("x"))
