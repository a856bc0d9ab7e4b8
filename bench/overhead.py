"""What the farm costs on top of a bare build, and what isolation costs on top of that.

For a small pure sdist and a C extension, side by side in one run: bare
`pip wheel --no-deps` of the sdist; the farm's time from force to the wheel in
its index (resolve, fetch, isolated build, repair, checks, import test,
publish, through a real master and worker); their ratio; and a no-op
re-trigger (the wheel is already in the index). Then the same force -> wheel on
three more farms whose worker isolates the package's code differently: not at all
(`isolation: none-i-accept-the-risk`), with bubblewrap, and in podman (the bullseye
build image, made by workers/images/make_image.py; needs root); the three run side
by side and take their builds in turns, --rounds times (the median is shown).

    python bench/overhead.py [--packages six,markupsafe] [--python 3.11] [--no-isolation]
                             [--rounds 5]

Targets: ratio <= 1.5 for a small pure sdist, <= 1.1 for a C extension, no-op <= 1 s;
isolation and limits together <= 5% of a markupsafe build. The `none` farm has neither
(`isolation: none-i-accept-the-risk` and every limit setting 0); the bubblewrap and podman
farms have the settings' default limits.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wheelfarm.cli.localfarm import LocalFarm

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


ISOLATIONS = {
    "none": {"isolation": "none-i-accept-the-risk"},
    "bubblewrap": {"isolation": "bubblewrap"},
    "podman": {"container": "podman"},
}
# The `none` farm: no isolation and no limits, what the other two are measured against.
NO_LIMITS = {
    f"{step}_{kind}": 0
    for step in ("build", "test")
    for kind in ("memory_mb", "processes", "cpu_seconds", "time_seconds")
} | {"disk_mb": 0, "log_mb": 0, "wheel_mb": 0, "wheel_unpacked_mb": 0}


def bullseye_image() -> str:
    make = Path(__file__).resolve().parents[1] / "workers" / "images" / "make_image.py"
    argv = [sys.executable, make, "--suite", "bullseye", "--arch", "amd64", "--python", "3.11"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()[-1]


def isolation_rows(
    packages: list[str], registry: Path, work: Path, rounds: int
) -> list[tuple[str, dict[str, float]]]:
    """force -> wheel per package on a farm per isolation kind, the farms side by side:
    all running at once, and the builds taken in turns (each round builds every
    package on every farm again, `rebuild`), so that the machine's noise falls on all
    of them alike. The median of the rounds."""
    images = {"linux-x86_64": {"image": bullseye_image(), "policy": "manylinux_2_31_x86_64"}}
    farms = {}
    for kind, options in ISOLATIONS.items():
        overrides: dict = {"build_images": images} if "container" in options else {}
        if kind == "none":
            overrides.update(NO_LIMITS)
        farms[kind] = LocalFarm(
            home=work / f"farm-{kind}",
            www_port=free_port(),
            worker_port=free_port(),
            registry=registry,
            settings_overrides=overrides,
            **options,
        )
    times: dict[str, dict[str, list[float]]] = {}
    try:
        for farm in farms.values():
            farm.create()
            farm.start()
        for round_ in range(rounds):
            for package in packages:
                for kind, farm in farms.items():
                    took, build = timed_force(farm, package, rebuild=round_ > 0)
                    assert build["results"] == 0, f"{package} ({kind}): the farm's build failed"
                    times.setdefault(package, {}).setdefault(kind, []).append(took)
    finally:
        for farm in farms.values():
            farm.stop()
    return [
        (package, {kind: statistics.median(t) for kind, t in by_kind.items()})
        for package, by_kind in times.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", default="six,markupsafe")
    parser.add_argument("--python", default=f"{sys.version_info.major}.{sys.version_info.minor}")
    parser.add_argument("--no-isolation", action="store_true", help="skip the isolation table")
    parser.add_argument("--rounds", type=int, default=5, help="builds per package and farm")
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
        isolated = []
        if not args.no_isolation:
            isolated = isolation_rows(packages, registry, work, args.rounds)
    print(f"farm overhead, Python {args.python}, one local worker")
    print("| sdist | bare pip wheel | farm: force -> wheel in index | ratio | no-op re-trigger |")
    print("|---|---|---|---|---|")
    for package, bare, full, noop in rows:
        print(f"| {package} | {bare:.1f} s | {full:.1f} s | {full / bare:.2f} | {noop:.2f} s |")
    if isolated:
        print(
            "\nisolation: force -> wheel in index, by how the worker isolates the build "
            f"(median of {args.rounds} builds, the farms side by side)"
        )
        print("| sdist | none | bubblewrap | ratio | podman (bullseye image) | ratio |")
        print("|---|---|---|---|---|---|")
        for package, t in isolated:
            none, bwrap, podman = t["none"], t["bubblewrap"], t["podman"]
            print(
                f"| {package} | {none:.1f} s | {bwrap:.1f} s | {bwrap / none:.2f} "
                f"| {podman:.1f} s | {podman / none:.2f} |"
            )


if __name__ == "__main__":
    main()
