"""How the master copes with a registry of PyPI's size.

Generates registries of the top N PyPI projects (from ../shared/top-pypi-15000.tsv)
on all 5 platforms, with a realistic dependency graph (a few hubs with many
dependents, most packages with 0-5 dependencies), starts a real master with a
worker per platform, and prints a table:

    python bench/registry_scale.py [--sizes 100,1000,15000]

Targets at 15,000 packages: start <= 15 s, reconfig <= 5 s, RSS <= 500 MB,
GET /api/v2/builders <= 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

from wheelfarm.cli.localfarm import BIN, LocalFarm, _pid_alive, _read_pid
from wheelfarm.paths import MASTER_CFG
from wheelfarm.registry.platforms import PLATFORMS, SUPPORTED_PYTHONS

REPO = Path(__file__).resolve().parents[1]
TOP = REPO.parent / "shared" / "top-pypi-15000.tsv"
HUBS = 8  # the most downloaded projects get thousands of dependents


def top_names(n: int) -> list[str]:
    lines = TOP.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[1] for line in lines[:n]]


def make_registry(names: list[str], seed: int = 1) -> str:
    """A YAML registry; a package depends only on higher-ranked ones, so it is acyclic."""
    rnd = random.Random(seed)
    out = ["schema: 1", "packages:"]
    for i, name in enumerate(names):
        out.append(f'  - name: "{name}"')
        if i == 0:
            continue
        deps = set()
        if rnd.random() < 0.6:  # a hub
            deps.add(names[rnd.randrange(min(HUBS, i))])
        for _ in range(rnd.choice([0, 0, 1, 1, 2, 3, 4])):
            deps.add(names[rnd.randrange(i)])
        if deps:
            out.append(f"    depends: {json.dumps(sorted(deps))}")
    return "\n".join(out) + "\n"


def make_workers(path: Path) -> None:
    entries = [
        {
            "name": f"bench-{p.replace('_', '-')}",
            "owner": "bench <bench@localhost.localdomain>",
            "platform": p,
            "python": list(SUPPORTED_PYTHONS),
            "max_builds": 2,
        }
        for p in PLATFORMS
        if p != "linux-x86_64"
    ]
    path.write_text(yaml.safe_dump({"schema": 1, "workers": entries}), encoding="utf-8")


def timed(argv: list) -> float:
    t = time.perf_counter()
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{argv} failed: {done.stdout}{done.stderr}")
    return time.perf_counter() - t


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


def measure(n: int, tmp: Path, port: int) -> dict:
    work = tmp / f"n{n}"
    work.mkdir()
    registry = work / "packages.yaml"
    registry.write_text(make_registry(top_names(n)), encoding="utf-8")
    workers = work / "workers.yaml"
    make_workers(workers)
    farm = LocalFarm(
        home=work / "farm",
        www_port=port,
        worker_port=port + 1,
        registry=registry,
        extra_workers_files=[workers],
    )
    row: dict = {"packages": n}
    row["check"] = timed([BIN / "wheelfarm", "check", registry, "--workers", work])
    farm.create()
    row["checkconfig"] = timed([BIN / "buildbot", "checkconfig", farm.master_dir])

    t = time.perf_counter()
    subprocess.run(
        [BIN / "buildbot", "start", farm.master_dir], check=True, stdout=subprocess.DEVNULL
    )
    while True:
        try:
            if requests.get(f"{farm.url}api/v2/builders", timeout=5).ok:
                break
        except requests.RequestException:
            pass
        time.sleep(0.1)
    row["start"] = time.perf_counter() - t
    try:
        pid = _read_pid(farm.master_dir / "twistd.pid")
        samples = []
        for _ in range(20):
            t = time.perf_counter()
            requests.get(f"{farm.url}api/v2/builders", timeout=30).raise_for_status()
            samples.append(time.perf_counter() - t)
        row["builders"] = statistics.median(samples)
        ok, log = farm.reconfig()
        took = re.search(r"configuration update complete \(took ([\d.]+) seconds\)", log)
        row["reconfig"] = float(took.group(1)) if ok and took else float("nan")
        row["rss"] = rss_mb(pid)
    finally:
        farm.stop()
        assert not _pid_alive(farm.master_dir / "twistd.pid")
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,1000,15000")
    parser.add_argument("--port", type=int, default=18010)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    with tempfile.TemporaryDirectory(prefix="wheelfarm-bench-") as tmp:
        rows = [measure(int(n), Path(tmp), args.port) for n in args.sizes.split(",")]
    print(
        f"registry scale: {len(PLATFORMS)} platforms, master {MASTER_CFG.name} on SQLite, "
        f"Python {sys.version.split()[0]}"
    )
    print(
        "| packages | wheelfarm check | buildbot checkconfig | start -> API ready | reconfig "
        "| master RSS | GET /api/v2/builders |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['packages']:,} | {r['check']:.2f} s | {r['checkconfig']:.2f} s "
            f"| {r['start']:.1f} s | {r['reconfig']:.2f} s | {r['rss']:.0f} MB "
            f"| {r['builders'] * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
