"""The shipped registry's share of reproducible packages (target: >= 90%).

A local farm (a real master and worker for this machine) builds every registry
package this machine targets, for this Python, then builds each again as a verify
build (the force form's `verify`: build, compare with the wheel in the index, publish
nothing). Prints how many were verified and how many gave the same bytes, and the
files that differ for the others.

    .venv/bin/python bench/reproducible.py [--packages six,markupsafe]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from wheelfarm.cli.localfarm import LocalFarm
from wheelfarm.index.verify import share
from wheelfarm.registry.packages import load_registry
from wheelfarm.registry.platforms import host_platform

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import free_port, wait_builds  # noqa: E402


def force_all(farm: LocalFarm, names: list[str], platform: str, python: str, **kw) -> list[dict]:
    brids = []
    for name in names:
        brids += farm.force(name, platforms=[platform], pythons=[python], reason="bench", **kw)
    return wait_builds(farm, brids, timeout=3600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", help="a comma-separated subset (default: all)")
    args = parser.parse_args()
    platform = host_platform()
    assert platform is not None, "not one of the farm's platforms"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    registry = load_registry(ROOT / "packages.yaml")
    names = [
        p.name
        for p in registry.for_platform(platform.name)
        if python in p.pythons and p.skip is None
    ]
    if args.packages:
        names = [n for n in names if n in args.packages.split(",")]
    with tempfile.TemporaryDirectory(prefix="wheelfarm-reproducible-") as tmp:
        farm = LocalFarm(
            home=Path(tmp) / "farm",
            www_port=free_port(),
            worker_port=free_port(),
            pypi_watch_interval=0,
        )
        farm.create()
        farm.start()
        try:
            start = time.perf_counter()
            built = force_all(farm, names, platform.name, python)
            took = time.perf_counter() - start
            ok = [b["properties"]["package"][0] for b in built if b["results"] in (0, 1)]
            failed = sorted(set(names) - set(ok))
            start = time.perf_counter()
            force_all(farm, ok, platform.name, python, verify=True)
            took_verify = time.perf_counter() - start
            found = share(farm.settings().index_path, ok)
        finally:
            farm.stop()
    verified, same = found["verified"], found["reproducible"]
    print(f"{platform.name}, Python {python}: {len(names)} registry packages this machine targets")
    print("| built | build time | verified | reproducible | share | verify time |")
    print("|---|---|---|---|---|---|")
    share_text = f"{100 * same / verified:.0f}%" if verified else "-"
    print(
        f"| {len(ok)} | {took:.0f} s | {verified} | {same} | {share_text} | {took_verify:.0f} s |"
    )
    if failed:
        print(f"not built (so not verified): {', '.join(failed)}")
    for project, wheels in found["not_reproducible"].items():
        for wheel, differ in wheels.items():
            print(f"not reproducible: {project}: {wheel}: {', '.join(differ)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
