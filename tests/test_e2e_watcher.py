"""New releases on a (fake) PyPI become builds, once each, through a real master and worker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import write_registry
from fakepypi import FakePyPI
from sdists import make_sdist

pytestmark = pytest.mark.e2e

REGISTRY = """\
  - name: watched
    platforms: [linux-x86_64]
    python: ["3.11"]
  - name: eager
    prereleases: true
    platforms: [linux-x86_64]
    python: ["3.11"]
"""


def publish(pypi: FakePyPI, folder: Path, name: str, version: str, yanked: bool = False) -> int:
    sdist = make_sdist(folder, name, version, {f"{name}/__init__.py": f"V = {version!r}\n"})
    pypi.publish(sdist, yanked=yanked)
    return pypi.serial


def wait_until(what: str, check, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1)
    raise TimeoutError(f"{what}: not after {timeout} s")


def release_builds(farm) -> dict[tuple[str, str], list[dict]]:
    """(package, version spec) -> every build for it, finished or not."""
    found: dict[tuple[str, str], list[dict]] = {}
    for b in farm.api("builds", property="*", limit=1000)["builds"]:
        props = {k: v[0] for k, v in b["properties"].items()}
        if "package" not in props or "version_spec" not in props:
            continue  # its properties reach the database a moment after the build itself
        found.setdefault((props["package"], props["version_spec"]), []).append(b)
    return found


def finished(farm, package: str, version: str) -> list[dict]:
    builds = release_builds(farm).get((package, f"=={version}"), [])
    return builds if builds and all(b["complete"] for b in builds) else []


def idle(farm) -> bool:
    pending = farm.api("buildrequests", complete="false")["buildrequests"]
    running = farm.api("builds", complete="false")["builds"]
    return not pending and not running


def watcher_at(farm, serial: int) -> bool:
    """The watcher has read the changelog up to `serial` (and acted on it)."""
    states = farm.api("changesources")["changesources"]
    assert [s["name"] for s in states] == ["pypi-releases"]
    log = (farm.master_dir / "twistd.log").read_text(encoding="utf-8", errors="replace")
    return f"-> {serial}:" in log or f"from serial {serial}" in log


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request) -> str:
    # asked for before farm_factory, so a PostgreSQL database outlives the farm
    if request.param == "sqlite":
        return "sqlite:///state.sqlite"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def fake_pypi():
    # asked for before farm_factory too: the farm stops before its PyPI does
    pypi = FakePyPI()
    url = pypi.start()
    yield pypi, url
    pypi.stop()


def test_each_new_release_builds_once_across_restarts(db_url, fake_pypi, farm_factory, tmp_path):
    pypi, url = fake_pypi
    folder = tmp_path / "sdists"
    for name in ("watched", "eager", "unrelated"):
        publish(pypi, folder, name, "1.0")
    registry = write_registry(tmp_path / "packages.yaml", REGISTRY)
    farm = farm_factory(registry, db_url=db_url, pypi_url=url, pypi_watch_interval=1)
    # first start: the watcher notes where PyPI is and builds nothing already there
    wait_until("the watcher's first poll", lambda: watcher_at(farm, pypi.serial))

    publish(pypi, folder, "watched", "1.1")
    (build,) = wait_until("a build of watched 1.1", lambda: finished(farm, "watched", "1.1"))
    assert build["results"] == 0, build["state_string"]
    assert build["properties"]["version"][0] == "1.1"
    assert build["properties"]["cause"][0] == "new release on PyPI: watched 1.1"
    # the UI shows the release that caused the build, linked to its PyPI page
    (change,) = farm.api(f"builds/{build['buildid']}/changes")["changes"]
    assert change["category"] == "pypi-release" and change["author"] == "PyPI"
    assert (change["project"], change["revision"]) == ("watched", "1.1")
    assert change["revlink"] == f"{url}/project/watched/1.1/"

    # none of these is built, except eager's pre-release (its entry asks for them)
    publish(pypi, folder, "watched", "1.2rc1")  # a pre-release
    publish(pypi, folder, "watched", "1.3", yanked=True)
    publish(pypi, folder, "unrelated", "2.0")  # not in the registry
    publish(pypi, folder, "eager", "2.0rc1")
    (pre,) = wait_until("a build of eager 2.0rc1", lambda: finished(farm, "eager", "2.0rc1"))
    assert pre["results"] == 0, pre["state_string"]
    wait_until("no build left", lambda: idle(farm))
    assert not any(p.startswith("/pypi/unrelated/") for p in pypi.requests)

    # a release while the master is down is built once after it starts again
    farm.stop()
    publish(pypi, folder, "watched", "1.4")
    farm.start()
    wait_until("a build of watched 1.4", lambda: finished(farm, "watched", "1.4"))
    publish(pypi, folder, "eager", "2.0")  # a last release, to know the watcher ran past 1.4
    wait_until("a build of eager 2.0", lambda: finished(farm, "eager", "2.0"))
    wait_until("no build left", lambda: idle(farm))

    built = {key: len(builds) for key, builds in release_builds(farm).items()}
    assert built == {
        ("watched", "==1.1"): 1,
        ("eager", "==2.0rc1"): 1,
        ("watched", "==1.4"): 1,
        ("eager", "==2.0"): 1,
    }
    changes = farm.api("changes", category="pypi-release")["changes"]
    assert sorted((c["project"], c["revision"]) for c in changes) == [
        ("eager", "2.0"),
        ("eager", "2.0rc1"),
        ("watched", "1.1"),
        ("watched", "1.4"),
    ]


LATE = """\
  - name: late
    platforms: [linux-x86_64]
    python: ["3.11"]
"""


def test_registry_changes_and_missed_changes_are_followed(fake_pypi, farm_factory, tmp_path):
    pypi, url = fake_pypi
    folder = tmp_path / "sdists"
    for name in ("watched", "late"):
        publish(pypi, folder, name, "1.0")
    registry = write_registry(tmp_path / "packages.yaml", REGISTRY)
    farm = farm_factory(registry, pypi_url=url, pypi_watch_interval=1)
    wait_until("the watcher's first poll", lambda: watcher_at(farm, pypi.serial))

    # a package added to the registry is followed after a reconfig, without a restart
    write_registry(registry, REGISTRY + LATE)
    ok, log = farm.reconfig()
    assert ok, log
    publish(pypi, folder, "late", "1.1")
    (build,) = wait_until("a build of late 1.1", lambda: finished(farm, "late", "1.1"))
    assert build["results"] == 0, build["state_string"]

    # releases that arrive while the scheduler is disabled are built once it is enabled
    (scheduler,) = [s for s in farm.api("schedulers")["schedulers"] if s["name"] == "pypi-releases"]
    farm.rpc(f"schedulers/{scheduler['schedulerid']}", "enable", enabled=False)
    publish(pypi, folder, "watched", "1.1")
    wait_until(
        "the change for watched 1.1",
        lambda: farm.api("changes", project="watched", revision="1.1")["changes"],
    )
    # (a listening scheduler makes its buildset before the change is even visible here)
    assert ("watched", "==1.1") not in release_builds(farm)
    assert idle(farm)
    farm.rpc(f"schedulers/{scheduler['schedulerid']}", "enable", enabled=True)
    (build,) = wait_until("a build of watched 1.1", lambda: finished(farm, "watched", "1.1"))
    assert build["results"] == 0, build["state_string"]
    wait_until("no build left", lambda: idle(farm))
    assert len(release_builds(farm)[("watched", "==1.1")]) == 1
