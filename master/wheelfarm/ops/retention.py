"""Retention: what a farm keeps of its builds as the years go by.

Buildbot's own janitor (`util.JanitorConfigurator`) runs every night at
`retention_hour` (the master's local time) on a builder of its own
(`__Janitor`, with a force form for admins): it deletes the step logs
(`log_horizon_days`) and Buildbot's build data (`build_data_horizon_days`) older
than their horizon. Builds, their steps and properties stay in the database;
the wheels, their build records (`WHEEL.json`) and the farm's status records
(its own table) are what Buildbot does not know of, so nothing deletes them.
A horizon of 0 keeps that kind for ever; both 0: no janitor at all.
"""

from __future__ import annotations

from datetime import timedelta

from buildbot.configurators.janitor import JANITOR_NAME, JanitorConfigurator

from ..settings import Settings

JANITOR = JANITOR_NAME  # the janitor's builder; its force scheduler is JANITOR + "_force"


def retention_configurators(settings: Settings) -> list:
    logs, data = settings.log_horizon_days, settings.build_data_horizon_days
    if not logs and not data:
        return []
    return [
        JanitorConfigurator(
            logHorizon=timedelta(days=logs) if logs else None,
            build_data_horizon=timedelta(days=data) if data else None,
            hour=settings.retention_hour,
        )
    ]
