"""Faults with real processes: a worker or the master killed with SIGKILL mid-build."""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests

from conftest import campaigns, write_registry
from fakepypi import FakePyPI
from sdists import make_sdist
from wheelfarm.cli.localfarm import LocalFarm

pytestmark = pytest.mark.e2e

SLEEP = 20  # the test step of `slowpkg`: long enough to kill something during it
REGISTRY = f"""\
  - name: slowpkg
    platforms: [linux-x86_64]
    python: ["3.11"]
    test:
      command: [python, -c, "import time; time.sleep({SLEEP})"]
"""
QUICK = ["quick1", "quick2", "quick3"]


@pytest.fixture
def pypi(tmp_path):
    fake = FakePyPI()
    for name in ["slowpkg", *QUICK]:
        fake.publish(make_sdist(tmp_path / "sdists", name, "1.0", {f"{name}/__init__.py": ""}))
    yield fake.start()
    fake.stop()


def running_step(farm: LocalFarm, step: str, package: str, timeout: float = 300) -> dict:
    """The unfinished build of `package` once it is in `step`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for build in farm.api("builds", complete="false", property="package")["builds"]:
            if build["properties"].get("package", [None])[0] != package:
                continue
            steps = farm.api(f"builds/{build['buildid']}/steps")["steps"]
            if any(s["name"] == step and s["started_at"] and not s["complete"] for s in steps):
                return build
        time.sleep(0.5)
    raise TimeoutError(f"no build reached step {step!r} in {timeout} s")


def kill(pidfile) -> None:
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(int(pidfile.read_text()), 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{pidfile} survived SIGKILL")


def wait_requests(farm: LocalFarm, brids: list[int], timeout: float) -> list[dict]:
    """Until each request is complete (a retried one has several builds); its last builds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(farm.api(f"buildrequests/{b}")["buildrequests"][0]["complete"] for b in brids):
                return [builds_by_request(farm, b)[-1] for b in brids]
        except OSError:  # the master is restarting
            pass
        time.sleep(1)
    raise TimeoutError(f"requests {brids} were not complete after {timeout} s")


def builds_by_request(farm: LocalFarm, brid: int) -> list[dict]:
    return farm.api("builds", buildrequestid=brid, order="buildid")["builds"]


def index_files(farm: LocalFarm, project: str) -> list[str]:
    root = farm.settings().index_path
    return sorted(p.name for p in (root / project).glob("*.whl"))


def test_worker_killed_mid_build_build_completes_on_the_other(farm_factory, tmp_path, pypi):
    registry = write_registry(tmp_path / "packages.yaml", REGISTRY)
    farm = farm_factory(registry, pypi_url=pypi, worker_names=["w1", "w2"])
    (brid,) = farm.force("slowpkg")
    first = running_step(farm, "test", "slowpkg")
    workers = {w["workerid"]: w["name"] for w in farm.api("workers")["workers"]}
    victim = workers[first["workerid"]]
    kill(farm.worker_dir(victim) / "twistd.pid")

    (done,) = wait_requests(farm, [brid], timeout=600)
    assert done["results"] == 0, done["state_string"]
    survivor = workers[done["workerid"]]
    assert survivor != victim
    builds = builds_by_request(farm, brid)
    # the killed build ended RETRY (5) and the request was built again, once
    assert [b["results"] for b in builds] == [5, 0]
    assert index_files(farm, "slowpkg") == ["slowpkg-1.0-py3-none-any.whl"]
    page = requests.get(
        f"{farm.url}simple/slowpkg/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        timeout=10,
    ).json()
    assert [f["filename"] for f in page["files"]] == ["slowpkg-1.0-py3-none-any.whl"]
    # no half-made upload of the killed build is left next to the index
    index = farm.settings().index_path
    assert not any((index / ".incoming").glob("*"))


@pytest.mark.parametrize("how", ["SIGKILL", "stop"])
def test_master_stopped_then_restarted_builds_every_request_once(farm_factory, tmp_path, pypi, how):
    registry = write_registry(
        tmp_path / "packages.yaml",
        REGISTRY
        + "".join(
            f'  - name: {n}\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n' for n in QUICK
        ),
    )
    farm = farm_factory(registry, pypi_url=pypi, max_builds=1)
    brids = farm.force("slowpkg") + [b for n in QUICK for b in farm.force(n)]
    running_step(farm, "test", "slowpkg")  # slowpkg runs; the others wait their turn
    if how == "SIGKILL":
        kill(farm.master_dir / "twistd.pid")
    else:
        farm.stop()
    # as if the master had died while receiving an upload of a build it then lost
    leftover = farm.settings().index_path / ".incoming" / "1"
    leftover.mkdir(parents=True, exist_ok=True)
    (leftover / "slowpkg-1.0-py3-none-any.whl").write_bytes(b"half")
    farm.start(timeout=300)
    assert not leftover.exists()

    builds = wait_requests(farm, brids, timeout=900)
    for name, build in zip(["slowpkg", *QUICK], builds, strict=True):
        assert build["results"] == 0, (name, build["state_string"])
    for brid, name in zip(brids, ["slowpkg", *QUICK], strict=True):
        ok = [b for b in builds_by_request(farm, brid) if b["results"] == 0]
        assert len(ok) == 1, (name, builds_by_request(farm, brid))
        assert index_files(farm, name) == [f"{name}-1.0-py3-none-any.whl"]
    # the build the master's end interrupted was run again
    assert [b["results"] for b in builds_by_request(farm, brids[0])] == [5, 0]


ROLLOUTS = """\
schema: 1
rollouts:
  - name: toolchain-2099
    toolchain: "2099.1"
    max_in_flight: 2
"""


@pytest.mark.parametrize("how", ["SIGKILL", "stop"])
def test_campaign_interrupted_by_the_master_resumes_and_builds_each_node_once(
    farm_factory, tmp_path, pypi, how
):
    # quick1 and slowpkg start at once; quick2 waits for slowpkg
    registry = write_registry(
        tmp_path / "packages.yaml",
        REGISTRY
        + '  - name: quick1\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n'
        + '  - name: quick2\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n'
        + "    depends: [slowpkg]\n",
    )
    rollouts = tmp_path / "rollouts.yaml"
    rollouts.write_text(ROLLOUTS)
    farm = farm_factory(registry, rollouts=rollouts, pypi_url=pypi, max_builds=2)
    farm.rpc(
        "forceschedulers/rollout", "force", builderNames=["orchestrate"], rollout="toolchain-2099"
    )
    builders = {b["name"]: b["builderid"] for b in farm.api("builders")["builders"]}
    (request,) = farm.api("buildrequests", builderid=builders["orchestrate"])["buildrequests"]
    orchestrate = request["buildrequestid"]
    running_step(farm, "test", "slowpkg")  # slowpkg's build is testing
    if how == "SIGKILL":
        kill(farm.master_dir / "twistd.pid")
    else:
        farm.stop()
    farm.start(timeout=300)

    (campaign,) = wait_requests(farm, [orchestrate], timeout=900)
    assert campaign["results"] == 0, campaign["state_string"]
    (record,) = campaigns(farm, "rollout-toolchain-2099-")
    assert {k.split("|")[0]: n.state for k, n in record.nodes.items()} == dict.fromkeys(
        ["slowpkg", "quick1", "quick2"], "done"
    )
    builds = farm.api("builds", property="*", order="buildid")["builds"]
    for name in ["slowpkg", "quick1", "quick2"]:
        mine = [b["results"] for b in builds if b["properties"].get("package", [None])[0] == name]
        # one build that made the wheel; a second one would be SKIPPED (already built)
        assert [r for r in mine if r not in (5, 6)] == [0], (name, mine)
        assert index_files(farm, name) == [f"{name}-1.0-py3-none-any.whl"]
