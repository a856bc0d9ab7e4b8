"""What one poll of the PyPI release watcher costs with 15,000 registry packages.

A fake PyPI on loopback (tests/fakepypi.py) holds the top 15,000 PyPI projects
(from ../shared/top-pypi-15000.tsv), each with a release history, and the
registry lists all of them. The watcher's cycle (wheelfarm.changes.pypifeed.poll_cycle,
exactly what the master runs in a thread) is timed, with the requests and the
bytes (request and response bodies) the fake PyPI saw:

    python bench/watcher.py [--packages 15000] [--history 30]

Rows: an idle cycle; a cycle after 100 new releases of which 20 are of registry
packages; the same events read again with the ETags kept (each project 304);
and, for comparison, asking every registry package's JSON once, as a watcher
without a changelog would each cycle.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakepypi import FakePyPI  # noqa: E402
from wheelfarm.changes.pypifeed import PyPIFeed, poll_cycle  # noqa: E402
from wheelfarm.registry.packages import load_registry  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOP = REPO.parent / "shared" / "top-pypi-15000.tsv"
FAKE_SHA = "0" * 64  # the JSON API never reads the files


def top_names(n: int) -> list[str]:
    lines = TOP.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[1] for line in lines[:n]]


def release(pypi: FakePyPI, name: str, version: str) -> None:
    filename = f"{name.replace('-', '_').replace('.', '_')}-{version}.tar.gz"
    pypi.publish(Path(filename), sha256=FAKE_SHA)


def measure(pypi: FakePyPI, what: str, run) -> dict:
    pypi.hits.clear()
    t = time.perf_counter()
    found = run()
    took = time.perf_counter() - t
    hits = list(pypi.hits)
    return {
        "cycle": what,
        "requests": len(hits),
        "not_modified": sum(h.status == 304 for h in hits),
        "bytes": sum(h.bytes_in + h.bytes_out for h in hits),
        "time": took,
        "found": found,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=15000)
    parser.add_argument("--history", type=int, default=30, help="past releases per project")
    args = parser.parse_args()
    names = top_names(args.packages)
    pypi = FakePyPI()
    for name in names:
        for i in range(args.history):
            release(pypi, name, f"1.{i}")
    url = pypi.start()
    try:
        with tempfile.TemporaryDirectory(prefix="wheelfarm-watcher-") as tmp:
            path = Path(tmp) / "packages.yaml"
            body = "".join(f'  - name: "{n}"\n' for n in names)
            path.write_text(f"schema: 1\npackages:\n{body}", encoding="utf-8")
            packages = load_registry(path).packages
        feed = PyPIFeed(url)
        start = feed.last_serial()
        etags: dict[str, str] = {}
        rows = [measure(pypi, "idle (no new events)", lambda: run(feed, packages, start, etags))]

        # 100 new releases: 20 of registry packages, 80 of projects outside the registry
        for i in range(80):
            release(pypi, f"not-in-registry-{i}", "1.0")
        for name in names[:: max(1, len(names) // 20)][:20]:
            release(pypi, name, "2.0")
        rows.append(
            measure(
                pypi,
                "100 new releases, 20 in the registry",
                lambda: run(feed, packages, start, etags),
            )
        )
        rows.append(
            measure(
                pypi,
                "same events again, ETags kept (304)",
                lambda: run(feed, packages, start, dict(etags)),
            )
        )
        session = requests.Session()
        rows.append(
            measure(
                pypi,
                f"no changelog: every package's JSON ({len(packages):,})",
                lambda: sum(session.get(f"{url}/pypi/{n}/json", timeout=60).ok for n in packages),
            )
        )
    finally:
        pypi.stop()
    print(
        f"{len(names):,} registry packages, {len(pypi.changelog):,} changelog events, "
        f"{args.history} releases per project\n"
    )
    print("| cycle | requests | of which 304 | bytes | time | new releases found |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['cycle']} | {r['requests']:,} | {r['not_modified']:,} | "
            f"{human(r['bytes'])} | {r['time'] * 1000:,.0f} ms | {r['found']:,} |"
        )


def run(feed: PyPIFeed, packages: dict, serial: int, etags: dict[str, str]) -> int:
    cycle, new_etags = poll_cycle(feed, packages, serial, etags)
    etags.update(new_etags)
    return len(cycle.releases)


def human(n: int) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


if __name__ == "__main__":
    main()
