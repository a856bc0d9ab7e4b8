"""The master's view of its workers: coverage warnings and the /farm/workers page."""

from __future__ import annotations

from datetime import UTC, datetime

from conftest import write_registry
from test_matching import SAT
from wheelfarm.registry.coverage import coverage_lines
from wheelfarm.registry.packages import load_registry
from wheelfarm.registry.workers import Downtime, WorkerEntry
from wheelfarm.web.workers import describe, workers_page

REGISTRY = """\
  - name: six
    platforms: [linux-x86_64, macos-arm64]
    python: ["3.11"]
"""


def worker(name: str, platform: str, *downtime: Downtime) -> WorkerEntry:
    return WorkerEntry(
        name=name,
        owner=f"<{name}@example.org>",
        platform=platform,
        pythons=("3.11", "3.12"),
        max_builds=2,
        tags=(),
        line=3,
        downtime=downtime,
    )


def test_coverage_lines_name_idle_workers_and_unserved_platforms(tmp_path):
    registry = load_registry(write_registry(tmp_path / "packages.yaml", REGISTRY))
    lines = coverage_lines(registry, [worker("a", "linux-x86_64"), worker("w", "windows-amd64")])
    assert lines == [
        f"worker 'w': no package in {registry.path} builds for 'windows-amd64'",
        "no worker serves 'macos-arm64' (packages to build there: 1)",
    ]
    both = [worker("a", "linux-x86_64"), worker("m", "macos-arm64")]
    assert coverage_lines(registry, both) == []


def test_describe_downtime():
    assert describe(Downtime(days=(5, 6), start=120, end=360)) == "sat, sun 02:00-06:00 UTC"
    assert describe(Downtime(days=tuple(range(7)), start=0, end=1440)) == (
        "every day 00:00-24:00 UTC"
    )


def test_workers_page_shows_each_worker_its_state_and_the_warnings():
    weekend = Downtime(days=(5, 6), start=0, end=24 * 60)
    entries = [worker("resting", "linux-x86_64", weekend), worker("gone", "macos-arm64")]
    page = workers_page(entries, {"resting"}, ["no worker serves 'x'"], SAT).decode()
    assert "<td>resting</td><td>&lt;resting@example.org&gt;</td><td>linux-x86_64</td>" in page
    assert "<td>3.11, 3.12</td><td>2</td><td>sat, sun 00:00-24:00 UTC</td>" in page
    assert "<td>connected, in downtime: takes no new builds</td>" in page
    assert "<td>gone</td>" in page and "<td>none</td><td>not connected</td>" in page
    assert "<li>no worker serves &#39;x&#39;</li>" in page
    monday = datetime(2026, 11, 23, 12, tzinfo=UTC)
    assert "in downtime" not in workers_page(entries, {"resting"}, [], monday).decode()
