"""The release watcher's logic without a master: which versions, and what it costs on the wire."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_registry
from fakepypi import FakePyPI
from wheelfarm.changes.pypifeed import PyPIFeed, poll_cycle, select_new
from wheelfarm.registry.packages import load_registry

REGISTRY = """\
  - name: Latest-Pkg
  - name: ranged
    versions: ">=2,<3"
  - name: eager
    prereleases: true
"""


@pytest.fixture
def packages(tmp_path):
    return load_registry(write_registry(tmp_path / "packages.yaml", REGISTRY)).packages


def sdist(version: str, yanked: bool = False, kind: str = "sdist") -> list[dict]:
    return [{"packagetype": kind, "yanked": yanked, "filename": f"x-{version}.tar.gz"}]


def test_latest_builds_only_the_newest_release_with_an_sdist(packages):
    releases = {"1.0": sdist("1.0"), "1.1": sdist("1.1"), "0.9.1": sdist("0.9.1")}
    latest = packages["latest-pkg"]
    assert select_new(latest, releases, ["1.1"]) == ["1.1"]
    # a bugfix release of an older series is not "latest"
    assert select_new(latest, releases, ["0.9.1"]) == []
    # only versions the changelog named are new: older ones were built from the registry
    assert select_new(latest, {"1.0": sdist("1.0")}, ["1.1"]) == []


def test_yanked_wheel_only_and_prereleases_are_not_built(packages):
    latest = packages["latest-pkg"]
    assert (
        select_new(latest, {"1.0": sdist("1.0"), "2.0": sdist("2.0", yanked=True)}, ["2.0"]) == []
    )
    assert select_new(latest, {"2.0": sdist("2.0", kind="bdist_wheel")}, ["2.0"]) == []
    assert select_new(latest, {"1.0": sdist("1.0"), "2.0rc1": sdist("2.0rc1")}, ["2.0rc1"]) == []
    # a yanked newest release leaves the one before it as the latest
    assert select_new(latest, {"1.0": sdist("1.0"), "2.0": sdist("2.0", True)}, ["1.0"]) == ["1.0"]
    assert select_new(packages["eager"], {"2.0rc1": sdist("2.0rc1")}, ["2.0rc1"]) == ["2.0rc1"]


def test_a_specifier_builds_every_new_version_it_admits(packages):
    ranged = packages["ranged"]
    releases = {v: sdist(v) for v in ("1.9", "2.0", "2.1", "3.0", "2.2a1")}
    assert select_new(ranged, releases, ["1.9", "2.0", "2.1", "3.0", "2.2a1"]) == ["2.0", "2.1"]
    assert select_new(ranged, releases, ["not a version"]) == []


def publish(pypi: FakePyPI, folder: Path, name: str, version: str) -> None:
    # the fake serves files by name only; the JSON API never reads them
    pypi.publish(folder / f"{name}-{version}.tar.gz", sha256="0" * 64)


def test_a_cycle_asks_only_about_registry_packages_the_changelog_names(packages, tmp_path):
    pypi = FakePyPI()
    url = pypi.start()
    try:
        for name in ("latest_pkg", "ranged", "unrelated"):
            publish(pypi, tmp_path, name, "1.0")
        feed = PyPIFeed(url)
        start = feed.last_serial()

        # nothing new: one small call
        pypi.hits.clear()
        cycle, etags = poll_cycle(feed, packages, start, {})
        assert cycle.serial == start and cycle.releases == []
        assert [h.path for h in pypi.hits] == ["/pypi"]

        publish(pypi, tmp_path, "latest_pkg", "1.1")
        publish(pypi, tmp_path, "ranged", "2.0")
        publish(pypi, tmp_path, "unrelated", "2.0")
        pypi.hits.clear()
        cycle, etags = poll_cycle(feed, packages, start, {})
        assert [(r.name, r.version) for r in cycle.releases] == [
            ("latest-pkg", "1.1"),
            ("ranged", "2.0"),
        ]
        assert cycle.serial == pypi.serial and cycle.events == 6
        asked = sorted(h.path for h in pypi.hits if h.method == "GET")
        assert asked == ["/pypi/latest-pkg/json", "/pypi/ranged/json"]
        assert set(etags) == {"latest-pkg", "ranged"}

        # the same events again (a cycle that failed after its requests): each
        # project answers 304 with no body, and nothing is found twice
        pypi.hits.clear()
        again, _ = poll_cycle(feed, packages, start, etags)
        assert again.releases == [] and again.not_modified == 2
        assert [h.status for h in pypi.hits if h.method == "GET"] == [304, 304]
    finally:
        pypi.stop()


def test_a_long_changelog_is_read_page_by_page(packages, tmp_path):
    pypi = FakePyPI(page_size=3)
    url = pypi.start()
    try:
        feed = PyPIFeed(url)
        for i in range(5):
            pypi.event(f"other{i}", "1.0", "new release")
        start = feed.last_serial()
        for i in range(7):
            pypi.event(f"more{i}", "1.0", "new release")
        publish(pypi, tmp_path, "ranged", "2.5")
        cycle, _ = poll_cycle(feed, packages, start, {})
        assert [(r.name, r.version) for r in cycle.releases] == [("ranged", "2.5")]
        assert cycle.serial == pypi.serial and cycle.events == 9
    finally:
        pypi.stop()


def test_an_index_whose_serial_went_back_is_followed_from_its_present(packages, tmp_path):
    pypi = FakePyPI()
    url = pypi.start()
    try:
        publish(pypi, tmp_path, "ranged", "2.0")
        cycle, _ = poll_cycle(PyPIFeed(url), packages, 1000, {})
        assert cycle.serial == pypi.serial and cycle.releases == []
    finally:
        pypi.stop()
