"""The release watcher in the master's configuration: on by default, off with interval 0."""

from __future__ import annotations

from pathlib import Path

from conftest import write_registry
from wheelfarm.config import build_config
from wheelfarm.pypiwatch import PyPIReleaseWatcher
from wheelfarm.settings import Settings

WORKERS = """\
schema: 1
workers:
  - name: alice-linux
    owner: Alice <alice@example.org>
    platform: linux-x86_64
    python: ["3.11"]
"""


def settings(tmp_path: Path, **kw) -> Settings:
    workers = tmp_path / "workers.yaml"
    workers.write_text(WORKERS, encoding="utf-8")
    registry = write_registry(tmp_path / "packages.yaml", "  - name: six\n")
    return Settings(basedir=tmp_path, registry=registry, workers_files=[workers], **kw)


def test_the_watcher_follows_the_configured_pypi(tmp_path):
    config = build_config(tmp_path, settings(tmp_path, pypi_url="http://127.0.0.1:1/"))
    (watcher,) = config["change_source"]
    assert isinstance(watcher, PyPIReleaseWatcher)
    assert watcher.pypi_url == "http://127.0.0.1:1/" and watcher.interval == 60
    assert "six" in watcher.registry.packages


def test_interval_zero_turns_the_watcher_off(tmp_path):
    config = build_config(tmp_path, settings(tmp_path, pypi_watch_interval=0))
    assert config["change_source"] == []
    assert "pypi-releases" not in {s.name for s in config["schedulers"]}


def test_the_interval_comes_from_the_environment(tmp_path):
    settings(tmp_path).save()
    loaded = Settings.load(tmp_path, environ={"WHEELFARM_PYPI_WATCH_INTERVAL": "5"})
    assert loaded.pypi_watch_interval == 5
