"""Two masters on one PostgreSQL database, joined by a WAMP router (crossbar).

A build requested on master A, which has no worker, is run by the worker attached to
master B only, and A shows the result and serves the wheel. A rollout started on A goes
on on B when A is killed, every node built once, and B's pages show A's builds. Wheels
built on both masters at once land whole in the index they share.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from conftest import ARTIFACTS, free_port, make_farm, wait_builds, write_registry
from fakepypi import FakePyPI
from sdists import make_sdist
from wheelfarm.cascade.store import CampaignStore
from wheelfarm.ops.cluster import write_router_config
from wheelfarm.paths import CHECKOUT as REPO_ROOT
from wheelfarm.state.db import StateDB

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


# A rollout over a small tree: each package waits for its parent.
TREE = {f"m{i:02d}": [f"m{(i - 1) // 2:02d}"] if i else [] for i in range(12)}
TREE_REGISTRY = "".join(
    f"  - name: {name}\n    platforms: [linux-x86_64]\n    python: ['3.11']\n"
    + (f"    depends: [{deps[0]}]\n" if deps else "    abi: major\n")
    for name, deps in TREE.items()
)
ROLLOUTS = """\
schema: 1
rollouts:
  - name: toolchain-2099
    description: every package with the 2099.1 toolchain
    toolchain: "2099.1"
    max_in_flight: 3
"""


def two_masters(tmp_path, pg_url, router, pypi_url, registry, monkeypatch, **kw):
    """Masters A and B, each with its own worker and basedir, one database and index."""
    monkeypatch.setenv("WHEELFARM_MULTI_MASTER", "true")
    monkeypatch.setenv("WHEELFARM_MQ_ROUTER_URL", router)
    monkeypatch.setenv("WHEELFARM_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("WHEELFARM_MASTER_TIMEOUT", "20")  # A's death noticed in ~25 s
    a = make_farm(
        tmp_path / "a", registry, db_url=pg_url, pypi_url=pypi_url, worker_names=["wa"], **kw
    )
    b = make_farm(
        tmp_path / "b", registry, db_url=pg_url, pypi_url=pypi_url, worker_names=["wb"], **kw
    )
    # the builders are the same on every master: each knows the other's worker
    a.extra_workers_files, b.extra_workers_files = [b.workers_file], [a.workers_file]
    a.create()
    b.create()
    return a, b


def keep_logs(request, farms) -> None:
    for farm in farms:
        farm.stop()
        log = farm.master_dir / "twistd.log"
        if log.exists():
            ARTIFACTS.mkdir(exist_ok=True)
            name = f"{request.node.name}-{farm.home.parent.name}-master.log"
            (ARTIFACTS / name).write_bytes(log.read_bytes())


def kill(pidfile) -> None:
    os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


def node_builds(farm) -> dict[str, list[dict]]:
    builds = farm.api("builds", property="*", order="buildid", limit=1000)["builds"]
    found: dict[str, list[dict]] = {}
    for b in builds:
        package = b["properties"].get("package", [None])[0]
        if package and b["properties"].get("campaign"):
            found.setdefault(package, []).append(b)
    return found


def wait_for(what, check, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise TimeoutError(what)


def test_a_rollout_goes_on_on_b_when_a_dies_and_b_shows_all_of_it(
    tmp_path, pg_url, router, monkeypatch, request
):
    pypi = FakePyPI()
    for name in TREE:
        pypi.publish(make_sdist(tmp_path / "sdists", name, "1.0", {f"{name}/__init__.py": ""}))
    rollouts = tmp_path / "rollouts.yaml"
    rollouts.write_text(ROLLOUTS)
    registry = write_registry(tmp_path / "packages.yaml", TREE_REGISTRY)
    a, b = two_masters(
        tmp_path,
        pg_url,
        router,
        pypi.start(),
        registry,
        monkeypatch,
        rollouts=rollouts,
        max_builds=2,
    )
    try:
        a.start(timeout=300)  # A alone: the rollout's orchestrating build is A's
        a.rpc(
            "forceschedulers/rollout",
            "force",
            builderNames=["orchestrate"],
            rollout="toolchain-2099",
        )
        builders = {x["name"]: x["builderid"] for x in a.api("builders")["builders"]}
        wait_for(
            "the rollout starting on A",
            lambda: a.api("builds", builderid=builders["orchestrate"])["builds"],
        )
        b.start(timeout=300)
        wait_for(
            "half the rollout built",
            lambda: sum(any(x["results"] == 0 for x in v) for v in node_builds(a).values()) >= 6,
        )
        kill(a.master_dir / "twistd.pid")  # the host dies: master and worker
        kill(a.worker_dir("wa") / "twistd.pid")

        def finished():
            runs = b.api("builds", builderid=builders["orchestrate"], order="buildid")["builds"]
            return runs if runs[-1]["complete"] and len(runs) == 2 else None

        first, second = wait_for("B finishing the rollout", finished, timeout=900)
        assert first["results"] == 5 and second["results"] == 0, second["state_string"]  # RETRY
        masters = {m["masterid"]: m["name"] for m in b.api("masters")["masters"]}
        assert masters[first["masterid"]].endswith(str(a.master_dir))
        assert masters[second["masterid"]].endswith(str(b.master_dir))

        built = node_builds(b)
        assert sorted(built) == sorted(TREE)
        for name, builds in built.items():  # built once; interrupted on A at most once
            ended = [x["results"] for x in builds if x["results"] != 5]
            # a build A's death cut short after it had published its wheel is retried on
            # B and ends skipped ("already built"): that wheel too was built once
            assert ended == [0] or (ended == [3] and len(builds) == 2), (name, ended)
        on_a = [x for v in built.values() for x in v if x["masterid"] == first["masterid"]]
        assert any(x["results"] == 0 for x in on_a)
        wheels = sorted((tmp_path / "index").glob("m*/*.whl"))
        assert len(wheels) == len(TREE)

        (campaign,) = CampaignStore(StateDB(pg_url, tmp_path)).all()
        assert campaign.finished_at and campaign.orchestrated_by == first["buildrequestid"]
        page = requests.get(f"{b.url}farm/campaigns/{campaign.id}", timeout=10).text
        assert f"100% done</b> of {len(TREE)} builds" in page
        assert (
            "every package with the 2099.1 toolchain"
            in requests.get(f"{b.url}farm/campaigns/", timeout=10).text
        )
        for build in (x for v in built.values() for x in v if x["results"] == 0):
            name = build["properties"]["package"][0]
            link = f"#/builders/{build['builderid']}/builds/{build['number']}"

            def shown(name=name, link=link):
                return link in requests.get(f"{b.url}farm/packages/{name}", timeout=10).text

            wait_for(f"{name}'s build on B's page", shown, timeout=30)
    finally:
        pypi.stop()
        keep_logs(request, [a, b])


def test_fifty_wheels_published_at_once_from_both_masters(
    tmp_path, pg_url, router, monkeypatch, request
):
    names = [f"q{i:02d}" for i in range(50)]
    pypi = FakePyPI()
    for name in names:
        pypi.publish(make_sdist(tmp_path / "sdists", name, "1.0", {f"{name}/__init__.py": ""}))
    registry = write_registry(
        tmp_path / "packages.yaml",
        "".join(
            f"  - name: {n}\n    platforms: [linux-x86_64]\n    python: ['3.11']\n" for n in names
        ),
    )
    a, b = two_masters(tmp_path, pg_url, router, pypi.start(), registry, monkeypatch, max_builds=4)
    try:
        a.start(timeout=300)
        b.start(timeout=300)
        brids = [r for i, n in enumerate(names) for r in (a if i % 2 else b).force(n)]
        builds = wait_builds(b, brids, timeout=1200)
        assert all(x["results"] == 0 for x in builds), [x["state_string"] for x in builds]
        ran_on = {x["masterid"] for x in builds}
        assert len(ran_on) == 2  # both masters published into the one index

        index = tmp_path / "index"
        wheels = sorted(index.glob("q*/*.whl"))
        assert [w.name for w in wheels] == [f"{n}-1.0-py3-none-any.whl" for n in names]
        assert not [p for p in (index / ".staging").iterdir()]  # nothing half-written left
        for farm in (a, b):  # each master's /simple/ lists all 50, and pip installs them
            target = tmp_path / f"installed-{farm.home.parent.name}"
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--no-cache-dir",
                    "--index-url",
                    f"{farm.url}simple/",
                    "--only-binary",
                    ":all:",
                    "--target",
                    str(target),
                    *names,
                ],
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            assert len(list(target.glob("q*-1.0.dist-info"))) == 50
            page = requests.get(f"{farm.url}simple/q07/", timeout=10).text
            assert re.search(r"q07-1\.0-py3-none-any\.whl#sha256=[0-9a-f]{64}", page)
    finally:
        pypi.stop()
        keep_logs(request, [a, b])
