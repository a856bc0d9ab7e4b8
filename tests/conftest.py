"""Shared fixtures: real farms (master + workers) on free loopback ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from wheelfarm.cascade.campaign import Campaign
from wheelfarm.cascade.store import CampaignStore
from wheelfarm.cli.localfarm import LocalFarm
from wheelfarm.paths import CONTAINERS_CONF
from wheelfarm.state.db import StateDB


# `make test` (and so CI) installs every tool whose absence a test skips for, saying
# "make test" in its reason: there (WHEELFARM_TOOLS_REQUIRED=1) such a skip fails
# instead, so a broken install never passes as a run of skipped isolation tests.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and os.environ.get("WHEELFARM_TOOLS_REQUIRED")):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if "make test" in reason:
        report.outcome = "failed"
        report.longrepr = f"skipped for a missing tool that `make test` installs: {reason}"


ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PG_URL = "postgresql://postgres@127.0.0.1:5432/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_registry(path: Path, body: str) -> Path:
    path.write_text("schema: 1\npackages:\n" + body, encoding="utf-8")
    return path


def wait_builds(farm: LocalFarm, brids: list[int], timeout: float = 600) -> list[dict]:
    """Wait until every request has a finished build; return those builds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        builds = farm.api("builds", complete="true", order="-buildid", limit=500, property="*")[
            "builds"
        ]
        mine = {b["buildrequestid"]: b for b in builds if b["buildrequestid"] in brids}
        if len(mine) == len(brids):
            return [mine[b] for b in brids]
        time.sleep(1)
    raise TimeoutError(f"builds for requests {brids} did not finish in {timeout} s")


def build_logs(farm: LocalFarm, build: dict) -> dict[str, str]:
    """Every log of every step of a build, as the public REST API serves it."""
    import requests

    texts = {}
    for step in farm.api(f"builds/{build['buildid']}/steps")["steps"]:
        for log in farm.api(f"steps/{step['stepid']}/logs")["logs"]:
            raw = requests.get(f"{farm.url}api/v2/logs/{log['logid']}/raw", timeout=60)
            raw.raise_for_status()
            texts[f"{step['name']}/{log['name']}"] = raw.text
    return texts


def campaigns(farm: LocalFarm, prefix: str = "") -> list[Campaign]:
    """The farm's campaign records whose id starts with `prefix`, newest first (from its
    database, as the pages read them)."""
    store = CampaignStore(StateDB(farm.db_url, farm.master_dir))
    return [c for c in store.all() if c.id.startswith(prefix)]


def status_rows(farm: LocalFarm) -> list[dict]:
    """The farm's status rows, oldest first (from its database)."""
    return [row for _, row in StateDB(farm.db_url, farm.master_dir).status_since(0)]


def make_farm(tmp: Path, registry: Path, db_url: str = "sqlite:///state.sqlite", **kw) -> LocalFarm:
    # the PyPI release watcher only where a test asks for it (with its fake PyPI)
    kw.setdefault("pypi_watch_interval", 0)
    return LocalFarm(
        home=tmp / "farm",
        www_port=free_port(),
        worker_port=free_port(),
        db_url=db_url,
        registry=registry,
        **kw,
    )


@pytest.fixture
def farm_factory(tmp_path: Path, request) -> Iterator:
    """Start farms for a test; always stop them, keeping their logs as artifacts."""
    started: list[LocalFarm] = []

    def start(registry: Path, **kw) -> LocalFarm:
        farm = make_farm(tmp_path, registry, **kw)
        started.append(farm)
        farm.create()
        farm.start()
        return farm

    yield start
    for farm in started:
        farm.stop()
        log = farm.master_dir / "twistd.log"
        if log.exists():
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / f"{request.node.name}-master.log").write_bytes(log.read_bytes())


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    name = f"wheelfarm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL + "postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_URL + name
        finally:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


MAKE_IMAGE = Path(__file__).resolve().parents[1] / "workers" / "images" / "make_image.py"


def build_image(suite: str, arch: str, python: str = "3.11") -> str:
    """A build image made by workers/images/make_image.py (cached by its recipe, so slow
    once per machine), as the tests of containers and emulation use it; its name."""
    done = subprocess.run(
        [sys.executable, MAKE_IMAGE, "--suite", suite, "--arch", arch, "--python", python],
        capture_output=True,
        text=True,
        timeout=3600,
        env=dict(os.environ, CONTAINERS_CONF=str(CONTAINERS_CONF)),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def bullseye_image() -> str:
    """Debian bullseye (glibc 2.31) for amd64, CPython 3.11 built in it."""
    return build_image("bullseye", "amd64")


@pytest.fixture(scope="session")
def arm64_image() -> str:
    """Debian bookworm for arm64, run under QEMU on an x86_64 host."""
    return build_image("bookworm", "arm64")
