"""A real master and worker on loopback, driven through the REST API."""

from __future__ import annotations

import json

import psycopg
import pytest
import requests

from conftest import wait_builds, write_registry
from wheelfarm.cli.localfarm import local_pythons

pytestmark = pytest.mark.e2e

SIX = """\
  - name: six
    versions: "<2"
    platforms: [linux-x86_64]
    python: ["3.11"]
    abi: none
"""
IDNA = """\
  - name: idna
    platforms: [linux-x86_64]
    python: ["3.11"]
    abi: none
"""


def force_and_check_six(farm) -> None:
    brids = farm.force("six", reason="e2e")
    assert len(brids) == 1
    (build,) = wait_builds(farm, brids, timeout=300)
    assert build["results"] == 0, build["state_string"]

    # the build runs on its platform's builder (none per package), and its summary,
    # which Buildbot's build lists show, names the package, version and Python
    builder = farm.api(f"builders/{build['builderid']}")["builders"][0]
    assert builder["name"] == "build-linux-x86_64"
    assert {"platform", "linux-x86_64"} <= set(builder["tags"])
    props = {k: v[0] for k, v in build["properties"].items()}
    assert props["package"] == "six" and props["python"] == "3.11"
    assert props["version"].startswith("1.")
    assert build["state_string"].startswith(f"six {props['version']} py3.11: ")
    assert not [b for b in farm.api("builders")["builders"] if " · " in b["name"]]

    # the wheel is in the farm's index folder, named for that version
    wheels = [w.name for w in (farm.settings().index_path / "six").glob("*.whl")]
    assert wheels == [f"six-{props['version']}-py2.py3-none-any.whl"]

    # the UI is served
    page = requests.get(farm.url, timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_force_build_sqlite(farm_factory, tmp_path):
    farm = farm_factory(write_registry(tmp_path / "packages.yaml", SIX))
    assert farm.db_url.startswith("sqlite")
    force_and_check_six(farm)


@pytest.mark.postgres
def test_force_build_postgresql(pg_url, farm_factory, tmp_path):  # pg_url outlives the farm
    farm = farm_factory(write_registry(tmp_path / "packages.yaml", SIX), db_url=pg_url)
    force_and_check_six(farm)
    # the builds really are in PostgreSQL
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT builders.name, builds.state_string FROM builds "
            "JOIN builders ON builders.id = builds.builderid"
        )
        name, summary = row.fetchone()
        assert name == "build-linux-x86_64" and summary.startswith("six 1.")


def test_force_refuses_unknown_package(farm_factory, tmp_path):
    farm = farm_factory(write_registry(tmp_path / "packages.yaml", SIX))
    with pytest.raises(RuntimeError, match="not a package of the registry"):
        farm.force("no-such-package")


def test_bad_registry_keeps_last_good_config(farm_factory, tmp_path):
    registry = write_registry(tmp_path / "packages.yaml", SIX)
    farm = farm_factory(registry)
    builders_before = sorted(b["name"] for b in farm.api("builders")["builders"])

    # a broken registry (adds idna with a bad specifier) is refused, with file, line and field
    write_registry(registry, SIX + IDNA + '    versions: ">=2.0,,"\n')
    ok, log = farm.reconfig()
    assert not ok
    assert "packages.yaml:12: packages[1].versions" in log
    # ... and the master goes on with the old registry and builders
    assert sorted(b["name"] for b in farm.api("builders")["builders"]) == builders_before
    with pytest.raises(RuntimeError, match="not a package of the registry"):
        farm.force("idna")

    # a good registry is taken, and its new package builds
    write_registry(registry, SIX + IDNA)
    ok, log = farm.reconfig()
    assert ok, log
    (build,) = wait_builds(farm, farm.force("idna"), timeout=300)
    assert build["results"] == 0, build["state_string"]


def test_force_requests_only_pythons_a_worker_offers(farm_factory, tmp_path):
    # the local worker offers the Pythons this machine runs; ask for one it cannot
    offered = set(local_pythons())
    other = next(v for v in ("3.10", "3.11", "3.12", "3.13", "3.14") if v not in offered)
    both = sorted(offered | {other})
    registry = IDNA.replace('python: ["3.11"]', f"python: {json.dumps(both)}")
    farm = farm_factory(write_registry(tmp_path / "packages.yaml", registry))
    brids = farm.force("idna")
    assert len(brids) == len(offered)  # not one request that would wait for ever
    with pytest.raises(RuntimeError, match=f"offered by a worker .*{sorted(offered)[0]}"):
        farm.force("idna", pythons=[other])
