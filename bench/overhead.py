"""What the farm costs on top of a bare build.

For a small pure sdist and a C extension, side by side in one run: bare
`pip wheel --no-deps` of the sdist; the farm's time from force to the wheel in
its index (resolve, fetch, isolated build, repair, checks, import test,
publish, through a real master and worker); their ratio; and a no-op
re-trigger (the wheel is already in the index).

    python bench/overhead.py [--packages six,markupsafe] [--python 3.11]

Targets: ratio <= 1.5 for a small pure sdist, <= 1.1 for a C extension, no-op <= 1 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wheelfarm.localfarm import LocalFarm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import free_port  # noqa: E402


def bare_build(package: str, python: str, work: Path) -> float:
    """Best of two `pip wheel --no-deps` runs of the newest sdist (download not timed)."""
    sdists = work / f"sdist-{package}"
    subprocess.run(
        [
            f"python{python}",
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
            sdists,
            package,
        ],
        check=True,
    )
    (sdist,) = sdists.iterdir()
    times = []
    for i in range(2):
        t = time.perf_counter()
        subprocess.run(
            [
                f"python{python}",
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--no-cache-dir",
                "-w",
                work / f"out-{package}-{i}",
                sdist,
            ],
            check=True,
        )
        times.append(time.perf_counter() - t)
    return min(times)


def until_done(farm: LocalFarm, brids: list[int]) -> dict:
    """Poll quickly: API timestamps are whole seconds, so time here."""
    while True:
        builds = farm.api(
            "builds", buildrequestid=brids[0], field=["buildrequestid", "results", "complete"]
        )
        done = [b for b in builds["builds"] if b["complete"]]
        if done:
            return done[0]
        time.sleep(0.05)


def timed_force(farm: LocalFarm, package: str, **params) -> tuple[float, dict]:
    t = time.perf_counter()
    build = until_done(farm, farm.force(package, **params))
    return time.perf_counter() - t, build


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", default="six,markupsafe")
    parser.add_argument("--python", default=f"{sys.version_info.major}.{sys.version_info.minor}")
    args = parser.parse_args()
    packages = args.packages.split(",")
    with tempfile.TemporaryDirectory(prefix="wheelfarm-overhead-") as tmp:
        work = Path(tmp)
        registry = work / "packages.yaml"
        entries = "".join(
            f"  - name: {p}\n    platforms: [linux-x86_64]\n    python: ['{args.python}']\n"
            for p in packages
        )
        registry.write_text(f"schema: 1\npackages:\n{entries}", encoding="utf-8")
        farm = LocalFarm(
            home=work / "farm", www_port=free_port(), worker_port=free_port(), registry=registry
        )
        farm.create()
        farm.start()
        rows = []
        try:
            for package in packages:
                bare = bare_build(package, args.python, work)
                full, build = timed_force(farm, package)
                assert build["results"] == 0, f"{package}: the farm's build failed"
                noop, again = timed_force(farm, package)
                assert again["results"] == 3, f"{package}: the re-trigger was not a no-op"
                rows.append((package, bare, full, noop))
        finally:
            farm.stop()
    print(f"farm overhead, Python {args.python}, one local worker")
    print("| sdist | bare pip wheel | farm: force -> wheel in index | ratio | no-op re-trigger |")
    print("|---|---|---|---|---|")
    for package, bare, full, noop in rows:
        print(f"| {package} | {bare:.1f} s | {full:.1f} s | {full / bare:.2f} | {noop:.2f} s |")


if __name__ == "__main__":
    main()
