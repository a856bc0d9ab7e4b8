"""IndexService in a real Buildbot master: /simple/ on the UI's port, across reconfigs.

The master has its own tiny master.cfg (a worker that never connects, a builder
nobody forces): only the wiring of the index into the web server is under test.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import ARTIFACTS, free_port
from wheelfarm.index.serve import JSON
from wheelfarm.index.store import Index
from wheelmaker import make_wheel

BIN = Path(sys.executable).parent
MASTER_CFG = """\
from buildbot.plugins import schedulers, steps, util, worker
from wheelfarm.web.site import IndexService

factory = util.BuildFactory([steps.ShellCommand(command=["true"])])
BuildmasterConfig = {{
    "title": "index test",
    "buildbotNetUsageData": None,
    "db": {{"db_url": "sqlite:///state.sqlite"}},
    "workers": [worker.Worker("w", "never-connects")],
    "builders": [util.BuilderConfig(name="b", workernames=["w"], factory=factory)],
    "schedulers": [schedulers.ForceScheduler(name="force", builderNames=["b"])],
    "protocols": {{"pb": {{"port": "tcp:{worker_port}:interface=127.0.0.1"}}}},
    "www": {{"port": "tcp:{port}:interface=127.0.0.1"}},
    "services": {services},
}}
"""


def write_cfg(basedir: Path, ports: tuple[int, int], index_dir: Path | None) -> None:
    services = f"[IndexService(name='wheelfarm-index', index_dir={str(index_dir)!r})]"
    text = MASTER_CFG.format(
        port=ports[0], worker_port=ports[1], services=services if index_dir else "[]"
    )
    (basedir / "master.cfg").write_text(text, encoding="utf-8")


def wait_for(master: subprocess.Popen, check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert master.poll() is None, "the master stopped: see its log in test-artifacts/"
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"master: {what} not within {timeout} s")


def projects(url: str) -> list[str] | None:
    response = requests.get(f"{url}simple/", headers={"Accept": JSON}, timeout=5)
    if response.status_code != 200:
        return None
    return [p["name"] for p in response.json()["projects"]]


@pytest.mark.e2e
def test_master_serves_the_index_next_to_the_ui_across_reconfigs(tmp_path, request):
    first, second = tmp_path / "index-a", tmp_path / "index-b"
    Index(first).add(make_wheel(tmp_path / "src", "wheelfarm-test-a", "1.0"), {"worker": "w"})
    Index(second).add(make_wheel(tmp_path / "src", "wheelfarm-test-b", "2.0"), {"worker": "w"})

    basedir, ports = tmp_path / "master", (free_port(), free_port())
    url = f"http://127.0.0.1:{ports[0]}/"
    subprocess.run(
        [BIN / "buildbot", "create-master", "-q", basedir], check=True, stdout=subprocess.DEVNULL
    )
    write_cfg(basedir, ports, first)
    master = subprocess.Popen(
        [BIN / "buildbot", "start", "--nodaemon", basedir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        # on the first start the service is configured before the web site exists
        wait_for(master, lambda: projects(url) == ["wheelfarm-test-a"], "index at first start")
        page = requests.get(f"{url}simple/wheelfarm-test-a/", headers={"Accept": JSON}, timeout=5)
        (file,) = page.json()["files"]
        wheel = requests.get(f"{url}simple/wheelfarm-test-a/{file['url']}", timeout=5)
        assert wheel.status_code == 200 and len(wheel.content) == file["size"]
        redirect = requests.get(f"{url}simple/WheelFarm_Test_A", allow_redirects=False, timeout=5)
        assert redirect.headers["location"] == "/simple/wheelfarm-test-a/"
        # the UI and its API are still there
        assert requests.get(url, timeout=5).status_code == 200
        builders = requests.get(f"{url}api/v2/builders", timeout=5).json()["builders"]
        assert [b["name"] for b in builders] == ["b"]

        # a reconfig to another folder serves that one
        write_cfg(basedir, ports, second)
        master.send_signal(signal.SIGHUP)
        wait_for(master, lambda: projects(url) == ["wheelfarm-test-b"], "index after reconfig")

        # a reconfig without the service takes /simple/ away, and back again
        write_cfg(basedir, ports, None)
        master.send_signal(signal.SIGHUP)
        wait_for(master, lambda: projects(url) is None, "no index after reconfig")
        write_cfg(basedir, ports, first)
        master.send_signal(signal.SIGHUP)
        wait_for(master, lambda: projects(url) == ["wheelfarm-test-a"], "index again")
    finally:
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(timeout=30)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()
        log = basedir / "twistd.log"
        if log.exists():
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / f"{request.node.name}-master.log").write_bytes(log.read_bytes())
