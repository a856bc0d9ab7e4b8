"""A cluster made by the recipe of docs/operators/several-masters.md, then broken.

The blocks of the recipe marked `<!-- recipe -->` run as written, on this one host, with
what only a systemd host with the farm's users has replaced: addresses, ports, the
database's URL and the public URL by the test's own (a free loopback port each),
`systemctl enable --now UNIT` by the unit's ExecStart line under a supervisor that
restarts it as `Restart=always` does (tests/units.py), `runuser -u USER --` and `chown`
by this user. The folders `useradd` and the NFS mount would have made are made first;
after the shared settings are written, the test appends its own registry, rollouts and
fake PyPI to them (the recipe builds the checkout's registry from the real PyPI).

On that cluster (PostgreSQL, a crossbar router, two masters each with a worker):
the router is killed mid-rollout and started again; every connection to the database is
terminated three times during a rollout; a finished toolchain rollout runs again.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import requests

from conftest import ARTIFACTS, PG_URL, free_port, make_farm, write_registry
from fakepypi import FakePyPI
from sdists import make_sdist
from units import Service, rewrite, verify
from wheelfarm.cascade.campaign import BLOCKED, DONE
from wheelfarm.cascade.store import CampaignStore
from wheelfarm.ops.cluster import EXIT_ROUTER_LOST, ROUTER_WAIT
from wheelfarm.paths import CHECKOUT as REPO_ROOT
from wheelfarm.state.db import StateDB

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

RECIPE = REPO_ROOT / "docs" / "operators" / "several-masters.md"
PROXY_CONF = REPO_ROOT / "deploy" / "nginx" / "wheelfarm.conf"
# A small tree: each package waits for its parent.
TREE = {f"t{i:02d}": [f"t{(i - 1) // 2:02d}"] if i else [] for i in range(12)}
REGISTRY = "".join(
    f"  - name: {name}\n    platforms: [linux-x86_64]\n    python: ['3.11']\n"
    + (f"    depends: [{deps[0]}]\n" if deps else "    abi: major\n")
    for name, deps in TREE.items()
)
ROLLOUTS = "schema: 1\nrollouts:\n" + "".join(
    f"  - name: toolchain-{year}\n    toolchain: '{year}.1'\n    max_in_flight: 4\n"
    for year in (2099, 2100)
)
# what stands in for a systemd host with the farm's users
PRELUDE = """\
set -euo pipefail
runuser() { while [ "$1" != "--" ]; do shift; done; shift; "$@"; }
chown() { :; }
systemctl() { [ "$1 $2" = "enable --now" ] && echo "$3" >> "$REQUESTED"; }
"""


def recipe_blocks() -> list[str]:
    page = RECIPE.read_text(encoding="utf-8")
    return re.findall(r"<!-- recipe -->\n```sh\n(.*?)```", page, re.S)


@dataclass
class Cluster:
    home: Path
    db_url: str
    paths: dict[str, str]
    ports: dict[str, int]
    pypi: FakePyPI
    public_url: str
    services: dict[str, Service] = field(default_factory=dict)
    _session: requests.Session | None = None

    def url(self, master: str) -> str:
        return f"http://127.0.0.1:{self.ports[f'{master}_www']}/"

    def api(self, path: str, master: str = "a", **params) -> dict | None:
        """A REST answer, or None while that master is away (restarting)."""
        try:
            r = requests.get(f"{self.url(master)}api/v2/{path}", params=params, timeout=30)
        except requests.ConnectionError:
            return None
        return r.json() if r.status_code == 200 else None

    def rpc(self, path: str, method: str, master: str = "a", **params):
        if self._session is None:
            self._session = requests.Session()
            user, password = self.users_file.read_text().strip().split(":", 1)
            login = f"{self.url(master)}auth/login"
            # it redirects to the public URL, which is no host here
            r = self._session.get(login, auth=(user, password), timeout=30, allow_redirects=False)
            assert r.status_code < 400 and self._session.cookies, r.status_code
        body = {"id": 1, "jsonrpc": "2.0", "method": method, "params": params}
        r = self._session.post(f"{self.url(master)}api/v2/{path}", json=body, timeout=60)
        data = r.json()
        assert "error" not in data, data
        return data["result"]

    @property
    def users_file(self) -> Path:
        return Path(rewrite("/etc/wheelfarm/secrets/web-users", self.paths))

    def start(self, unit: str) -> None:
        log = self.home / "logs" / f"{unit}.log"
        log.parent.mkdir(exist_ok=True)
        self.services[unit] = Service(unit, self.paths, log).start()

    def master_dir(self, master: str) -> Path:
        return Path(rewrite(f"/var/lib/wheelfarm/masters/{master}", self.paths))

    def campaigns(self, prefix: str):
        store = CampaignStore(StateDB(self.db_url, self.home))
        return [c for c in store.all() if c.id.startswith(prefix)]

    def builds(self, campaign: str) -> dict[str, list[dict]]:
        """The campaign's builds per package, oldest first (from master a or b)."""
        for master in ("a", "b"):
            found = self.api("builds", master, property="*", order="buildid", limit=2000)
            if found is not None:
                break
        else:
            return {}
        builds: dict[str, list[dict]] = {}
        for b in found["builds"]:
            props = b["properties"]
            if props.get("campaign", [None])[0] == campaign:
                builds.setdefault(props["package"][0], []).append(b)
        return builds

    def rollout(self, name: str) -> str:
        """Start rollout `name` on master a; the id of its campaign."""
        before = {c.id for c in self.campaigns("rollout-")}
        self.rpc("forceschedulers/rollout", "force", builderNames=["orchestrate"], rollout=name)
        return wait_for(
            f"rollout {name} starting",
            lambda: next(
                (c.id for c in self.campaigns(f"rollout-{name}") if c.id not in before), None
            ),
            timeout=120,
        )

    def finished(self, campaign_id: str, timeout: float):
        def done():
            found = [c for c in self.campaigns(campaign_id) if c.id == campaign_id]
            return found[0] if found and found[0].finished_at else None

        return wait_for(f"campaign {campaign_id} finishing", done, timeout)

    def ready(self) -> bool:
        """Both masters active, each with its worker connected."""
        masters = self.api("masters")
        workers = self.api("workers")
        if masters is None or workers is None:
            return False
        connected = {w["name"] for w in workers["workers"] if w["connected_to"]}
        return (
            sum(m["active"] for m in masters["masters"]) == 2 and {"farm-a", "farm-b"} <= connected
        )


def wait_for(what: str, check, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise TimeoutError(what)


def start_proxy(folder: Path, ports: dict[str, int]) -> subprocess.Popen:
    """nginx with the recipe's site (deploy/nginx/wheelfarm.conf): its upstreams the two
    masters' web ports, plain HTTP on a loopback port instead of its TLS."""
    folder.mkdir()
    site = rewrite(
        PROXY_CONF.read_text(),
        {
            "10.0.0.3:8010": f"127.0.0.1:{ports['a_www']}",
            "10.0.0.4:8010": f"127.0.0.1:{ports['b_www']}",
            "listen 443 ssl;": f"listen 127.0.0.1:{ports['proxy']};",
        },
    )
    site = "\n".join(line for line in site.splitlines() if "ssl_certificate" not in line)
    (folder / "site.conf").write_text(site)
    (folder / "nginx.conf").write_text(
        f"pid {folder}/nginx.pid;\nerror_log {folder}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log {folder}/access.log;\n  client_body_temp_path {folder};\n"
        f"  proxy_temp_path {folder}/proxy;\n  include {folder}/site.conf;\n}}\n"
    )
    proc = subprocess.Popen(
        [
            shutil.which("nginx") or "/usr/sbin/nginx",
            "-p",
            str(folder),
            "-c",
            str(folder / "nginx.conf"),
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "stderr.log").open("wb"),
    )
    wait_for("the proxy", lambda: _listening(ports["proxy"]) or proc.poll() is not None, 30)
    assert proc.poll() is None, (folder / "stderr.log").read_text()
    return proc


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def cluster_db() -> Iterator[str]:
    name = f"wheelfarm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL + "postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_URL + name
        finally:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, cluster_db, request) -> Iterator[Cluster]:
    """The recipe's cluster, every package of the tree forced once (wheels of the
    platform's own toolchain key, which the rollouts then rebuild)."""
    home = tmp_path_factory.mktemp("cluster")
    paths = {
        "/opt/wheelfarm": str(REPO_ROOT),
        "/var/lib/wheelfarm-worker": str(home / "worker-home"),
        "/var/lib/wheelfarm": str(home / "farm-home"),
        "/etc/wheelfarm": str(home / "etc"),
        "/srv/wheelfarm": str(home / "srv"),
    }
    for made_by_useradd_or_mount in ("worker-home", "farm-home", "srv/index"):
        (home / made_by_useradd_or_mount).mkdir(parents=True)
    names = ("router", "a_www", "a_worker", "b_www", "b_worker", "proxy")
    ports = {name: free_port() for name in names}
    public_url = f"http://127.0.0.1:{ports['proxy']}/"  # the recipe's, without its TLS
    pypi = FakePyPI()
    for name in TREE:
        pypi.publish(make_sdist(home / "sdists", name, "1.0", {f"{name}/__init__.py": ""}))
    pypi_url = pypi.start()
    farm = Cluster(home, cluster_db, paths, ports, pypi, public_url)
    addresses = {
        "postgresql://wheelfarm:DBPASSWORD@10.0.0.2/wheelfarm": cluster_db,
        "https://wheels.example.org/": public_url,
        "10.0.0.3:9989": f"127.0.0.1:{ports['a_worker']}",
        "10.0.0.4:9989": f"127.0.0.1:{ports['b_worker']}",
        "10.0.0.2": "127.0.0.1",
        "10.0.0.3": "127.0.0.1",
        "10.0.0.4": "127.0.0.1",
    }
    requested = home / "requested-units"
    proxy = start_proxy(home / "nginx", ports)
    try:
        for number, block in enumerate(recipe_blocks()):
            master = "a" if "master-a" in block else "b" if "master-b" in block else None
            text = re.sub(r"\b8081\b", str(ports["router"]), block)
            if master:  # both masters' hosts use the same ports: here, one host
                text = re.sub(r"\b8010\b", str(ports[f"{master}_www"]), text)
                text = re.sub(r"\b9989\b", str(ports[f"{master}_worker"]), text)
            text = rewrite(text, {**addresses, **paths})
            requested.write_text("")
            done = subprocess.run(
                ["bash", "-c", PRELUDE + text],
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "REQUESTED": str(requested)},
                cwd=home,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, f"recipe block {number}:\n{text}\n{done.stderr}"
            if number == 0:  # the test's registry and PyPI instead of the real ones
                settings = Path(paths["/etc/wheelfarm"]) / "cluster.env"
                (home / "registry").mkdir()
                registry = write_registry(home / "registry" / "packages.yaml", REGISTRY)
                (home / "registry" / "rollouts.yaml").write_text(ROLLOUTS)
                with settings.open("a") as f:
                    f.write(f"WHEELFARM_REGISTRY={registry}\n")
                    f.write(f"WHEELFARM_ROLLOUTS={home / 'registry' / 'rollouts.yaml'}\n")
                    f.write(f"WHEELFARM_PYPI_URL={pypi_url}\n")
            for unit in requested.read_text().split():
                farm.start(unit)
        assert set(farm.services) == {
            "wheelfarm-router",
            "wheelfarm-master@a",
            "wheelfarm-master@b",
            "wheelfarm-worker@farm-a",
            "wheelfarm-worker@farm-b",
        }
        wait_for("both masters and their workers", farm.ready, timeout=300)
        brids = []
        for name in TREE:
            brids += farm.rpc("forceschedulers/force", "force", package=name)[2]
        wait_for(
            "the forced builds",
            lambda: (
                len(
                    [
                        b
                        for b in (farm.api("builds", complete="true", limit=500) or {"builds": []})[
                            "builds"
                        ]
                        if b["buildrequestid"] in brids and b["results"] == 0
                    ]
                )
                == len(TREE)
            ),
            timeout=600,
        )
        yield farm
    finally:
        for unit in sorted(farm.services, key=lambda u: ("worker" not in u, "router" in u)):
            farm.services[unit].stop()
        pypi.stop()
        proxy.terminate()
        proxy.wait(30)
        ARTIFACTS.mkdir(exist_ok=True)
        for log in (home / "logs").glob("*.log"):
            (ARTIFACTS / f"cluster-{log.name}").write_bytes(log.read_bytes())
        for master in ("a", "b"):
            twistd = farm.master_dir(master) / "twistd.log"
            if twistd.exists():
                (ARTIFACTS / f"cluster-master-{master}.log").write_bytes(twistd.read_bytes())


def test_the_recipe_runs_as_written(cluster, tmp_path):
    units = ["wheelfarm-router", "wheelfarm-master@a", "wheelfarm-worker@farm-a"]
    checked = verify(units, cluster.paths, tmp_path / "units")
    assert checked.returncode == 0 and not checked.stderr.strip(), checked.stderr
    masters = cluster.api("masters")["masters"]
    assert sorted(m["name"].rsplit("/", 1)[-1] for m in masters if m["active"]) == ["a", "b"]
    # one public URL: the builds' links name it on every page, whichever master built
    for master in ("a", "b"):
        for name in TREE:
            page = requests.get(f"{cluster.url(master)}farm/packages/{name}", timeout=30).text
            assert f"{name}-1.0-py3-none-any.whl" in page
            links = set(re.findall(r"href=['\"]([^'\"]*)#/builders/", page))
            assert links == {cluster.public_url}, (master, name, links)
    # the proxy serves the one public URL: the index and the UI's API, from either master
    assert (
        len(requests.get(f"{cluster.public_url}api/v2/masters", timeout=30).json()["masters"]) == 2
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-cache-dir",
            "--only-binary",
            ":all:",
            "--index-url",
            f"{cluster.public_url}simple/",
            "--target",
            str(tmp_path / "t"),
            *TREE,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list((tmp_path / "t").glob("t*-1.0.dist-info"))) == len(TREE)
    # the release watcher is configured on both and runs on one
    (watcher,) = [c for c in cluster.api("changesources")["changesources"] if "pypi" in c["name"]]
    assert watcher["master"] is not None
    # every master has every worker's secret, and the secrets are the owner's only
    secrets = Path(rewrite("/etc/wheelfarm/secrets", cluster.paths))
    assert {p.name for p in secrets.iterdir()} == {"worker-farm-a", "worker-farm-b", "web-users"}
    assert all(p.stat().st_mode & 0o077 == 0 for p in secrets.iterdir())
    settings = Path(rewrite("/etc/wheelfarm/cluster.env", cluster.paths))  # the DB password
    assert settings.stat().st_mode & 0o077 == 0
    # bounded log lines: Buildbot logs each step's arguments (no registry in them)
    for master in ("a", "b"):
        lines = (cluster.master_dir(master) / "twistd.log").read_text().splitlines()
        assert max(len(line) for line in lines) < 10_000
        assert not [line for line in lines if "releaseLocks" in line and "Package(" in line]


def test_the_router_killed_mid_rollout_and_started_again(cluster):
    router = cluster.services["wheelfarm-router"]
    masters = [cluster.services[f"wheelfarm-master@{m}"] for m in ("a", "b")]
    exits_before = [len(m.exits) for m in masters]
    campaign_id = cluster.rollout("toolchain-2099")
    wait_for(
        "a third of the rollout built",
        lambda: (
            sum(any(b["results"] == 0 for b in v) for v in cluster.builds(campaign_id).values())
            >= 4
        ),
        timeout=300,
    )
    router.stop(sig=signal.SIGKILL)  # with its worker processes, and kept down a while
    for master, before in zip(masters, exits_before, strict=True):  # both exit, at once
        assert master.wait_exit(before + 1, timeout=60)[before:] == [EXIT_ROUTER_LOST]
    time.sleep(5)
    cluster.start("wheelfarm-router")  # back: no person does anything else
    campaign = cluster.finished(campaign_id, timeout=900)
    assert campaign.counts()[DONE] == len(TREE) and campaign.counts()[BLOCKED] == 0
    wait_for("both masters back", cluster.ready, timeout=300)
    built = cluster.builds(campaign_id)
    assert sorted(built) == sorted(TREE)
    for name, builds in built.items():  # once; cut short by the router's loss at most once
        ended = [b["results"] for b in builds if b["results"] != 5]
        assert ended == [0] or (ended == [3] and len(builds) == 2), (name, ended)
    # run again: its toolchain's wheels are all in the index (identical bytes) -> no build
    again = cluster.finished(cluster.rollout("toolchain-2099"), timeout=300)
    assert all(node.found for node in again.nodes.values()), again.nodes
    assert cluster.builds(again.id) == {}


def terminate_farm_connections(db_url: str) -> int:
    name = db_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_URL + "postgres", autocommit=True) as conn:
        return conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()[0]


def test_every_database_connection_dropped_three_times_during_a_rollout(cluster):
    campaign_id = cluster.rollout("toolchain-2100")
    for round_, done in enumerate((2, 5, 8)):
        wait_for(
            f"{done} packages of the rollout built",
            lambda done=done: (
                sum(any(b["results"] == 0 for b in v) for v in cluster.builds(campaign_id).values())
                >= done
            ),
            timeout=300,
        )
        assert terminate_farm_connections(cluster.db_url) > 0, round_
        for master in ("a", "b"):  # Buildbot's API answers at once: its pool checks first
            r = requests.get(f"{cluster.url(master)}api/v2/builders", timeout=30)
            assert r.status_code == 200, (round_, master, r.text[:300])
    campaign = cluster.finished(campaign_id, timeout=900)
    assert campaign.counts()[DONE] == len(TREE) and campaign.counts()[BLOCKED] == 0
    built = cluster.builds(campaign_id)
    assert {name: [b["results"] for b in v] for name, v in built.items()} == {
        name: [0] for name in TREE
    }
    for master in ("a", "b"):
        log = (cluster.master_dir(master) / "twistd.log").read_text()
        assert "Tried to stop a LoopingCall" not in log


def test_a_master_started_while_the_router_is_away_exits_for_its_supervisor(tmp_path, pg_url):
    # it waited for ever for its first connection (Buildbot's connector tries once)
    farm = make_farm(tmp_path, write_registry(tmp_path / "packages.yaml", REGISTRY), pg_url)
    farm.create()
    away = f"ws://127.0.0.1:{free_port()}/ws"  # nothing listens there
    env = {
        **os.environ,
        "WHEELFARM_MULTI_MASTER": "true",
        "WHEELFARM_MQ_ROUTER_URL": away,
    }
    started = time.monotonic()
    done = subprocess.run(
        [REPO_ROOT / ".venv" / "bin" / "buildbot", "start", "--nodaemon", farm.master_dir],
        env=env,
        capture_output=True,
        timeout=300,
    )
    took = time.monotonic() - started
    log = (farm.master_dir / "twistd.log").read_text()
    assert done.returncode == EXIT_ROUTER_LOST, log[-3000:]
    assert f"could not join the message router at {away} in {ROUTER_WAIT} s" in log
    assert ROUTER_WAIT <= took < ROUTER_WAIT + 120
