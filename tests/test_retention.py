"""Retention settings -> Buildbot's janitor (no master)."""

from __future__ import annotations

from datetime import timedelta

from buildbot.configurators.janitor import BuildDataJanitor, LogChunksJanitor

from test_config import farm_settings
from wheelfarm.config import build_config
from wheelfarm.ops.retention import JANITOR, retention_configurators


def janitor_of(config: dict):
    for configurator in config["configurators"]:
        configurator.configure(config)
    (builder,) = [b for b in config["builders"] if b.name == JANITOR]
    return builder, {s.name: s for s in config["schedulers"] if JANITOR in s.name}


def test_by_default_logs_and_build_data_older_than_90_days_go_every_night(tmp_path):
    config = build_config(tmp_path, farm_settings(tmp_path))
    builder, schedulers = janitor_of(config)
    steps = {s.step_class: s for s in builder.factory.steps}
    assert set(steps) == {LogChunksJanitor, BuildDataJanitor}
    assert steps[LogChunksJanitor].kwargs["logHorizon"] == timedelta(days=90)
    assert steps[BuildDataJanitor].kwargs["build_data_horizon"] == timedelta(days=90)
    # nightly at 03:00, and a force form (admins only, as every control endpoint)
    assert schedulers[JANITOR]._config_kwargs["hour"] == 3 and f"{JANITOR}_force" in schedulers


def test_horizons_come_from_the_settings_and_zero_keeps_that_kind(tmp_path):
    settings = farm_settings(tmp_path, log_horizon_days=30, build_data_horizon_days=0)
    settings.retention_hour = 5
    (configurator,) = retention_configurators(settings)
    assert configurator.logHorizon == timedelta(days=30)
    assert configurator.build_data_horizon is None and configurator.hour == 5


def test_both_horizons_zero_keeps_everything(tmp_path):
    settings = farm_settings(tmp_path, log_horizon_days=0, build_data_horizon_days=0)
    assert retention_configurators(settings) == []
    config = build_config(tmp_path, settings)
    assert JANITOR not in [b.name for b in config["builders"]]
