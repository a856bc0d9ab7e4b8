"""The farm after a year: a real master on a database with a generated history.

For the top N PyPI projects x 5 platforms, makes a farm (Buildbot's schema made by
`buildbot create-master`), inserts a year of builds the way the farm records them
(bench/historygen.py: buildsets, requests, builds, properties, steps, logs, and the
farm's status records), starts the master and measures, side by side with the
empty farm in the same run: start -> API ready, reconfig, RSS, database size, GET
of the API endpoints Buildbot's UI asks for, and every UI view and farm page in
headless Chromium (seconds until its content is shown, through the DevTools
protocol: bench/cdp.py). Then the retention job (Buildbot's janitor, as the
master runs it) and the database size after it.

    python bench/history.py [--builds 20000] [--packages 15000] [--db sqlite,postgresql]
                            [--layout platform|virtual]

`--layout virtual` writes the history as the farm recorded it before issue 14
(a virtual builder `PKG · PLATFORM` per package and platform, tagged with both).
Targets with 1,000,000 builds: every page shown in <= 2 s, GET /api/v2/builders
<= 200 ms, start <= 10 s, RSS <= 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import requests
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import registry_scale  # noqa: E402
from cdp import Browser  # noqa: E402
from historygen import History, generate  # noqa: E402

from wheelfarm.cli.localfarm import BIN, LocalFarm, _pid_alive, _read_pid  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PG = "postgresql://postgres@127.0.0.1:5432/"
NOT_LOADING = "!/loading/i.test(document.body.innerText)"


def top_names(n: int) -> list[str]:
    # the shared list sits next to the main checkout, also when run from a worktree
    for base in (REPO.parent, REPO.parent.parent, Path("/work")):
        path = base / "shared" / "top-pypi-15000.tsv"
        if path.is_file():
            registry_scale.TOP = path
            return registry_scale.top_names(n)
    raise SystemExit("no shared/top-pypi-15000.tsv found")


def make_farm(work: Path, names: list[str], db_url: str, port: int) -> LocalFarm:
    work.mkdir(parents=True)
    registry = work / "packages.yaml"
    registry.write_text(registry_scale.make_registry(names), encoding="utf-8")
    workers = work / "workers.yaml"
    registry_scale.make_workers(workers)
    farm = LocalFarm(
        home=work / "farm",
        www_port=port,
        worker_port=port + 1,
        registry=registry,
        db_url=db_url,
        extra_workers_files=[workers],
        pypi_watch_interval=0,
    )
    farm.create()
    return farm


def engine_for(farm: LocalFarm) -> sa.engine.Engine:
    url = farm.db_url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = f"sqlite:///{farm.master_dir / url.removeprefix('sqlite:///')}"
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))


def db_size(farm: LocalFarm) -> int:
    engine = engine_for(farm)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                return conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
            return pages * conn.exec_driver_sql("PRAGMA page_size").scalar()
    finally:
        engine.dispose()


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


def get(url: str, n: int = 3) -> tuple[float, int]:
    """Median seconds of n GETs, and the body's size."""
    samples, size = [], 0
    for _ in range(n):
        t = time.perf_counter()
        r = requests.get(url, timeout=120)
        r.raise_for_status()
        samples.append(time.perf_counter() - t)
        size = len(r.content)
    return statistics.median(samples), size


def endpoints(farm: LocalFarm, builder_ids: list[int]) -> dict[str, str]:
    """What Buildbot's UI asks for (seen with the DevTools protocol), by view."""
    eqs = "&".join(f"builderid__eq={b}" for b in builder_ids[:6])
    return {
        "builders (Builders, home, console, grid)": "builders",
        "builders?order=name (waterfall)": "builders?order=name",
        "builds, Builders page": f"builds?limit=200&order=-started_at&{eqs}&property=branch",
        "builds, waterfall": "builds?limit=40&order=-started_at",
        "builds, home": "builds?order=-buildid&complete=true&limit=20",
        "builds, console": "builds?limit=200&order=-started_at&property=got_revision",
        "buildrequests, console": "buildrequests?limit=200&order=-submitted_at",
        "changes, console": "changes?limit=30&order=-changeid",
        "builds, grid": "builds?limit=200&order=-buildrequestid",
        "buildrequests, grid": "buildrequests?limit=200&order=-buildrequestid",
        "buildsets, grid": "buildsets?limit=200&order=-bsid",
    }


def views(farm: LocalFarm, package: str) -> dict[str, tuple[str, str]]:
    """Each view, and a JavaScript test that its content (the newest rows) is shown."""

    def shows(*texts: str) -> str:
        tests = [f"document.body.innerText.includes({t!r})" for t in texts]
        return " && ".join([*tests, NOT_LOADING])

    names = {b["builderid"]: b["name"] for b in farm.api("builders")["builders"]}
    recent = farm.api("builds", order="-buildid", limit=20)["builds"]
    # the newest wheel build (not, say, the retention job's)
    newest = [b for b in recent if names[b["builderid"]].startswith("build-")][:1]
    changes = farm.api("changes", order="-changeid", limit=1)["changes"]
    builds = [newest[0]["state_string"]] if newest else []
    out = {
        "home": ("#/", shows("recent builds", *builds)),
        "Builders": ("#/builders", shows("build-linux-x86_64")),
        "waterfall": ("#/waterfall", shows("build-linux-x86_64")),
        # a row per PyPI release, the newest first
        "console": ("#/console", shows(*[c["comments"] for c in changes])),
        "grid": ("#/grid", shows(*[c["comments"] for c in changes])),
    }
    if newest:
        b = newest[0]
        out["a build"] = (
            f"#/builders/{b['builderid']}/builds/{b['number']}",
            shows("resolve", names[b["builderid"]], b["state_string"]),
        )
    out["/farm/packages/"] = ("farm/packages/", shows(package, "packages"))
    out["a package page"] = (f"farm/packages/{package}", shows(package, "linux-x86_64"))
    out["/farm/campaigns/"] = ("farm/campaigns/", "document.readyState == 'complete'")
    out["/farm/workers"] = ("farm/workers", shows("Workers", "linux-x86_64"))
    return out


def start_master(farm: LocalFarm) -> float:
    t = time.perf_counter()
    subprocess.run(
        # `buildbot start` gives up after 10 s without a log line; a big master takes longer
        [BIN / "buildbot", "start", "--start_timeout=900", farm.master_dir],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    while True:
        try:
            if requests.get(f"{farm.url}api/v2/builders?limit=1", timeout=60).ok:
                return time.perf_counter() - t
        except requests.RequestException:
            pass
        time.sleep(0.1)


def run_janitor(farm: LocalFarm, timeout: float = 3600) -> float | None:
    """Force the retention job (the janitor's builder) and wait for it."""
    try:
        from wheelfarm.ops.retention import JANITOR
    except ImportError:  # a farm before retention
        return None
    builders = {b["name"]: b["builderid"] for b in farm.api("builders")["builders"]}
    if JANITOR not in builders:
        return None
    t = time.perf_counter()
    farm.rpc(f"forceschedulers/{JANITOR}_force", "force", builderNames=[JANITOR])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        builds = farm.api("builds", builderid=builders[JANITOR], complete="true")["builds"]
        if builds:
            return time.perf_counter() - t
        time.sleep(1)
    raise TimeoutError("the retention job did not finish")


def measure(
    label: str, farm: LocalFarm, hist: History | None, package: str, vacuum: bool = True
) -> dict:
    row: dict = {"label": label}
    row["builds"] = hist.builds if hist else farm_builds(farm)
    row["db"] = db_size(farm)
    row["start"] = start_master(farm)
    pid = _read_pid(farm.master_dir / "twistd.pid")
    try:
        ok, log = farm.reconfig(timeout=600)
        took = re.search(r"configuration update complete \(took ([\d.]+) seconds\)", log)
        row["reconfig"] = float(took.group(1)) if ok and took else float("nan")
        ids = sorted(b["builderid"] for b in farm.api("builders")["builders"])
        for name, path in endpoints(farm, ids).items():
            row[f"GET {name}"] = get(f"{farm.url}api/v2/{path}")
        with Browser() as browser:
            browser.shown(farm.url, "true")  # Buildbot's scripts in the cache, as for a user
            for name, (path, js) in views(farm, package).items():
                try:
                    took, _, _ = browser.shown(farm.url + path, js, timeout=120)
                    row[f"view {name}"] = took
                except TimeoutError:
                    row[f"view {name}"] = float("inf")
        row["rss"] = rss_mb(pid)
        if row["builds"]:
            row["janitor"] = run_janitor(farm)
    finally:
        farm.stop(timeout=120)
        assert not _pid_alive(farm.master_dir / "twistd.pid")
    if row["builds"] and vacuum:
        engine = engine_for(farm)
        with engine.connect() as conn:  # what the janitor freed is reused, or given back
            if engine.dialect.name == "postgresql":
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM FULL")
            else:
                conn.exec_driver_sql("VACUUM")
        engine.dispose()
        if row.get("janitor") is not None:
            row["db after retention"] = db_size(farm)
    return row


def fmt(key: str, value) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        secs, size = value
        return f"{secs * 1000:,.0f} ms, {size / 1024:,.0f} kB"
    if key in ("db", "db after retention"):
        return f"{value / 1e6:,.0f} MB"
    if key == "rss":
        return f"{value:.0f} MB"
    if key in ("builds", "generate"):
        return f"{value:,}" if key == "builds" else f"{value:.0f} s"
    if value == float("inf"):
        return "not shown in 120 s"
    return f"{value:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=int, default=20_000)
    parser.add_argument("--packages", type=int, default=15_000)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--layout", choices=["platform", "virtual"], default="platform")
    parser.add_argument("--port", type=int, default=18210)
    parser.add_argument("--keep", help="keep the farms in this folder")
    parser.add_argument(
        "--farm", action="append", help="only measure this kept farm (its home), again"
    )
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    names = top_names(args.packages)
    columns = []
    for home in args.farm or []:
        conf = json.loads((Path(home) / "master" / "wheelfarm.json").read_text())
        farm = LocalFarm(
            home=Path(home),
            www_port=conf["www_port"],
            worker_port=conf["worker_port"],
            db_url=conf["db_url"],
        )
        builds = farm_builds(farm)
        label = f"{home}: {builds:,} builds"
        columns.append(measure(label, farm, None, names[0].lower(), vacuum=False))
        print(columns[-1], file=sys.stderr)
    if args.farm:
        return print_table(args, columns)
    with tempfile.TemporaryDirectory(prefix="wheelfarm-history-") as tmp:
        root = Path(args.keep or tmp)
        for kind in args.db.split(","):
            for builds in (0, args.builds):
                label = f"{kind}, {'empty' if not builds else f'{builds:,} builds'}"
                db_url, dbname = "sqlite:///state.sqlite", None
                if kind == "postgresql":
                    dbname = f"wheelfarm_history_{uuid.uuid4().hex[:8]}"
                    with psycopg.connect(PG + "postgres", autocommit=True) as conn:
                        conn.execute(f'CREATE DATABASE "{dbname}"')
                    db_url = PG + dbname
                work = root / f"{kind}-{builds}"
                farm = make_farm(work, names, db_url, args.port)
                hist = None
                t = time.perf_counter()
                if builds:
                    engine = engine_for(farm)
                    hist = generate(
                        engine,
                        farm.master_dir,
                        names,
                        builds,
                        layout=args.layout,
                        now=int(time.time()),
                        base_url=farm.url,
                    )
                    engine.dispose()
                elif args.layout == "virtual":  # the virtual builders exist from the first builds
                    engine = engine_for(farm)
                    hist = generate(
                        engine, farm.master_dir, names, 0, layout="virtual", now=int(time.time())
                    )
                    engine.dispose()
                generated = time.perf_counter() - t
                print(f"{label}: generated in {generated:.0f} s", file=sys.stderr)
                row = measure(label, farm, hist, names[0].lower())
                row["generate"] = generated
                columns.append(row)
                print(row, file=sys.stderr)
                if dbname and not args.keep:
                    with psycopg.connect(PG + "postgres", autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    print_table(args, columns)


def farm_builds(farm: LocalFarm) -> int:
    engine = engine_for(farm)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT COUNT(*) FROM builds").scalar()
    finally:
        engine.dispose()


def print_table(args, columns: list[dict]) -> None:
    load = os.getloadavg()
    print(
        f"history: top {args.packages:,} packages x 5 platforms, layout {args.layout}, "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores"
    )
    first = [
        "builds",
        "generate",
        "db",
        "db after retention",
        "janitor",
        "start",
        "reconfig",
        "rss",
    ]
    keys = list(dict.fromkeys([*first, *(k for c in columns for k in c if k != "label")]))
    print("| | " + " | ".join(c["label"] for c in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for key in keys:
        print(f"| {key} | " + " | ".join(fmt(key, c.get(key)) for c in columns) + " |")


if __name__ == "__main__":
    main()
