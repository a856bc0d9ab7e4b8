"""Volunteer workers on a real master: joining with join-linux.sh, downtime windows,
wrong passwords, and the /farm/workers page with its coverage warnings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from conftest import wait_builds, write_registry
from fakepypi import FakePyPI
from sdists import make_sdist
from wheelfarm.cli.localfarm import LocalFarm

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PACKAGES = ("alpha", "beta", "gamma")
REGISTRY = "".join(
    f'  - name: {name}\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n' for name in PACKAGES
) + (
    # a platform no worker here serves: a coverage warning
    '  - name: macthing\n    platforms: [macos-arm64]\n    python: ["3.11"]\n'
)


@pytest.fixture
def fake_pypi(tmp_path):
    pypi = FakePyPI()
    sdists = tmp_path / "sdists"
    sdists.mkdir()
    for name in PACKAGES:
        pypi.publish(make_sdist(sdists, name, "1.0", {f"{name}/__init__.py": "X = 1\n"}))
    url = pypi.start()
    yield url
    pypi.stop()


def declare(path: Path, name: str, **extra) -> Path:
    entry = {
        "name": name,
        "owner": f"Volunteer <{name}@example.org>",
        "platform": "linux-x86_64",
        "python": ["3.11"],
        **extra,
    }
    path.write_text(yaml.safe_dump({"schema": 1, "workers": [entry]}), encoding="utf-8")
    return path


def worker_password(tmp_path: Path, name: str, workers_file: Path) -> str:
    """What the operator runs; the farm_factory farm keeps its secrets here."""
    secrets = tmp_path / "farm" / "secrets"
    out = subprocess.run(
        [
            BIN / "wheelfarm",
            "worker-password",
            name,
            "--secrets-dir",
            secrets,
            "--workers",
            workers_file,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.strip()


def start_worker(farm: LocalFarm, basedir: Path, name: str, password: str) -> None:
    """A plain buildbot-worker, as a volunteer without the join script would make it."""
    subprocess.run(
        [
            BIN / "buildbot-worker",
            "create-worker",
            "--quiet",
            "--umask=0o022",
            basedir,
            f"127.0.0.1:{farm.worker_port}",
            name,
            password,
        ],
        check=True,
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([BIN / "buildbot-worker", "start", "--quiet", basedir], check=True, env=env)


def stop_worker(buildbot_worker: Path, basedir: Path) -> None:
    subprocess.run([buildbot_worker, "stop", basedir], capture_output=True)


def connected(farm: LocalFarm) -> dict[str, dict]:
    return {w["name"]: w for w in farm.api("workers")["workers"] if w["connected_to"]}


def wait_connected(farm: LocalFarm, name: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if name in (now := connected(farm)):
            return now[name]
        time.sleep(1)
    raise TimeoutError(f"worker {name} did not connect in {timeout} s")


def workers_page(farm: LocalFarm) -> str:
    r = requests.get(f"{farm.url}farm/workers", timeout=30)
    r.raise_for_status()
    return r.text


def test_join_linux_script_makes_a_worker_that_builds(farm_factory, tmp_path, fake_pypi):
    workers_file = declare(tmp_path / "volunteers.yaml", "joined-1")
    password = worker_password(tmp_path, "joined-1", workers_file)
    registry = write_registry(tmp_path / "packages.yaml", REGISTRY)
    farm = farm_factory(
        registry, pypi_url=fake_pypi, worker_names=[], extra_workers_files=[workers_file]
    )
    joined = tmp_path / "joined"
    env = {**os.environ, "WHEELFARM_WORKER_PASSWORD": password}
    run = [
        "bash",
        ROOT / "workers" / "join-linux.sh",
        "--master",
        f"127.0.0.1:{farm.worker_port}",
        "--name",
        "joined-1",
        "--admin",
        "Volunteer <joined-1@example.org>",
        "--dir",
        joined,
        "--no-service",
    ]
    try:
        done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
        assert password not in done.stdout + done.stderr
        tac = joined / "worker" / "buildbot.tac"
        assert oct(tac.stat().st_mode & 0o777) == "0o600"

        info = wait_connected(farm, "joined-1")["workerinfo"]
        assert info["admin"].strip() == "Volunteer <joined-1@example.org>"
        assert "pythons:" in info["host"] and "arch: x86_64" in info["host"]

        (build,) = wait_builds(farm, farm.force("alpha"), timeout=600)
        assert build["results"] == 0, build["state_string"]
        assert build["properties"]["workername"][0] == "joined-1"
        assert requests.get(f"{farm.url}simple/alpha/", timeout=30).status_code == 200

        # running it again is safe: the same worker, reconfigured and restarted
        done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
        wait_connected(farm, "joined-1")
        (build,) = wait_builds(farm, farm.force("beta"), timeout=600)
        assert build["results"] == 0 and build["properties"]["workername"][0] == "joined-1"
    finally:
        stop_worker(joined / "venv" / "bin" / "buildbot-worker", joined / "worker")


def test_a_worker_in_downtime_takes_no_builds(farm_factory, tmp_path, fake_pypi):
    # declared with a window that covers every minute of the week
    workers_file = declare(
        tmp_path / "volunteers.yaml", "resting", downtime=[{"start": "00:00", "end": "24:00"}]
    )
    password = worker_password(tmp_path, "resting", workers_file)
    registry = write_registry(tmp_path / "packages.yaml", REGISTRY)
    farm = farm_factory(registry, pypi_url=fake_pypi, extra_workers_files=[workers_file])
    resting = tmp_path / "resting"
    try:
        start_worker(farm, resting, "resting", password)
        wait_connected(farm, "resting")
        # "local" runs one build at a time; without the window, "resting" would take some
        brids = [brid for name in PACKAGES for brid in farm.force(name)]
        builds = wait_builds(farm, brids, timeout=600)
        assert [b["results"] for b in builds] == [0, 0, 0], [b["state_string"] for b in builds]
        assert {b["properties"]["workername"][0] for b in builds} == {"local"}
        assert "resting" in connected(farm)

        page = workers_page(farm)
        assert "resting" in page and "every day 00:00-24:00 UTC" in page
        assert "connected, in downtime: takes no new builds" in page
        assert "no worker serves &#39;macos-arm64&#39; (packages to build there: 1)" in page
    finally:
        stop_worker(BIN / "buildbot-worker", resting)
    log = (farm.master_dir / "twistd.log").read_text(encoding="utf-8")
    assert "wheelfarm: WARNING: no worker serves 'macos-arm64'" in log


def test_requests_waiting_for_a_worker_in_downtime_start_when_its_window_closes(
    farm_factory, tmp_path
):
    """The worker in downtime waits in Buildbot's quarantine until its window closes,
    then takes the request that waited: nothing polls."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    closes = now + timedelta(minutes=3)
    window = {
        "start": (now - timedelta(minutes=1)).strftime("%H:%M"),
        "end": closes.strftime("%H:%M"),
    }
    workers_file = declare(tmp_path / "volunteers.yaml", "resting", downtime=[window])
    password = worker_password(tmp_path, "resting", workers_file)
    pypi = FakePyPI()
    sdists = tmp_path / "sdists"
    # the local worker is kept busy past the window's end by a backend that waits
    hold = (closes - datetime.now(UTC)).total_seconds() + 60
    setup = f"import time\ntime.sleep({hold:.0f})\nfrom setuptools import setup\nsetup()\n"
    pypi.publish(make_sdist(sdists, "slow", "1.0", {"slow/__init__.py": ""}, setup_py=setup))
    pypi.publish(make_sdist(sdists, "alpha", "1.0", {"alpha/__init__.py": "X = 1\n"}))
    registry = write_registry(
        tmp_path / "packages.yaml",
        "".join(f'  - name: {n}\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n'
                for n in ("slow", "alpha")),
    )  # fmt: skip
    farm = farm_factory(registry, pypi_url=pypi.start(), extra_workers_files=[workers_file])
    resting = tmp_path / "resting"
    try:
        start_worker(farm, resting, "resting", password)
        wait_connected(farm, "resting")
        [slow] = farm.force("slow")
        deadline = time.monotonic() + 120
        while not farm.api(f"buildrequests/{slow}")["buildrequests"][0]["claimed"]:
            assert time.monotonic() < deadline, "the local worker never took the slow build"
            time.sleep(1)
        [waiting] = farm.force("alpha")
        [build] = wait_builds(farm, [waiting], timeout=600)
        assert build["results"] == 0, build["state_string"]
        assert build["properties"]["workername"][0] == "resting"
        assert build["started_at"] >= closes.timestamp() - 1  # not before the window closed
        [slow_build] = wait_builds(farm, [slow], timeout=600)
        assert slow_build["properties"]["workername"][0] == "local"
        assert slow_build["complete_at"] > build["started_at"]  # local was still busy
    finally:
        stop_worker(BIN / "buildbot-worker", resting)
        pypi.stop()
    log = (farm.master_dir / "twistd.log").read_text(encoding="utf-8")
    assert "resting has been put in quarantine" in log and "resting has left quarantine" in log


def test_a_wrong_password_is_refused_and_logged(farm_factory, tmp_path):
    workers_file = declare(tmp_path / "volunteers.yaml", "intruder-1")
    worker_password(tmp_path, "intruder-1", workers_file)
    registry = write_registry(tmp_path / "packages.yaml", REGISTRY)
    farm = farm_factory(registry, extra_workers_files=[workers_file])
    basedir = tmp_path / "intruder"
    log = farm.master_dir / "twistd.log"
    try:
        start_worker(farm, basedir, "intruder-1", "not-the-password")
        deadline = time.monotonic() + 180
        while "invalid login from user 'intruder-1'" not in log.read_text(encoding="utf-8"):
            assert time.monotonic() < deadline, "the master logged no refused login"
            time.sleep(1)
        assert "intruder-1" not in connected(farm)
        assert "local" in connected(farm)
        assert "intruder-1</td>" in workers_page(farm)
        assert "not connected" in workers_page(farm)
    finally:
        stop_worker(BIN / "buildbot-worker", basedir)
    # the worker saw the refusal too
    assert "unauthorized login" in (basedir / "twistd.log").read_text(encoding="utf-8").lower()


def test_requests_wait_for_a_downtime_window_to_close(farm_factory, tmp_path, fake_pypi):
    # the only worker rests from the last minute until two minutes from now (UTC)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start, end = now - timedelta(minutes=1), now + timedelta(minutes=2)
    window = {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}"}
    workers_file = declare(tmp_path / "volunteers.yaml", "sleepy", downtime=[window])
    password = worker_password(tmp_path, "sleepy", workers_file)
    registry = write_registry(tmp_path / "packages.yaml", REGISTRY)
    farm = farm_factory(
        registry, pypi_url=fake_pypi, worker_names=[], extra_workers_files=[workers_file]
    )
    basedir = tmp_path / "sleepy"
    try:
        start_worker(farm, basedir, "sleepy", password)
        wait_connected(farm, "sleepy")
        (brid,) = farm.force("alpha")
        time.sleep(15)
        if datetime.now(UTC) < end:  # still resting: nothing has started
            assert not farm.api(f"buildrequests/{brid}")["buildrequests"][0]["claimed"]
        (build,) = wait_builds(farm, [brid], timeout=600)
        assert build["results"] == 0, build["state_string"]
        assert build["started_at"] >= end.timestamp()
    finally:
        stop_worker(BIN / "buildbot-worker", basedir)
