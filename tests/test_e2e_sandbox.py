"""Building in bubblewrap, as a worker does it: a backend runs the tools of its build
venv; an sdist among the build requirements is built offline, in a sandbox of its own,
by a build of its own; a worker that opts out says so in the record. (The attacks on
all of this are tests/test_e2e_attacks.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

import wheelhouse
from conftest import wait_builds, write_registry
from fakepypi import FakePyPI
from farmtoolmod import FRONTEND, install
from sdists import make_sdist, make_wheel

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not shutil.which("bwrap"), reason="needs bubblewrap (make test has it)"),
]


def farmtool_build(build: Path, *args: str) -> subprocess.CompletedProcess:
    install(build)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env["UV_DEFAULT_INDEX"] = wheelhouse.index_url()  # setuptools and the frontend, locked
    argv = [sys.executable, "farmtool.pyz", "build", "--sdist-dir", "sdist", "--out", "dist"]
    argv += [*FRONTEND, "--isolation", "bubblewrap", *args]
    return subprocess.run(argv, cwd=build, env=env, capture_output=True, text=True, timeout=600)


def test_a_backend_finds_the_tools_of_its_build_venv(tmp_path):
    """As maturin's backend runs `maturin`: a build requirement's script, by name, in bwrap."""
    tool = make_wheel(
        tmp_path / "wheels",
        "probetool",
        files={
            "probetool/__init__.py": "",
            "probetool-1.0.data/scripts/probe-tool": "#!python\nprint('probe tool ran')\n",
        },
    )
    pypi = FakePyPI()
    pypi.publish(tool)
    setup_py = (
        "import subprocess\nsubprocess.run(['probe-tool'], check=True)\n"
        "from setuptools import setup\nsetup()\n"
    )
    build = tmp_path / "build"
    make_sdist(
        build / "sdist", "usesprobe", "1.0", {"usesprobe/__init__.py": ""}, setup_py=setup_py
    )
    try:
        done = farmtool_build(build, "--requires", "probetool", "--extra-index-url",
                              pypi.start() + "/simple/")  # fmt: skip
    finally:
        pypi.stop()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "probe tool ran" in done.stdout
    facts = json.loads((build / ".facts" / "build.json").read_text())
    assert facts["isolation"] == "bubblewrap"
    assert facts["summary"] == "built usesprobe-1.0-py3-none-any.whl"


# Built offline in its own sandbox (it has no wheel anywhere): records what it could do.
EVIL_SETUP = """
import os, socket
WORKER, PORT = {worker!r}, {port}
def attempt(action):
    try:
        action()
        return "done"
    except Exception as e:
        return "refused " + type(e).__name__
found = {{
    "read tac": attempt(lambda: open(WORKER + "/buildbot.tac").read()),
    "write basedir": attempt(lambda: open(WORKER + "/evil", "w").write("x")),
    "network": attempt(lambda: socket.create_connection(("127.0.0.1", PORT), timeout=3)),
}}
os.makedirs("evildep", exist_ok=True)
with open("evildep/_attempts.py", "w") as f:
    f.write("FOUND = %r\\n" % found)
from setuptools import setup
setup()
"""


def test_an_sdist_only_requirement_is_built_offline_in_its_own_sandbox(tmp_path):
    """Installing requirements never runs their code: an sdist among them is built into a
    wheel by a build of its own (offline, sandboxed), and the wheel is installed."""
    worker = tmp_path / "worker"
    build = worker / "build"
    worker.mkdir()
    (worker / "buildbot.tac").write_text("passwd = 'the-worker-password'\n")
    pypi = FakePyPI()
    index = pypi.start()  # its own port stands for a service on the host's loopback
    port = int(index.rsplit(":", 1)[1])
    evil = make_sdist(tmp_path / "deps", "evildep", "1.0", {"evildep/__init__.py": ""},
                      setup_py=EVIL_SETUP.format(worker=str(worker), port=port))  # fmt: skip
    pypi.publish(evil)
    make_sdist(build / "sdist", "plain", "1.0", {"plain/__init__.py": ""})
    try:
        done = farmtool_build(build, "--requires", "evildep", "--extra-index-url",
                              index + "/simple/")  # fmt: skip
    finally:
        pypi.stop()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "evildep has no wheel for this Python and platform: building its sdist" in done.stdout
    (attempts,) = build.glob(".buildenv/lib/python3*/site-packages/evildep/_attempts.py")
    found = attempts.read_text()
    assert "the-worker-password" not in done.stdout + done.stderr + found
    for attempt in ("read tac", "write basedir", "network"):
        assert f"'{attempt}': 'refused" in found, found
    assert not (worker / "evil").exists()
    facts = json.loads((build / ".facts" / "build.json").read_text())
    assert facts["toolchain"]["build_env"]["evildep"]["built_from_sdist"] is True


REGISTRY = """\
  - name: cleanpkg
    platforms: [linux-x86_64]
    python: ["3.11"]
"""


def test_a_worker_that_opts_out_says_so_in_the_record(farm_factory, tmp_path):
    pypi = FakePyPI()
    pypi.publish(make_sdist(tmp_path / "sdists", "cleanpkg", "1.0", {"cleanpkg/__init__.py": ""}))
    url = pypi.start()
    try:
        registry = write_registry(tmp_path / "packages.yaml", REGISTRY)
        farm = farm_factory(registry, pypi_url=url, isolation="none-i-accept-the-risk")
        (build,) = wait_builds(farm, farm.force("cleanpkg"), timeout=300)
    finally:
        pypi.stop()
    assert build["results"] == 0, build["state_string"]
    wheel = {k: v[0] for k, v in build["properties"].items()}["wheel"]
    record = requests.get(f"{farm.url}simple/cleanpkg/{wheel}.json", timeout=10).json()
    opted_out = "none-i-accept-the-risk"
    assert record["isolation"] == {"build": opted_out, "test": opted_out}
