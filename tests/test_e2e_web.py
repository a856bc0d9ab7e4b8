"""The farm's web face through a real master and worker: package pages, badges, and
who may press the buttons (checked over HTTP, as a browser or script would)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest
import requests

from conftest import ARTIFACTS, make_farm, wait_builds, write_registry
from fakepypi import FakePyPI
from sdists import make_sdist
from wheelfarm.cli.localfarm import LocalFarm

pytestmark = pytest.mark.e2e

REGISTRY = """\
  - name: good
    platforms: [linux-x86_64]
    python: ['3.11']
    maintainers: [alice]
  - name: bad
    platforms: [linux-x86_64]
    python: ['3.11']
    maintainers: [bob]
  - name: never
    platforms: [linux-x86_64]
    python: ['3.11']
    maintainers: [alice]
"""
ROLLOUTS = """\
schema: 1
rollouts:
  - name: toolchain-2099
    description: every package with the 2099.1 toolchain
    toolchain: "2099.1"
"""


@pytest.fixture(scope="module")
def farm(tmp_path_factory) -> Iterator[LocalFarm]:
    """One farm for the module, with a good build and a failing one."""
    tmp = tmp_path_factory.mktemp("web")
    pypi = FakePyPI()
    sdists = tmp / "sdists"
    pypi.publish(make_sdist(sdists, "good", "1.0", {"good/__init__.py": "X = 1\n"}))
    broken = {"bad/__init__.py": "raise RuntimeError('boom at import')\n"}
    pypi.publish(make_sdist(sdists, "bad", "2.0", broken))
    (tmp / "rollouts.yaml").write_text(ROLLOUTS)
    farm = make_farm(
        tmp,
        write_registry(tmp / "packages.yaml", REGISTRY),
        rollouts=tmp / "rollouts.yaml",
        pypi_url=pypi.start(),
    )
    farm.create()
    farm.start()
    try:
        builds = wait_builds(farm, farm.force("good") + farm.force("bad"))
        assert [b["results"] for b in builds] == [0, 2], [b["state_string"] for b in builds]
        yield farm
    finally:
        farm.stop()
        pypi.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        log = farm.master_dir / "twistd.log"
        if log.exists():
            (ARTIFACTS / "test_e2e_web-master.log").write_bytes(log.read_bytes())


def post(session: requests.Session, farm: LocalFarm, path: str, method: str, **params):
    body = {"id": 1, "jsonrpc": "2.0", "method": method, "params": params}
    return session.post(f"{farm.url}api/v2/{path}", json=body, timeout=60)


def build_of(farm: LocalFarm, package: str) -> dict:
    """The package's first build: the module's farm made the wheels there."""
    builds = farm.api("builds", property="package", order="buildid")["builds"]
    return next(b for b in builds if b["properties"].get("package", [None])[0] == package)


def test_anonymous_users_read_but_cannot_act(farm):
    anonymous = requests.Session()
    assert anonymous.get(f"{farm.url}api/v2/builds", timeout=30).status_code == 200
    assert anonymous.get(f"{farm.url}farm/packages/good", timeout=30).status_code == 200
    r = post(anonymous, farm, "forceschedulers/force", "force", package="good")
    assert r.status_code == 403, r.text
    r = post(anonymous, farm, f"builds/{build_of(farm, 'good')['buildid']}", "rebuild")
    assert r.status_code == 403, r.text


def test_a_maintainer_acts_on_their_own_packages_only(farm):
    alice = farm.login("alice")
    r = post(alice, farm, "forceschedulers/force", "force", package="bad")
    assert r.status_code == 403, r.text
    assert "maintainer" in r.json()["error"]["message"]
    r = post(alice, farm, f"builds/{build_of(farm, 'bad')['buildid']}", "rebuild")
    assert r.status_code == 403, r.text

    r = post(alice, farm, "forceschedulers/force", "force", package="good")
    assert r.status_code == 200, r.text
    wait_builds(farm, r.json()["result"][2])
    r = post(alice, farm, f"builds/{build_of(farm, 'good')['buildid']}", "rebuild")
    assert r.status_code == 200, r.text

    # workers and rollouts are for the farm's admins
    worker = farm.api("workers")["workers"][0]
    r = post(alice, farm, f"workers/{worker['workerid']}", "pause", reason="mine now")
    assert r.status_code == 403, r.text
    r = post(alice, farm, "forceschedulers/rollout", "force", builderNames=["orchestrate"])
    assert r.status_code == 403, r.text


def test_a_wrong_password_logs_nobody_in(farm):
    farm.add_user("carol")
    r = requests.get(f"{farm.url}auth/login", auth=("carol", "not-her-password"), timeout=30)
    assert r.status_code == 401


def test_the_front_page_counts_and_filters_packages(farm):
    page = requests.get(f"{farm.url}farm/packages/", timeout=30).text
    assert "3 packages" in page
    for status, count in (("built", 1), ("failed", 1), ("not built", 1)):
        assert f">{status}</a>: <b>{count}</b>" in page, page.split("<form")[0][-700:]
    filtered = requests.get(f"{farm.url}farm/packages/", params={"q": "goo"}, timeout=30).text
    assert "href='good'" in filtered and "href='bad'" not in filtered
    failed = requests.get(f"{farm.url}farm/packages/?status=failed", timeout=30).text
    assert "href='bad'" in failed and "href='good'" not in failed


def test_a_package_page_links_build_wheel_and_record(farm):
    page = requests.get(f"{farm.url}farm/packages/good", timeout=30).text
    build = build_of(farm, "good")
    published = farm.master_dir / "index" / "good"
    (whl,) = published.glob("good-1.0-*.whl")
    sha = hashlib.sha256(whl.read_bytes()).hexdigest()
    assert "version 1.0" in page and "status: <b>built</b>" in page
    assert whl.name in page and f"sha256:{sha}" in page
    assert f"simple/good/{whl.name}.json'>build record" in page
    assert requests.get(f"{farm.url}simple/good/{whl.name}.json", timeout=30).ok
    assert f"#/builders/{build['builderid']}/builds/{build['number']}'>build" in page

    bad = requests.get(f"{farm.url}farm/packages/bad", timeout=30).text
    assert "failed at step test" in bad and "version 2.0" in bad
    log_url = next(
        part.split("'")[0] for part in bad.split("href='") if "/raw_inline" in part.split("'")[0]
    )
    log = requests.get(log_url, timeout=30).text
    assert "boom at import" in log

    never = requests.get(f"{farm.url}farm/packages/never", timeout=30).text
    assert "not built" in never and "No build of this package has finished yet" in never
    assert requests.get(f"{farm.url}farm/packages/nope", timeout=30).status_code == 404


def test_buildbot_build_pages_link_to_the_package_page(farm):
    build = build_of(farm, "good")
    resolve = next(
        s for s in farm.api(f"builds/{build['buildid']}/steps")["steps"] if s["name"] == "resolve"
    )
    assert {u["name"]: u["url"] for u in resolve["urls"]}["package page"] == (
        f"{farm.url}farm/packages/good"
    )


def test_badges(farm):
    r = requests.get(f"{farm.url}badges/good.svg", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert ">built</text>" in r.text and "<svg" in r.text
    r = requests.get(f"{farm.url}badges/bad/linux-x86_64.svg", timeout=30)
    assert ">failed</text>" in r.text and "wheelfarm linux-x86_64" in r.text
    assert ">not built</text>" in requests.get(f"{farm.url}badges/never.svg", timeout=30).text
    for missing in ("nope.svg", "good/windows-arm64.svg", "good"):
        assert requests.get(f"{farm.url}badges/{missing}", timeout=30).status_code == 404


def test_an_admin_starts_a_rollout_and_records_survive_a_restart(farm):
    r = post(farm.login(), farm, "forceschedulers/rollout", "force", builderNames=["orchestrate"])
    assert r.status_code == 200, r.text
    farm.stop()
    farm.start()
    page = requests.get(f"{farm.url}farm/packages/good", timeout=30).text
    assert "status: <b>built</b>" in page


def test_a_maintainer_stops_only_their_own_running_build(farm_factory, tmp_path):
    pypi, sdists = FakePyPI(), tmp_path / "sdists"
    pypi.publish(make_sdist(sdists, "slow", "1.0", {"slow/__init__.py": ""}))
    registry = write_registry(
        tmp_path / "packages.yaml",
        "  - name: slow\n    platforms: [linux-x86_64]\n    python: ['3.11']\n"
        "    maintainers: [alice]\n"
        '    test:\n      command: ["python", "-c", "import time; time.sleep(300)"]\n',
    )
    try:
        farm = farm_factory(registry, pypi_url=pypi.start())
        (brid,) = farm.force("slow")

        def running() -> dict | None:
            builds = farm.api("builds", buildrequestid=brid)["builds"]
            return builds[0] if builds and not builds[0]["complete"] else None

        deadline = time.monotonic() + 300
        while (build := running()) is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert build is not None, "the build never started"
        bob, alice = farm.login("bob"), farm.login("alice")
        r = post(bob, farm, f"builds/{build['buildid']}", "stop", reason="not mine")
        assert r.status_code == 403, r.text
        r = post(alice, farm, f"builds/{build['buildid']}", "stop", reason="mine")
        assert r.status_code == 200, r.text
        (done,) = wait_builds(farm, [brid], timeout=120)
        assert done["results"] == 6  # CANCELLED, long before its sleep ends
    finally:
        pypi.stop()
