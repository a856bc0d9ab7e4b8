"""How fast the package pages and badges render from the farm's status records.

Makes a registry of N packages on all 5 platforms and 5 Pythons (25 targets
each), a status row per target (a few failed, some not built) and a campaign
with blocked targets, then prints a table of render times:

    python bench/pages.py [--sizes 1000,15000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from wheelfarm.cascade.campaign import BLOCKED, DONE, Campaign, Node, node_key
from wheelfarm.cascade.store import CampaignStore
from wheelfarm.registry.packages import Package, Registry
from wheelfarm.registry.platforms import PLATFORMS, SUPPORTED_PYTHONS
from wheelfarm.state.db import StateDB
from wheelfarm.state.status import BUILT, FAILED, READ_CHUNK, Row, StatusRecords, _row, row_data
from wheelfarm.web.badges import badge_svg
from wheelfarm.web.packages import blocked_targets, list_page, package_page, package_status


def make_registry(n: int) -> Registry:
    packages = {}
    for i in range(n):
        name = f"pkg-{i:05d}"
        packages[name] = Package(
            name=name,
            display_name=name,
            versions=None,
            prereleases=False,
            platforms=tuple(PLATFORMS),
            pythons=tuple(SUPPORTED_PYTHONS),
            build_requires=(),
            build_env=(),
            test_requires=(),
            test_command=(),
            skip_imports=(),
            depends=(),
            abi=None,
            maintainers=("octocat",),
            skip=None,
            line=i + 3,
        )
    return Registry(Path("packages.yaml"), packages)


def make_records(registry: Registry, seed: int = 1) -> StatusRecords:
    rnd = random.Random(seed)
    records = StatusRecords()
    for i, package in enumerate(registry.packages.values()):
        if rnd.random() < 0.1:
            continue  # not built yet
        for platform in package.platforms:
            for python in package.pythons:
                failed = rnd.random() < 0.02
                records.add(
                    Row(
                        package=package.name,
                        version="1.0",
                        platform=platform,
                        python=python,
                        status=FAILED if failed else BUILT,
                        build_url=f"http://farm/#/builders/{i}/builds/1",
                        finished_at=1.0e9 + i,
                        step="test" if failed else None,
                        log_url="http://farm/api/v2/logs/1/raw_inline" if failed else None,
                        reason="tests failed (exit 1)" if failed else "build successful",
                        wheel=None if failed else f"{package.name}-1.0-py3-none-any.whl",
                    )
                )
    return records


def make_campaign(registry: Registry, store: CampaignStore) -> None:
    nodes = {}
    for i, package in enumerate(list(registry.packages.values())[:2000]):
        key = node_key(package.name, "linux-x86_64", "3.12")
        nodes[key] = Node(package.name, "linux-x86_64", "3.12", [], DONE)
        if i % 10 == 0:
            nodes[key].state, nodes[key].blocked_by = BLOCKED, "pkg-00000"
    store.save(Campaign("cascade-bench", "cascade", "bench", "bench", 10, nodes))


def timed(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(n: int, tmp: Path) -> str:
    """One row of the table, for a registry of n packages."""
    registry = make_registry(n)
    records = make_records(registry)
    store = CampaignStore(tmp / "campaigns")
    make_campaign(registry, store)
    one = registry.packages["pkg-00001"]
    rows = len(records.snapshot())
    # every render reads the campaigns again, as the pages do
    front = timed(lambda: list_page(registry, records, blocked_targets(store)))
    size = len(list_page(registry, records, blocked_targets(store)))
    filtered = timed(lambda: list_page(registry, records, blocked_targets(store), "99"))
    page = timed(lambda: package_page(one, records, blocked_targets(store), None))
    badge = timed(lambda: badge_svg(package_status(one, records, blocked_targets(store))))
    blocking = timed(lambda: blocked_targets(store))
    # the farm's table (SQLite, as a default farm has it): what a master writes for a
    # burst of finished builds, and what a starting master reads, in chunks, as it does
    db = StateDB.open("sqlite:///state.sqlite", tmp)
    db.status_add((i, row_data(r)) for i, r in enumerate(records.snapshot()))
    batch = [(None, row_data(r)) for r in records.snapshot()[:100]]  # 100 finished builds
    append = timed(lambda: db.status_add(batch))
    load = timed(lambda: read_all(db), repeat=3)
    return (
        f"| {n:,} | {rows:,} | {front * 1000:.0f} ms | {size / 1e6:.1f} MB "
        f"| {filtered * 1000:.0f} ms | {page * 1000:.1f} ms | {badge * 1000:.1f} ms "
        f"| {blocking * 1000:.0f} ms | {append * 1000:.1f} ms | {load:.2f} s |"
    )


def read_all(db: StateDB) -> StatusRecords:
    """The rows into memory, as StatusService's start reads them."""
    records, after = StatusRecords(), 0
    while found := db.status_since(after, READ_CHUNK):
        for rowid, data in found:
            row = _row(data)
            row.rowid = rowid
            records.add(row)
        after = found[-1][0]
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,15000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    print(
        "| packages | status rows | front page | its size | filtered (?q=) | package page "
        "| badge | read campaigns | record 100 builds | read all rows |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            print(measure(n, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
