"""Rebuild cascades through a real master and worker, on small packages the tests serve.

The registry is a 4-level graph with a diamond:

    base -> left, right -> joint -> top
"""

from __future__ import annotations

import time

import pytest
import requests

from conftest import campaigns, wait_builds, write_registry
from fakepypi import FakePyPI
from sdists import make_sdist
from wheelfarm.index.store import Index
from wheelfarm.registry.platforms import PLATFORMS
from wheelmaker import make_wheel

pytestmark = pytest.mark.e2e

GRAPH = {
    "base": [],
    "left": ["base"],
    "right": ["base"],
    "joint": ["left", "right"],
    "top": ["joint"],
}
REGISTRY = "".join(
    f"  - name: {name}\n    platforms: [linux-x86_64]\n    python: ['3.11']\n"
    + (f"    depends: [{', '.join(deps)}]\n" if deps else "    abi: major\n")
    for name, deps in GRAPH.items()
)


def publish(pypi: FakePyPI, folder, name: str, version: str, broken: bool = False) -> None:
    body = "raise RuntimeError('broken release')\n" if broken else f"VERSION = {version!r}\n"
    pypi.publish(make_sdist(folder, name, version, {f"{name}/__init__.py": body}))


def builds_of(farm, name: str) -> list[dict]:
    builds = farm.api("builds", property="*", order="buildid")["builds"]
    return [b for b in builds if b["properties"].get("package", [None])[0] == name]


def campaign_builds(farm) -> list[dict]:
    builders = {b["name"]: b["builderid"] for b in farm.api("builders")["builders"]}
    return farm.api("builds", builderid=builders["orchestrate"], property="*")["builds"]


def wait_campaigns(farm, count: int, timeout: float = 600) -> list[dict]:
    """Until `count` orchestrating builds have finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [b for b in campaign_builds(farm) if b["complete"]]
        if len(done) >= count:
            return done
        time.sleep(1)
    raise TimeoutError(f"{count} campaigns did not finish")


def test_cascade_order_blocking_and_resume(farm_factory, tmp_path):
    pypi = FakePyPI()
    sdists = tmp_path / "sdists"
    sdists.mkdir()
    for name in GRAPH:
        publish(pypi, sdists, name, "1.0")
    farm = farm_factory(
        write_registry(tmp_path / "packages.yaml", REGISTRY), pypi_url=pypi.start(), max_builds=2
    )
    try:
        first = [brid for name in GRAPH for brid in farm.force(name)]
        assert all(b["results"] == 0 for b in wait_builds(farm, first))
        assert campaign_builds(farm) == []  # first releases cascade nothing

        # an ABI-keeping release (abi: major, 1.0 -> 1.1) rebuilds nothing downstream
        publish(pypi, sdists, "base", "1.1")
        (build,) = wait_builds(farm, farm.force("base"))
        assert build["results"] == 0, build["state_string"]
        time.sleep(3)
        assert campaign_builds(farm) == []
        assert all(len(builds_of(farm, n)) == 1 for n in GRAPH if n != "base")

        # an ABI-changing release rebuilds every descendant once, parents first
        publish(pypi, sdists, "base", "2.0")
        (build,) = wait_builds(farm, farm.force("base"))
        assert build["results"] == 0, build["state_string"]
        wait_campaigns(farm, 1)
        rebuilt = {n: builds_of(farm, n)[1:] for n in GRAPH if n != "base"}
        assert {n: len(b) for n, b in rebuilt.items()} == dict.fromkeys(rebuilt, 1)
        b = {n: builds[0] for n, builds in rebuilt.items()}
        assert all(x["results"] == 0 for x in b.values())
        assert b["joint"]["started_at"] >= max(b["left"]["complete_at"], b["right"]["complete_at"])
        assert b["top"]["started_at"] >= b["joint"]["complete_at"]
        assert b["top"]["properties"]["cause"][0] == "cascade from base 2.0"

        # a failing middle node blocks exactly what is below it ...
        publish(pypi, sdists, "right", "1.1", broken=True)
        publish(pypi, sdists, "base", "3.0")
        wait_builds(farm, farm.force("base"))
        wait_campaigns(farm, 2)
        (record,) = campaigns(farm, "cascade-base-3.0-")
        states = {k.split("|")[0]: v for k, v in record.nodes.items()}
        assert states["left"].state == "done" and states["right"].state == "failed"
        assert states["joint"].state == states["top"].state == "blocked"
        assert states["joint"].blocked_by == states["top"].blocked_by == "right"
        assert len(builds_of(farm, "joint")) == len(builds_of(farm, "top")) == 2  # not built

        # ... and a fixed release of it resumes them
        publish(pypi, sdists, "right", "1.2")
        (fixed,) = wait_builds(farm, farm.force("right"))
        assert fixed["results"] == 0, fixed["state_string"]
        wait_campaigns(farm, 3)
        (record,) = campaigns(farm, "cascade-base-3.0-")
        assert {v.state for v in record.nodes.values()} == {"done"}
        assert len(builds_of(farm, "joint")) == len(builds_of(farm, "top")) == 3
    finally:
        pypi.stop()


ROLLOUTS = """\
schema: 1
rollouts:
  - name: toolchain-2099
    description: every package with the 2099.1 toolchain
    toolchain: "2099.1"
    max_in_flight: 2
"""


def test_rollout_reaches_100_percent_and_its_page_says_so(farm_factory, tmp_path):
    pypi = FakePyPI()
    sdists = tmp_path / "sdists"
    sdists.mkdir()
    for name in GRAPH:
        publish(pypi, sdists, name, "1.0")
    registry = REGISTRY
    rollouts = tmp_path / "rollouts.yaml"
    rollouts.write_text(ROLLOUTS)
    farm = farm_factory(
        write_registry(tmp_path / "packages.yaml", registry),
        rollouts=rollouts,
        pypi_url=pypi.start(),
        max_builds=2,
    )
    try:
        farm.rpc(
            "forceschedulers/rollout",
            "force",
            builderNames=["orchestrate"],
            rollout="toolchain-2099",
        )
        (campaign,) = wait_campaigns(farm, 1)
        assert campaign["results"] == 0, campaign["state_string"]
        built = {n: builds_of(farm, n) for n in GRAPH}
        assert all(len(b) == 1 and b[0]["results"] == 0 for b in built.values())
        keys = {b[0]["properties"]["toolchain_key"][0] for b in built.values()}
        assert keys == {"manylinux_2_28_x86_64/2099.1"}
        assert built["joint"][0]["started_at"] >= built["left"][0]["complete_at"]

        page = requests.get(f"{farm.url}farm/campaigns/", timeout=10)
        assert page.status_code == 200
        assert "every package with the 2099.1 toolchain" in page.text and "100%" in page.text
        (record,) = campaigns(farm, "rollout-toolchain-2099-")
        detail = requests.get(f"{farm.url}farm/campaigns/{record.id}", timeout=10).text
        assert "100% done</b> of 5 builds" in detail
        assert detail.count("buildrequests/") == 5  # a link to each build
    finally:
        pypi.stop()


def test_a_rollout_builds_only_what_the_index_lacks(farm_factory, tmp_path):
    """Wheels the index has for the rollout's sdist and toolchain cost no build request
    on the volunteers' builder; the one it lacks is built, after its parents."""
    pypi = FakePyPI()
    sdists = tmp_path / "sdists"
    sdists.mkdir()
    rollouts = tmp_path / "rollouts.yaml"
    rollouts.write_text(ROLLOUTS)
    farm = farm_factory(
        write_registry(tmp_path / "packages.yaml", REGISTRY),
        rollouts=rollouts,
        pypi_url=pypi.start(),
        max_builds=2,
    )
    try:
        platform = PLATFORMS["linux-x86_64"]
        index = Index(farm.settings().index_path)
        for name in GRAPH:
            release = pypi.publish(
                make_sdist(sdists, name, "1.0", {f"{name}/__init__.py": "VERSION = '1.0'\n"})
            )
            if name == "joint":
                continue  # missing: the rollout must build it
            record = {
                "sdist_sha256": release.sha256,
                "platform": platform.name,
                "python": "3.11",
                "toolchain_key": f"{platform.policy}/2099.1",
            }
            index.add(make_wheel(tmp_path / "wheels", name, "1.0"), record)
        farm.rpc(
            "forceschedulers/rollout",
            "force",
            builderNames=["orchestrate"],
            rollout="toolchain-2099",
        )
        (campaign,) = wait_campaigns(farm, 1)
        assert campaign["results"] == 0, campaign["state_string"]
        steps = farm.api(f"builds/{campaign['buildid']}/steps")["steps"]
        assert "5 done (4 already in the index)" in steps[-1]["state_string"]
        builders = {b["name"]: b["builderid"] for b in farm.api("builders")["builders"]}
        requests_made = farm.api(
            "buildrequests", builderid=builders[platform.builder_name], property="package"
        )["buildrequests"]
        assert [r["properties"]["package"][0] for r in requests_made] == ["joint"]
        (joint,) = builds_of(farm, "joint")
        assert joint["results"] == 0, joint["state_string"]
        assert index.find("joint", toolchain_key=f"{platform.policy}/2099.1")
        (record,) = campaigns(farm, "rollout-toolchain-2099-")
        nodes = {k.split("|")[0]: n for k, n in record.nodes.items()}
        assert {n: node.state for n, node in nodes.items()} == dict.fromkeys(GRAPH, "done")
        assert nodes["base"].found == "base-1.0-py3-none-any.whl"
        assert nodes["joint"].found is None and nodes["joint"].build_url
    finally:
        pypi.stop()
