"""Two masters on one PostgreSQL database, joined by a WAMP router (crossbar).

A build requested on master A, which has no worker, is run by the worker attached to
master B only, and A shows the result and serves the wheel.
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
import requests

from conftest import ARTIFACTS, free_port, make_farm, wait_builds, write_registry
from fakepypi import FakePyPI
from sdists import make_sdist
from wheelfarm.ops.cluster import write_router_config
from wheelfarm.settings import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

CROSSBAR = REPO_ROOT / ".crossbar-venv" / "bin" / "crossbar"
REGISTRY = '  - name: quick1\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n'


@pytest.fixture
def router(tmp_path):
    assert CROSSBAR.exists(), f"{CROSSBAR} is missing: run `make crossbar`"
    port = free_port()
    cbdir = tmp_path / "crossbar"
    write_router_config(cbdir, port)
    log = (tmp_path / "crossbar.log").open("wb")
    proc = subprocess.Popen(
        [CROSSBAR, "start", "--cbdir", cbdir], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, (tmp_path / "crossbar.log").read_text()
            time.sleep(0.5)
    yield f"ws://127.0.0.1:{port}/ws"
    proc.terminate()
    proc.wait(timeout=60)


@pytest.fixture
def pypi(tmp_path):
    fake = FakePyPI()
    fake.publish(make_sdist(tmp_path / "sdists", "quick1", "1.0", {"quick1/__init__.py": ""}))
    yield fake.start()
    fake.stop()


def test_a_request_on_one_master_is_built_by_a_worker_of_the_other(
    tmp_path, pg_url, router, pypi, monkeypatch, request
):
    # the masters read WHEELFARM_* from the environment they inherit from here
    monkeypatch.setenv("WHEELFARM_MULTI_MASTER", "true")
    monkeypatch.setenv("WHEELFARM_MQ_ROUTER_URL", router)
    monkeypatch.setenv("WHEELFARM_INDEX_DIR", str(tmp_path / "index"))  # one index for both
    registry = write_registry(tmp_path / "packages.yaml", REGISTRY)
    b = make_farm(tmp_path / "b", registry, db_url=pg_url, pypi_url=pypi, worker_names=["wb"])
    # A knows B's worker (builders must be the same on every master) but has none itself
    a = make_farm(
        tmp_path / "a",
        registry,
        db_url=pg_url,
        pypi_url=pypi,
        worker_names=[],
        extra_workers_files=[b.workers_file],
    )
    farms = [b, a]
    try:
        for farm in farms:
            farm.create()
            farm.start(timeout=300)
        masters = {m["name"]: m for m in a.api("masters")["masters"]}
        assert len(masters) == 2 and all(m["active"] for m in masters.values())

        (build,) = wait_builds(a, a.force("quick1"), timeout=600)
        assert build["results"] == 0, build["state_string"]
        ran_on = a.api(f"masters/{build['masterid']}")["masters"][0]["name"]
        assert ran_on.endswith(str(b.master_dir))
        worker = a.api(f"workers/{build['workerid']}")["workers"][0]
        assert worker["name"] == "wb"
        page = requests.get(f"{a.url}simple/quick1/", timeout=10)
        assert page.status_code == 200 and "quick1-1.0-py3-none-any.whl" in page.text
    finally:
        for farm in farms:
            farm.stop()
            log = farm.master_dir / "twistd.log"
            if log.exists():
                ARTIFACTS.mkdir(exist_ok=True)
                name = f"{request.node.name}-{farm.home.parent.name}-master.log"
                (ARTIFACTS / name).write_bytes(log.read_bytes())
