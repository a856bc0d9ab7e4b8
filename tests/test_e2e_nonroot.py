"""A volunteer's worker running as a dedicated, unprivileged user (join-linux.sh
--run-as), through a real master: what a build leaves cannot jam it (a read-only
folder holding an unreadable one), and the limits trip without root (rlimits instead
of cgroups), each with its reason; the worker keeps building afterwards."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

import hostile
from conftest import wait_builds, write_registry
from fakepypi import FakePyPI
from sdists import make_sdist
from test_e2e_workers import ROOT, declare, stop_worker, wait_connected, worker_password

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="making a dedicated user needs root"),
    pytest.mark.skipif(not shutil.which("bwrap"), reason="needs bubblewrap (make test has it)"),
]
USER = "wheelfarm-volunteer"
NAME = "unprivileged-1"

# A test command that leaves a folder the worker cannot empty by the usual means.
JAM = (
    "import os; os.makedirs('jam/locked/deeper'); open('jam/locked/deeper/f', 'w').write('x'); "
    "os.chmod('jam/locked/deeper', 0); os.chmod('jam/locked', 0o500); os.chmod('jam', 0o500)"
)
# The same in the build: the backend leaves it in its source tree.
JAM_BUILD = """
if phase == "build":
    os.makedirs("jam/locked/deeper")
    os.chmod("jam/locked/deeper", 0)
    os.chmod("jam/locked", 0o500)
"""
FORK_BOMB = """
if phase == "build":
    while True:
        os.fork()
"""


@pytest.fixture(scope="module")
def volunteer() -> str:
    """A dedicated user, as the README tells a volunteer to make one."""
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", USER], check=True)
    return USER


def test_an_unprivileged_worker_cannot_be_jammed_and_keeps_its_limits(
    farm_factory, tmp_path, volunteer
):
    pypi = FakePyPI()
    sdists = tmp_path / "sdists"
    pypi.publish(make_sdist(sdists, "cleanpkg", "1.0", {"cleanpkg/__init__.py": "X = 1\n"}))
    pypi.publish(make_sdist(sdists, "jammer", "1.0", {"jammer/__init__.py": ""}))
    attacks = {"build-jammer": JAM_BUILD, "fork-bomb": FORK_BOMB,
               "memory-hog": hostile.MEMORY_HOG, "disk-fill": hostile.DISK_FILL}  # fmt: skip
    for name, attack in attacks.items():
        pypi.publish(hostile.hostile_sdist(sdists, name, attack, {}))
    registry = "".join(
        f'  - name: {n}\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n'
        for n in ("cleanpkg", "build-jammer", "fork-bomb", "memory-hog", "disk-fill")
    ) + (
        '  - name: jammer\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n'
        f"    test:\n      command: {json.dumps(['python', '-c', JAM])}\n"
    )
    workers_file = declare(tmp_path / "volunteers.yaml", NAME)
    password = worker_password(tmp_path, NAME, workers_file)
    limits = {"build_memory_mb": 400, "build_processes": 64, "disk_mb": 100}
    farm = farm_factory(
        write_registry(tmp_path / "packages.yaml", registry), pypi_url=pypi.start(),
        worker_names=[], extra_workers_files=[workers_file], settings_overrides=limits,
    )  # fmt: skip
    # outside /root and pytest's folders (mode 0700): somewhere the user may live
    home = Path("/var/tmp") / f"wheelfarm-volunteer-{uuid.uuid4().hex[:8]}"
    run = ["bash", ROOT / "workers" / "join-linux.sh", "--master", f"127.0.0.1:{farm.worker_port}",
           "--name", NAME, "--dir", home, "--run-as", volunteer, "--python", "/usr/bin/python3.11",
           "--no-service"]  # fmt: skip
    try:
        env = {**os.environ, "WHEELFARM_WORKER_PASSWORD": password}
        done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
        wait_connected(farm, NAME)
        pid = int((home / "worker" / "twistd.pid").read_text())
        assert os.stat(f"/proc/{pid}").st_uid == pwd.getpwnam(volunteer).pw_uid  # not root

        builds = {}
        for package in ("cleanpkg", "jammer", "build-jammer", "fork-bomb", "memory-hog",
                        "disk-fill", "jammer"):  # fmt: skip
            (builds[package],) = wait_builds(farm, farm.force(package, rebuild=True), 600)
        (again,) = wait_builds(farm, farm.force("cleanpkg", rebuild=True), 600)
    finally:
        pypi.stop()
        stop_worker(home / "venv" / "bin" / "buildbot-worker", home / "worker")
    # the jams were left, and the next builds went through them: jammer twice, build too
    assert builds["jammer"]["results"] == 0, builds["jammer"]["state_string"]
    assert builds["build-jammer"]["results"] == 0, builds["build-jammer"]["state_string"]
    assert again["results"] == 0, again["state_string"]
    # the limits, without root (rlimits: RLIMIT_NPROC over what the user runs, RLIMIT_DATA)
    assert "build failed: process limit (64) reached" in builds["fork-bomb"]["state_string"]
    assert "build failed: memory limit (400 MiB) exceeded" in builds["memory-hog"]["state_string"]
    assert "build failed: disk limit (100 MiB) exceeded" in builds["disk-fill"]["state_string"]
    # nothing the user left is anywhere but its own folder; the master can remove it
    shutil.rmtree(home)
