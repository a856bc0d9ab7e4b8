"""How fast the orchestrator releases a 1,000-package campaign on a real master.

The registry is 1,000 small packages with a realistic graph (a few hubs, most
packages with 0-5 dependencies). Every wheel is already in the farm's index, so
each build is trivial (resolve finds the wheel and the build ends as skipped):
what is measured is the campaign's own cost, dispatching 1,000 builds in
dependency order, max_in_flight at a time, through the Triggerable schedulers.

    python bench/dispatch.py [--packages 1000] [--max-in-flight 50]

Target: a 1,000-package campaign dispatched in <= 30 s.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import free_port  # noqa: E402
from fakepypi import FakePyPI  # noqa: E402
from sdists import make_sdist  # noqa: E402
from wheelfarm.cli.localfarm import LocalFarm  # noqa: E402
from wheelfarm.index.store import Index  # noqa: E402
from wheelfarm.registry.platforms import PLATFORMS  # noqa: E402
from wheelmaker import make_wheel  # noqa: E402

TOOLCHAIN = "bench.1"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def graph(n: int, seed: int = 1) -> dict[str, list[str]]:
    rnd = random.Random(seed)
    names = [f"bench-pkg-{i:05d}" for i in range(n)]
    deps: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        chosen = set()
        if i and rnd.random() < 0.6:
            chosen.add(names[rnd.randrange(min(8, i))])  # a hub
        for _ in range(rnd.choice([0, 0, 1, 1, 2, 3, 4]) if i else 0):
            chosen.add(names[rnd.randrange(i)])
        deps[name] = sorted(chosen)
    return deps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=1000)
    parser.add_argument("--max-in-flight", type=int, default=50)
    args = parser.parse_args()
    deps = graph(args.packages)
    platform = PLATFORMS["linux-x86_64"]
    with tempfile.TemporaryDirectory(prefix="wheelfarm-dispatch-") as tmp:
        work = Path(tmp)
        pypi = FakePyPI()
        farm = LocalFarm(
            home=work / "farm",
            www_port=free_port(),
            worker_port=free_port(),
            registry=work / "packages.yaml",
            rollouts=work / "rollouts.yaml",
            max_builds=args.max_in_flight,
        )
        index = Index(farm.settings().index_path)
        entries = []
        for name, parents in deps.items():
            release = pypi.publish(make_sdist(work / "sdists", name, "1.0", {}))
            record = {
                "sdist_sha256": release.sha256,
                "platform": platform.name,
                "python": PYTHON,
                "toolchain_key": f"{platform.policy}/{TOOLCHAIN}",
            }
            index.add(make_wheel(work / "wheels", name, "1.0"), record)
            entries.append(
                f"  - name: {name}\n    platforms: [{platform.name}]\n    python: ['{PYTHON}']\n"
                + (f"    depends: [{', '.join(parents)}]\n" if parents else "")
            )
        farm.registry.write_text("schema: 1\npackages:\n" + "".join(entries))
        farm.rollouts.write_text(
            "schema: 1\nrollouts:\n  - name: bench\n"
            f"    toolchain: {TOOLCHAIN}\n    max_in_flight: {args.max_in_flight}\n"
        )
        farm.pypi_url = pypi.start()
        farm.create()
        farm.start()
        try:
            t = time.perf_counter()
            farm.rpc(
                "forceschedulers/rollout", "force", builderNames=["orchestrate"], rollout="bench"
            )
            while True:
                builds = farm.api("builds", complete="true", field=["builderid", "complete"])
                builders = {b["name"]: b["builderid"] for b in farm.api("builders")["builders"]}
                if any(b["builderid"] == builders["orchestrate"] for b in builds["builds"]):
                    break
                time.sleep(0.5)
            took = time.perf_counter() - t
            skipped = farm.api("builds", results=3, field=["results"])["builds"]
        finally:
            farm.stop()
            pypi.stop()
    print(f"campaign dispatch, {args.packages} packages, max_in_flight {args.max_in_flight}")
    print("| packages | builds (skipped: trivial) | campaign time | per build |")
    print("|---|---|---|---|")
    print(f"| {args.packages:,} | {len(skipped):,} | {took:.1f} s | {took / args.packages:.3f} s |")


if __name__ == "__main__":
    main()
