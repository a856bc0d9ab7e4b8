"""A year of a farm's history, written straight into Buildbot's database.

`generate()` fills a database made by `buildbot create-master` (Buildbot's own
schema) the way the farm records builds: per build a buildset with its
properties, a build request on the platform's real builder, a build with the
farm's properties, its steps (resolve ... publish, or fewer when it was skipped or
failed), a `stdio` log per step with a few lines in one chunk, and the farm's
status rows (its `wheelfarm_status` table, as the status service writes them).
Rows are bulk inserted through SQLAlchemy Core, in chronological order (ids grow with time, as
Buildbot's janitor expects), on SQLite or PostgreSQL.

`layout="platform"` puts each build on its platform's builder (`build-PLATFORM`),
the farm's design; `layout="virtual"` on a virtual builder per package and
platform (`PKG · PLATFORM`, tagged with both), the design before issue 14.

bench/history.py measures a master on such a database; tests/test_e2e_history.py
checks the views and the retention job on a small one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from buildbot.util.sautils import hash_columns
from packaging.utils import canonicalize_name

from wheelfarm.registry.platforms import PLATFORMS, SUPPORTED_PYTHONS
from wheelfarm.state.db import StateDB
from wheelfarm.state.status import Row, StatusRecords, row_data, row_status

STEPS = ["resolve", "fetch", "build", "repair", "check", "test", "upload", "metadata", "publish"]
MASTER_STEPS = {"resolve", "metadata", "publish"}
SUCCESS, WARNINGS, FAILURE, SKIPPED, EXCEPTION, RETRY, CANCELLED = 0, 1, 2, 3, 4, 5, 6
DAY = 86400
BATCH = 20_000
PYPI = "https://pypi.org"
PYPI_REASON = "new release on PyPI"
REASONS = ["The web-page 'force' button was pressed by 'admin'", PYPI_REASON, "cascade", "rollout"]


def name_hash(name: str) -> str:
    return hash_columns(name)


@dataclass
class History:
    """What was generated: enough for a test to know the right answers."""

    builds: int = 0
    steps: int = 0
    logs: int = 0
    start: int = 0  # first build's start (epoch seconds)
    end: int = 0
    builder_ids: dict[str, int] = field(default_factory=dict)  # builder name -> id
    # per builder id: its last 50 builds as (number, package, version, python, results)
    last_builds: dict[int, list[tuple]] = field(default_factory=dict)
    status_rows: int = 0
    latest: tuple[str, int, int] | None = None  # the newest build: builder name, id, number


def _log_text(step: str, package: str, version: str, python: str, results: int) -> bytes:
    lines = {
        "resolve": [f"{package}=={version}: {package}-{version}.tar.gz", "sha256 " + "ab" * 32],
        "fetch": [f"fetching {package}-{version}.tar.gz", "sha256 verified"],
        "build": [
            f"creating venv for python{python}",
            f"installing build requirements for {package}",
            f"running build_wheel for {package}-{version}",
            f"built {package}-{version}-cp{python.replace('.', '')}-linux_x86_64.whl",
        ],
        "repair": ["auditwheel repair --plat manylinux_2_28", "fixed-up wheel written"],
        "check": ["auditwheel show: manylinux_2_28", "check-wheel-contents: OK"],
        "test": [f"import {package}: ok", "1 module imported, 0 skipped"],
        "upload": [f"uploading {package}-{version}.whl"],
        "metadata": [f"METADATA: {package} {version}"],
        "publish": [f"published {package}-{version}.whl"],
    }[step]
    if results == FAILURE:
        lines.append(f"{step} failed: exit 1")
    return "".join(f"o{line}\n" for line in lines).encode()


def _weights(n: int) -> list[float]:
    # popular packages release (and are rebuilt) more often
    return [1.0 / (i + 10) ** 0.8 for i in range(n)]


def generate(
    engine: sa.engine.Engine,
    master_dir: Path,
    packages: list[str],
    builds: int,
    *,
    layout: str = "platform",
    now: int,
    days: int = 365,
    base_url: str = "http://127.0.0.1:8010/",
    seed: int = 1,
) -> History:
    """Insert `builds` finished builds spread over `days` days before `now`."""
    rnd = random.Random(seed)
    meta = sa.MetaData()
    meta.reflect(engine)
    t = meta.tables
    hist = History(start=now - days * DAY, end=now)
    platforms = list(PLATFORMS)
    pythons = list(SUPPORTED_PYTHONS)

    with engine.begin() as conn:
        master_id = _insert_one(conn, t["masters"], name="history:/generated", active=0)
        worker_ids = {
            p: _insert_one(conn, t["workers"], name=f"history-{p}", info="{}", paused=0, graceful=0)
            for p in platforms
        }
        real = {}
        for p in platforms:
            name = PLATFORMS[p].builder_name
            real[p] = _insert_one(conn, t["builders"], name=name, description=None)
            hist.builder_ids[name] = real[p]
        virtual: dict[tuple[str, str], int] = {}
        if layout == "virtual":
            tag_ids = {}
            for name in [*packages, *platforms]:
                if name not in tag_ids:
                    tag_ids[name] = len(tag_ids) + 1
            conn.execute(
                t["tags"].insert(),
                [{"id": i, "name": n, "name_hash": name_hash(n)} for n, i in tag_ids.items()],
            )
            rows, tags = [], []
            next_id = max(real.values()) + 1
            for pkg in packages:
                for p in platforms:
                    name = f"{pkg} · {p}"
                    virtual[(pkg, p)] = next_id
                    hist.builder_ids[name] = next_id
                    rows.append({"id": next_id, "name": name, "name_hash": name_hash(name)})
                    tags += [
                        {"builderid": next_id, "tagid": tag_ids[pkg]},
                        {"builderid": next_id, "tagid": tag_ids[p]},
                    ]
                    next_id += 1
            for chunk in _chunks(rows):
                conn.execute(t["builders"].insert(), chunk)
            for chunk in _chunks(tags):
                conn.execute(t["builders_tags"].insert(), chunk)

    cum_weights = list(itertools.accumulate(_weights(len(packages))))
    records = StatusRecords()  # the newest row of each target, as the master keeps it
    versions: dict[str, int] = {}
    numbers: dict[int, int] = {}
    span = days * DAY
    times = sorted(rnd.randrange(span) for _ in range(builds))
    buffers: dict[str, list[dict]] = {
        k: []
        for k in (  # parents first
            "sourcestamps",
            "changes",
            "buildsets",
            "buildset_sourcestamps",
            "buildset_properties",
            "buildrequests",
            "builds",
            "build_properties",
            "steps",
            "logs",
            "logchunks",
        )
    }
    step_id = log_id = 0
    releases: dict[tuple[str, str], int] = {}  # (package, version) -> its change's sourcestamp
    with engine.begin() as conn:
        for i, offset in enumerate(times, 1):
            pkg = rnd.choices(packages, cum_weights=cum_weights)[0] if builds > 1 else packages[0]
            platform = rnd.choice(platforms)
            python = rnd.choice(pythons)
            versions.setdefault(pkg, rnd.randrange(1, 40))
            if rnd.random() < 0.02:
                versions[pkg] += 1  # a new release
            version = f"{versions[pkg] // 10}.{versions[pkg] % 10}"
            roll = rnd.random()
            if roll < 0.70:
                results, nsteps = SUCCESS, len(STEPS)
            elif roll < 0.90:
                results, nsteps = SKIPPED, 1  # the wheel was there: ends after resolve
            elif roll < 0.98:
                results, nsteps = FAILURE, rnd.randrange(2, len(STEPS))
            else:
                results, nsteps = CANCELLED, rnd.randrange(1, 4)
            started = hist.start + offset
            builderid = virtual.get((pkg, platform)) or real[platform]
            number = numbers[builderid] = numbers.get(builderid, 0) + 1
            reason = rnd.choice(REASONS)
            state = {
                SUCCESS: "build successful",
                SKIPPED: f"already built: {pkg}-{version}",
                FAILURE: f"failed {STEPS[nsteps - 1]}",
                CANCELLED: "cancelled",
            }[results]
            if layout == "platform":  # as PackageBuild names its target
                state = f"{pkg} {version} py{python}: {state}"
            if reason == PYPI_REASON:
                # the release watcher's change, one per release (the console view's rows)
                ssid = releases.get((pkg, version))
                if ssid is None:
                    ssid = releases[(pkg, version)] = len(releases) + 1
                    buffers["sourcestamps"].append(
                        {
                            "id": ssid,
                            "ss_hash": hash_columns(None, version, PYPI, pkg, "", None),
                            "revision": version,
                            "repository": PYPI,
                            "codebase": "",
                            "project": pkg,
                            "created_at": started - 60,
                        }
                    )
                    buffers["changes"].append(
                        {
                            "changeid": ssid,
                            "author": "PyPI",
                            "comments": f"{pkg} {version} released on PyPI",
                            "revision": version,
                            "revlink": f"{PYPI}/project/{pkg}/{version}/",
                            "when_timestamp": started - 60,
                            "category": "pypi-release",
                            "repository": PYPI,
                            "codebase": "",
                            "project": pkg,
                            "sourcestampid": ssid,
                        }
                    )
                buffers["buildset_sourcestamps"].append(
                    {"id": i, "buildsetid": i, "sourcestampid": ssid}
                )
            buffers["buildsets"].append(
                {
                    "id": i,
                    "reason": reason,
                    "submitted_at": started - 2,
                    "complete": 1,
                    "complete_at": started + 10 * nsteps,
                    "results": results,
                }
            )
            props = {"package": pkg, "platform": platform, "python": python, "version_spec": ""}
            for name, value in props.items():
                buffers["buildset_properties"].append(
                    {
                        "buildsetid": i,
                        "property_name": name,
                        "property_value": json.dumps([value, "Force Build Form"]),
                    }
                )
            buffers["buildrequests"].append(
                {
                    "id": i,
                    "buildsetid": i,
                    "builderid": real[platform],
                    "priority": 0,
                    "complete": 1,
                    "results": results,
                    "submitted_at": started - 2,
                    "complete_at": started + 10 * nsteps,
                    "waited_for": 0,
                }
            )
            buffers["builds"].append(
                {
                    "id": i,
                    "number": number,
                    "builderid": builderid,
                    "buildrequestid": i,
                    "workerid": worker_ids[platform],
                    "masterid": master_id,
                    "started_at": started,
                    "complete_at": started + 10 * nsteps,
                    "locks_duration_s": 0,
                    "state_string": state,
                    "results": results,
                }
            )
            wheel = f"{pkg}-{version}-cp{python.replace('.', '')}-none-any.whl"
            bprops = {
                **props,
                "version": version,
                "sdist_sha256": hashlib.sha256(f"{pkg}{version}".encode()).hexdigest(),
                "buildername": PLATFORMS[platform].builder_name,
                "workername": f"history-{platform}",
            }
            if results == SUCCESS:
                bprops["wheel"] = wheel
            for name, value in bprops.items():
                buffers["build_properties"].append(
                    {"buildid": i, "name": name, "value": json.dumps(value), "source": "wheelfarm"}
                )
            failed_step = None
            for n in range(nsteps):
                step_id += 1
                sname = STEPS[n]
                last = n == nsteps - 1
                sres = results if last and results != SUCCESS else SUCCESS
                if sres == SKIPPED:
                    sres = SUCCESS
                urls = []
                if sname == "resolve":
                    urls = [{"name": "package page", "url": f"{base_url}farm/packages/{pkg}"}]
                buffers["steps"].append(
                    {
                        "id": step_id,
                        "number": n,
                        "name": sname,
                        "buildid": i,
                        "started_at": started + 10 * n,
                        "locks_acquired_at": started + 10 * n,
                        "complete_at": started + 10 * n + 10,
                        "state_string": sname,
                        "results": sres,
                        "urls_json": json.dumps(urls),
                        "hidden": 0,
                    }
                )
                if sres == FAILURE:
                    failed_step = (sname, step_id)
                log_id += 1
                text = _log_text(sname, pkg, version, python, sres)
                lines = text.count(b"\n")
                buffers["logs"].append(
                    {
                        "id": log_id,
                        "name": "stdio",
                        "slug": "stdio",
                        "stepid": step_id,
                        "complete": 1,
                        "num_lines": lines,
                        "type": "s",
                    }
                )
                buffers["logchunks"].append(
                    {
                        "logid": log_id,
                        "first_line": 0,
                        "last_line": lines - 1,
                        "content": text,
                        "compressed": 0,
                    }
                )
            hist.builds += 1
            hist.steps += nsteps
            hist.logs += nsteps
            hist.latest = (builderid, number)
            runs = hist.last_builds.setdefault(builderid, [])
            runs.append((number, pkg, version, python, results))
            if len(runs) > 50:
                del runs[:-50]
            row = Row(
                package=canonicalize_name(pkg),
                version=version,
                platform=platform,
                python=python,
                status=row_status(results),
                build_url=f"{base_url}#/builders/{builderid}/builds/{number}",
                finished_at=float(started + 10 * nsteps),
                reason=state,
                wheel=wheel if results == SUCCESS else None,
            )
            if failed_step:
                row.step = failed_step[0]
                row.log_url = f"{base_url}api/v2/logs/{log_id}/raw_inline"
            records.add(row)
            if len(buffers["steps"]) >= BATCH:
                _flush(conn, t, buffers)
        _flush(conn, t, buffers)
        if engine.dialect.name == "postgresql":
            # explicit ids do not move PostgreSQL's sequences: move them
            for name in ("masters", "workers", "builders", "tags", "builders_tags", *buffers):
                key = "changeid" if name == "changes" else "id"
                if key in t[name].c:
                    conn.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{name}', '{key}'), "
                        f"COALESCE((SELECT MAX({key}) FROM {name}), 1))"
                    )
    if hist.latest:
        names = {b: n for n, b in hist.builder_ids.items()}
        hist.latest = (names[hist.latest[0]], *hist.latest)
    state = StateDB(engine.url.render_as_string(hide_password=False), master_dir)
    state.status_add((None, row_data(row)) for row in records.snapshot())
    hist.status_rows = records.count()
    return hist


def _insert_one(conn, table: sa.Table, **values) -> int:
    if "name" in values and "name_hash" in table.c:
        values["name_hash"] = name_hash(values["name"])
    if table.name == "masters":
        values.setdefault("last_active", 0)
    return conn.execute(table.insert().values(**values)).inserted_primary_key[0]


def _chunks(rows: list, size: int = BATCH) -> Iterator[list]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _flush(conn, t: dict, buffers: dict[str, list[dict]]) -> None:
    # the driver's executemany on a plain INSERT: SQLAlchemy's per-row parameter
    # handling would cost more than the database itself
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    for name, rows in buffers.items():  # parents first
        if rows:
            cols = list(rows[0])
            sql = f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"
            conn.exec_driver_sql(sql, [tuple(r[c] for c in cols) for r in rows])
            rows.clear()
