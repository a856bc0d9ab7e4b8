"""A farm after a year: a real master on a generated history, its views, and retention.

The history (thousands of builds over a year, with steps, logs, PyPI release
changes and the farm's status records) is written into Buildbot's own tables by
bench/historygen.py, the generator bench/history.py measures with a million.
Views are checked in headless Chromium (bench/cdp.py): each must show the rows
the history says it should. Then the retention job (Buildbot's janitor) runs:
logs older than the horizon go, everything else stays.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from conftest import ARTIFACTS, make_farm, status_rows

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from cdp import Browser  # noqa: E402
from historygen import generate  # noqa: E402
from registry_scale import make_registry  # noqa: E402

from wheelfarm.ops.retention import JANITOR  # noqa: E402

pytestmark = pytest.mark.e2e

NAMES = [f"pkg{i:02d}" for i in range(40)]
BUILDS = 3000
HORIZON_DAYS = 90
DAY = 86400
NOT_LOADING = "!/loading/i.test(document.body.innerText)"


def shows(*texts: str) -> str:
    return " && ".join([*(f"document.body.innerText.includes({t!r})" for t in texts), NOT_LOADING])


def chunks_by_age(engine, cutoff: int) -> tuple[int, int]:
    """Log chunks of steps started before `cutoff`, and after it."""
    with engine.connect() as conn:
        old, new = conn.execute(
            sa.text(
                "SELECT SUM(CASE WHEN steps.started_at < :cut THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN steps.started_at >= :cut THEN 1 ELSE 0 END) FROM logchunks "
                "JOIN logs ON logs.id = logchunks.logid JOIN steps ON steps.id = logs.stepid"
            ),
            {"cut": cutoff},
        ).one()
    return old or 0, new or 0


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: conn.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar()
            for t in ("builds", "steps", "logs", "build_properties", "changes")
        }


def test_a_year_of_history_sqlite(tmp_path, request):
    a_year_of_history(tmp_path, request, "sqlite:///state.sqlite")


@pytest.mark.postgres
def test_a_year_of_history_postgresql(pg_url, tmp_path, request):
    a_year_of_history(tmp_path, request, pg_url)


def a_year_of_history(tmp_path, request, db_url: str) -> None:
    """Every view shows the right rows, and retention deletes only what is past the horizon."""
    registry = tmp_path / "packages.yaml"
    registry.write_text(make_registry(NAMES), encoding="utf-8")
    farm = make_farm(
        tmp_path,
        registry,
        db_url=db_url,
        settings_overrides={"log_horizon_days": HORIZON_DAYS, "build_data_horizon_days": 90},
    )
    farm.create()
    if db_url.startswith("sqlite"):
        engine = sa.create_engine(f"sqlite:///{farm.master_dir / 'state.sqlite'}")
    else:
        engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    hist = generate(engine, farm.master_dir, NAMES, BUILDS, now=int(time.time()), base_url=farm.url)
    assert hist.builds == BUILDS and hist.status_rows > 0
    # a wheel and its build record in the index: retention never touches them
    wheel_dir = farm.settings().index_path / "pkg00"
    wheel_dir.mkdir(parents=True)
    wheel = wheel_dir / "pkg00-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x05\x06" + bytes(18))
    record = wheel_dir / "pkg00-1.0-py3-none-any.whl.WHEEL.json"
    record.write_text(json.dumps({"wheel": wheel.name}), encoding="utf-8")

    farm.start()
    try:
        status_before = status_rows(farm)
        assert len(status_before) == hist.status_rows
        check_views(farm, hist)
        check_retention(farm, engine, status_before, wheel, record)
    finally:
        farm.stop()
        log = farm.master_dir / "twistd.log"
        if log.exists():
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / f"{request.node.name}-master.log").write_bytes(log.read_bytes())
        engine.dispose()


def check_views(farm, hist) -> None:
    # one builder per platform, and none per package: the API's answer stays small
    r = requests.get(f"{farm.url}api/v2/builders", timeout=30)
    builders = r.json()["builders"]
    names = {b["name"] for b in builders}
    assert "build-linux-x86_64" in names and not [n for n in names if " · " in n]
    assert len(builders) <= 10 and len(r.content) < 20_000

    newest = farm.api("builds", order="-buildid", limit=1)["builds"][0]
    assert newest["buildid"] == BUILDS
    # the build's summary names its target: package, version, Python
    package, version, python = newest["state_string"].split(":")[0].split(" ")
    assert package in NAMES and python.startswith("py3.")
    (change,) = farm.api("changes", order="-changeid", limit=1)["changes"]
    assert change["comments"].endswith("released on PyPI")
    lx_builder = next(b["builderid"] for b in builders if b["name"] == "build-linux-x86_64")
    lx_newest = farm.api("builds", builderid=lx_builder, order="-number", limit=1)["builds"][0]
    built = [r for r in status_rows(farm) if r["status"] == "built" and r["package"] == "pkg00"]
    assert built

    latest_name, latest_id, latest_number = hist.latest
    with Browser() as browser:
        # Buildbot's home page: the recent builds, each naming its target
        _, _, text = browser.shown(farm.url + "#/", shows(newest["state_string"]))
        assert "recent builds" in text
        # Builders: a row per platform, with its newest builds
        _, asked, text = browser.shown(
            farm.url + "#/builders", shows("build-linux-x86_64", f"({lx_newest['number']})")
        )
        assert not [n for n in text.splitlines() if " · " in n]
        # the waterfall: a column per platform, the newest build of linux-x86_64 in it
        browser.shown(
            farm.url + "#/waterfall", shows("build-linux-x86_64", str(lx_newest["number"]))
        )
        # console and grid: a row per PyPI release, the newest first
        browser.shown(farm.url + "#/console", shows(change["comments"], "build-linux-x86_64"))
        browser.shown(farm.url + "#/grid", shows(change["comments"], "build-linux-x86_64"))
        # a build page: its steps and summary
        _, _, text = browser.shown(
            farm.url + f"#/builders/{latest_id}/builds/{latest_number}",
            shows(latest_name, "resolve", newest["state_string"]),
        )
        # the farm's pages
        browser.shown(farm.url + "farm/packages/", shows(f"{len(NAMES)} packages", "pkg00"))
        browser.shown(farm.url + "farm/packages/pkg00", shows("pkg00", built[-1]["wheel"]))
        browser.shown(farm.url + "farm/campaigns/", "document.readyState == 'complete'")
        browser.shown(farm.url + "farm/workers", shows("Workers", "local"))


def check_retention(farm, engine, status_before, wheel, record) -> None:
    before = counts(engine)
    started = int(time.time())
    old_cutoff = started - HORIZON_DAYS * DAY - 60  # surely past the janitor's horizon
    old_before, _ = chunks_by_age(engine, old_cutoff)
    assert old_before > 1000  # three quarters of a year of builds
    with engine.connect() as conn:
        old_log, recent_log = conn.exec_driver_sql(
            "SELECT MIN(logs.id), MAX(logs.id) FROM logs JOIN steps ON steps.id = logs.stepid"
        ).one()

    farm.rpc(f"forceschedulers/{JANITOR}_force", "force", builderNames=[JANITOR])
    janitor_id = next(
        b["builderid"] for b in farm.api("builders")["builders"] if b["name"] == JANITOR
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        builds = farm.api("builds", builderid=janitor_id, complete="true")["builds"]
        if builds:
            break
        time.sleep(1)
    else:
        raise TimeoutError("the retention job did not finish")
    assert builds[0]["results"] == 0, builds[0]["state_string"]
    finished = int(time.time())

    # the logs past the horizon are gone, the recent ones all stay
    assert chunks_by_age(engine, old_cutoff)[0] == 0
    recent_cutoff = finished - HORIZON_DAYS * DAY + 60
    with engine.connect() as conn:
        recent_left = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM logs JOIN steps ON steps.id = logs.stepid "
                "LEFT JOIN logchunks ON logchunks.logid = logs.id "
                "WHERE steps.started_at >= :cut AND logchunks.logid IS NULL"
            ),
            {"cut": recent_cutoff},
        ).scalar()
    assert recent_left == 0  # no recent log lost its lines
    old_text = requests.get(f"{farm.url}api/v2/logs/{old_log}/raw", timeout=30)
    assert "fetching" not in old_text.text and "resolve" not in old_text.text
    recent_text = requests.get(f"{farm.url}api/v2/logs/{recent_log}/raw", timeout=30)
    assert recent_text.ok and len(recent_text.text) > 10

    # builds, steps, properties and changes stay (plus the janitor's own build);
    # the wheels, their build records and the farm's status records are untouched
    after = counts(engine)
    assert after["builds"] == before["builds"] + 1
    assert after["changes"] == before["changes"]
    assert after["build_properties"] >= before["build_properties"]
    assert status_rows(farm) == status_before
    assert wheel.read_bytes().startswith(b"PK") and record.is_file()
