"""How fast the orchestrator gets through a 1,000-package campaign on a real master.

The registry is 1,000 small packages with a realistic graph (a few hubs, most
packages with 0-5 dependencies). Every wheel is already in the farm's index, so the
rollout finds nothing to do. Three runs, each on a fresh farm (`--runs` picks them):

- `check`, the farm's default: the orchestrator asks the index itself and marks
  each node done without a build request;
- `untuned` (`campaign_index_check: false`, `db_tuning: false`): each node is a
  Buildbot build on a worker, trivial (resolve finds the wheel, the build ends as
  skipped), with Buildbot's own database behaviour: the master's builds per
  second before ops/dbtuning.py;
- `built` (`campaign_index_check: false`): the same builds with the farm's
  database tuning: the master's builds per second now.

    python bench/dispatch.py [--packages 1000] [--workers 4] [--max-in-flight 50]
        [--runs check,untuned,built] [--py-spy PREFIX]

`--py-spy PREFIX` records the master's stacks during each campaign into
PREFIX-RUN.txt (py-spy's raw format; py-spy is no dependency of the farm: install
it yourself).

Targets: the campaign that finds nothing to do in <= 30 s; >= 5 trivial builds per
second with 4 workers.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
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
from wheelfarm.registry.platforms import PLATFORMS, Platform  # noqa: E402
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


RUNS = {  # name: (label, campaign_index_check, db_tuning)
    "check": ("index check (default)", True, True),
    "untuned": ("every node built, before (`db_tuning: false`)", False, False),
    "built": ("every node built, after (`db_tuning: true`)", False, True),
}


def seed(
    work: Path, pypi: FakePyPI, index: Index, deps: dict[str, list[str]], platform: Platform
) -> str:
    """Publish each package's sdist and put its wheel in the index (so every node of a
    campaign could be skipped); returns the registry's text."""
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
    return "schema: 1\npackages:\n" + "".join(entries)


def run(args: argparse.Namespace, deps: dict[str, list[str]], variant: str) -> dict:
    """One farm, one rollout over every package: its time and its build requests."""
    label, check, tuned = RUNS[variant]
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
            worker_names=[f"w{i}" for i in range(args.workers)],
            max_builds=-(-args.max_in_flight // args.workers),
        )
        farm.registry.write_text(
            seed(work, pypi, Index(farm.settings().index_path), deps, platform)
        )
        farm.rollouts.write_text(
            "schema: 1\nrollouts:\n  - name: bench\n"
            f"    toolchain: {TOOLCHAIN}\n    max_in_flight: {args.max_in_flight}\n"
        )
        farm.pypi_url = pypi.start()
        os.environ["WHEELFARM_CAMPAIGN_INDEX_CHECK"] = "true" if check else "false"
        os.environ["WHEELFARM_DB_TUNING"] = "true" if tuned else "false"
        farm.create()
        farm.start()
        try:
            builders = {b["name"]: b["builderid"] for b in farm.api("builders")["builders"]}
            spy = profile(args.py_spy, farm, variant)
            t = time.perf_counter()
            farm.rpc(
                "forceschedulers/rollout", "force", builderNames=["orchestrate"], rollout="bench"
            )
            while not farm.api("builds", builderid=builders["orchestrate"], complete="true")[
                "builds"
            ]:
                time.sleep(0.2)
            took = time.perf_counter() - t
            builder = builders[platform.builder_name]
            requests = farm.api("buildrequests", builderid=builder)
        finally:
            if spy:
                spy.send_signal(signal.SIGINT)  # py-spy writes its profile then
                spy.wait(60)
            farm.stop()
            pypi.stop()
    row = {"time": took, "requests": len(requests["buildrequests"])}
    print(f"{label}: {row}", file=sys.stderr, flush=True)
    return row


def profile(out: str | None, farm: LocalFarm, variant: str) -> subprocess.Popen | None:
    """py-spy (not a farm dependency: install it yourself) on the master, if asked."""
    if not out:
        return None
    pid = (farm.master_dir / "twistd.pid").read_text().strip()
    argv = ["py-spy", "record", "--pid", pid, "--format", "raw", "--rate", "50"]
    argv += ["-o", f"{out}-{variant}.txt"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--max-in-flight", type=int, default=50)
    parser.add_argument(
        "--runs",
        default=",".join(RUNS),
        help=f"which campaigns, in this order (default: {','.join(RUNS)})",
    )
    parser.add_argument(
        "--py-spy", metavar="PREFIX", help="profile the master with py-spy: PREFIX-RUN.txt"
    )
    args = parser.parse_args()
    deps = graph(args.packages)
    names = args.runs.split(",")
    if unknown := set(names) - set(RUNS):
        parser.error(f"--runs: unknown {', '.join(sorted(unknown))}; known: {', '.join(RUNS)}")
    rows = [(RUNS[variant][0], run(args, deps, variant)) for variant in names]
    print(
        f"rollout over {args.packages:,} packages whose wheels exist, {args.workers} workers, "
        f"max_in_flight {args.max_in_flight}"
    )
    print("| campaign | build requests | campaign time | nodes per second | builds per second |")
    print("|---|---|---|---|---|")
    for label, row in rows:
        builds = f"{row['requests'] / row['time']:.1f}" if row["requests"] else "-"
        print(
            f"| {label} | {row['requests']:,} | {row['time']:.1f} s "
            f"| {args.packages / row['time']:.0f} | {builds} |"
        )


if __name__ == "__main__":
    main()
