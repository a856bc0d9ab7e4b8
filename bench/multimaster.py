"""A 1,000-build campaign over one master and over two (one PostgreSQL database, a
crossbar router), with trivial builds: builds per second.

Every wheel is already in the farm's index (shared by the masters), so each build ends
after resolve as skipped: what is measured is the farm's own cost per build, dispatching
and running them in dependency order, and how it splits over masters. Each master has a
worker of its own (max_builds = max_in_flight); the rollout is started on the first.

Where the time goes: the CPU seconds each part used during the campaign (each master,
each worker, the router, the PostgreSQL backends serving the bench's database, all from
/proc), against what the machine's cores could give in that time, and the machine's
whole use (other work on it included, e.g. other developers' tests); and the
transactions PostgreSQL ended in the bench's database.

    python bench/multimaster.py [--packages 1000] [--max-in-flight 50]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres) and `make crossbar`.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from dispatch import TOOLCHAIN, graph, seed  # noqa: E402

from conftest import PG_URL, free_port  # noqa: E402
from fakepypi import FakePyPI  # noqa: E402
from wheelfarm.cli.localfarm import LocalFarm  # noqa: E402
from wheelfarm.index.store import Index  # noqa: E402
from wheelfarm.ops.cluster import write_router_config  # noqa: E402
from wheelfarm.registry.platforms import PLATFORMS  # noqa: E402
from wheelfarm.settings import REPO_ROOT  # noqa: E402

CROSSBAR = REPO_ROOT / ".crossbar-venv" / "bin" / "crossbar"


def start_router(work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    write_router_config(work / "crossbar", port)
    log = (work / "crossbar.log").open("wb")
    proc = subprocess.Popen(
        [CROSSBAR, "start", "--cbdir", work / "crossbar"], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"ws://127.0.0.1:{port}/ws"
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("crossbar did not start")


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds these processes and their waited-for children used."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / TICK  # utime stime cutime cstime
    return total


def backends_of(admin: psycopg.Connection, database: str) -> list[int]:
    """The PostgreSQL processes serving `database` (not other developers' databases)."""
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (database,),
    ).fetchall()
    return [pid for (pid,) in rows]


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores) since boot."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / TICK


def tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def run(work: Path, deps: dict[str, list[str]], masters: int, max_in_flight: int) -> dict:
    """One campaign over `masters` masters on a fresh database; its figures."""
    platform = PLATFORMS["linux-x86_64"]
    name = f"wheelfarm_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG_URL + "postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    router, url = start_router(work)
    pypi = FakePyPI()
    (work / "packages.yaml").write_text(seed(work, pypi, Index(work / "index"), deps, platform))
    (work / "rollouts.yaml").write_text(
        "schema: 1\nrollouts:\n  - name: bench\n"
        f"    toolchain: {TOOLCHAIN}\n    max_in_flight: {max_in_flight}\n"
    )
    os.environ.update(
        WHEELFARM_MULTI_MASTER="true",
        WHEELFARM_MQ_ROUTER_URL=url,
        WHEELFARM_INDEX_DIR=str(work / "index"),
        # every node a build: with the index check, a rollout over wheels the index has
        # would make none
        WHEELFARM_CAMPAIGN_INDEX_CHECK="false",
    )
    pypi_url = pypi.start()
    farms = [
        LocalFarm(
            home=work / f"m{i}" / "farm",
            www_port=free_port(),
            worker_port=free_port(),
            db_url=PG_URL + name,
            registry=work / "packages.yaml",
            rollouts=work / "rollouts.yaml",
            pypi_url=pypi_url,
            pypi_watch_interval=0,
            worker_names=[f"w{i}"],
            max_builds=max_in_flight,
        )
        for i in range(masters)
    ]
    for farm in farms:
        farm.extra_workers_files = [f.workers_file for f in farms if f is not farm]
    try:
        for farm in farms:
            farm.create()
        for farm in farms:
            farm.start(timeout=600)
        first = farms[0]
        builders = {b["name"]: b["builderid"] for b in first.api("builders")["builders"]}
        parts = {f"master {i + 1}": [pid_of(f.master_dir)] for i, f in enumerate(farms)}
        parts.update(
            {f"worker {i + 1}": [pid_of(f.worker_dir(f"w{i}"))] for i, f in enumerate(farms)}
        )
        parts["router"] = tree(router.pid)
        before = {part: cpu_seconds(pids) for part, pids in parts.items()}
        backends = {pid: cpu_seconds([pid]) for pid in backends_of(admin, name)}
        busy = machine_busy()
        commits = transactions(admin, name)
        t = time.perf_counter()
        first.rpc("forceschedulers/rollout", "force", builderNames=["orchestrate"], rollout="bench")
        while not finished(first, builders["orchestrate"]):
            time.sleep(0.5)
        took = time.perf_counter() - t
        cpu = {part: cpu_seconds(pids) - before.get(part, 0.0) for part, pids in parts.items()}
        # the backends serving this database (pooled: most live through the campaign;
        # one that closes meanwhile is not counted)
        cpu["PostgreSQL"] = sum(
            cpu_seconds([pid]) - backends.get(pid, 0.0) for pid in backends_of(admin, name)
        )
        cpu["whole machine"] = machine_busy() - busy
        commits = transactions(admin, name) - commits
        # a field= list must name every field filtered on (else 400)
        builds = first.api("builds", results=3, field=["masterid", "results"], limit=100000)[
            "builds"
        ]
        per_master = sorted(
            (sum(b["masterid"] == m for b in builds) for m in {b["masterid"] for b in builds}),
            reverse=True,
        )
    finally:
        for farm in farms:
            farm.stop()
        pypi.stop()
        router.terminate()
        router.wait(timeout=60)
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    return {
        "builds": len(builds),
        "took": took,
        "per_master": per_master,
        "cpu": cpu,
        "transactions": commits,
    }


def transactions(admin: psycopg.Connection, database: str) -> int:
    """Transactions PostgreSQL has ended in `database` (committed or rolled back)."""
    admin.execute("SELECT pg_stat_clear_snapshot()")
    row = admin.execute(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
        (database,),
    ).fetchone()
    return int(row[0]) if row else 0


def finished(farm: LocalFarm, orchestrate: int) -> bool:
    """Whether the campaign's orchestrating build has ended (a failed poll: not yet)."""
    try:
        return bool(farm.api("builds", builderid=orchestrate, complete="true")["builds"])
    except requests.RequestException:  # a loaded machine's hiccup, not the campaign's end
        return False


def pid_of(basedir: Path) -> int:
    return int((basedir / "twistd.pid").read_text().strip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=1000)
    parser.add_argument("--max-in-flight", type=int, default=50)
    args = parser.parse_args()
    deps = graph(args.packages)
    rows = []
    for masters in (1, 2):
        with tempfile.TemporaryDirectory(prefix="wheelfarm-multimaster-") as tmp:
            rows.append((masters, run(Path(tmp), deps, masters, args.max_in_flight)))
            print(f"{masters} master(s): {rows[-1][1]}", flush=True)
    print(f"{args.packages:,}-build campaign, trivial builds, max_in_flight {args.max_in_flight}")
    print("| masters | builds | builds per master | time | builds per second | transactions |")
    print("|---|---|---|---|---|---|")
    for masters, r in rows:
        split = " + ".join(f"{n:,}" for n in r["per_master"])
        print(
            f"| {masters} | {r['builds']:,} | {split} | {r['took']:.1f} s "
            f"| {r['builds'] / r['took']:.1f} | {r['transactions']:,} |"
        )
    cores = os.cpu_count() or 1
    print(f"\nCPU seconds used during the campaign ({cores} cores: {cores} s per second)")
    parts = list(dict.fromkeys(p for _, r in rows for p in r["cpu"]))
    print("| masters | " + " | ".join(parts) + " | cores' capacity |")
    print("|---|" + "---|" * (len(parts) + 1))
    for masters, r in rows:
        cells = [f"{r['cpu'][p]:.1f}" if p in r["cpu"] else "-" for p in parts]
        print(f"| {masters} | " + " | ".join(cells) + f" | {cores * r['took']:.1f} |")


if __name__ == "__main__":
    main()
