"""The farm's systemd units (deploy/systemd/) run without systemd, for the tests: these
machines' PID 1 is not systemd. A `Service` runs a unit's `ExecStart` line with the
environment its `Environment=` and `EnvironmentFile=` lines give, in a clean
environment as systemd does, and starts it again `RestartSec` seconds after it exits
(`Restart=always`). Paths are rewritten by a table (the install's paths -> the test's).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from wheelfarm.paths import CHECKOUT as REPO_ROOT

UNITS = REPO_ROOT / "deploy" / "systemd"
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# This machine's way to PyPI (its CA bundle, a proxy), which a host gives its units by a
# drop-in (`Environment=`): passed through from the test's environment.
NETWORK = re.compile(r"(SSL_CERT_\w+|REQUESTS_CA_BUNDLE|PIP_\w+|UV_\w+|(?i:\w*_proxy))")


def rewrite(text: str, table: Mapping[str, str]) -> str:
    """`text` with each key of `table` replaced by its value, longest key first."""
    for old in sorted(table, key=len, reverse=True):
        text = text.replace(old, table[old])
    return text


def read_unit(name: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file's (key, value) lines per section; `name` like `wheelfarm-master@a`."""
    template = re.sub(r"@[^.]*$", "@", name)
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for raw in (UNITS / f"{template}.service").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections.setdefault(current, [])
            continue
        key, _, value = line.partition("=")
        sections[current].append((key.strip(), value.strip()))
    return sections


def env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and line[0] not in "#;" and "=" in line:
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


class Service:
    """One unit instance, run and restarted as systemd would (see the module)."""

    def __init__(self, name: str, paths: Mapping[str, str], log: Path) -> None:
        self.name, self.log = name, log
        instance = name.partition("@")[2]
        unit = read_unit(name)
        service = unit["Service"]

        def value(text: str) -> str:
            return rewrite(text.replace("%i", instance), paths)

        (exec_start,) = [value(v) for k, v in service if k == "ExecStart"]
        self.argv = shlex.split(exec_start)
        self.restart_sec = float(next((v for k, v in service if k == "RestartSec"), "0.1"))
        assert ("Restart", "always") in service, f"{name}: not Restart=always"
        self.env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", "HOME": str(log.parent)}
        self.env.update({k: v for k, v in os.environ.items() if NETWORK.fullmatch(k)})
        for key, raw in service:
            if key == "EnvironmentFile":
                optional, path = raw.startswith("-"), Path(value(raw.lstrip("-")))
                if path.is_file() or not optional:
                    self.env.update(env_file(path))
            elif key == "Environment":
                for assignment in shlex.split(value(raw)):
                    k, _, v = assignment.partition("=")
                    self.env[k] = v
        self.exits: list[int] = []  # the status of each run that ended
        self.proc: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Service:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()
        return self

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            with self.log.open("ab") as out:
                self.proc = subprocess.Popen(
                    self.argv,
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # its own process group, as its own cgroup
                )
                status = self.proc.wait()
            if self._stopping.is_set():
                return
            self.exits.append(status)
            self._stopping.wait(self.restart_sec)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the whole service (its process group), keeping it supervised."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 60, sig: int = signal.SIGTERM) -> None:
        """As `systemctl stop`: `sig`, then SIGKILL after `timeout`; not restarted."""
        self._stopping.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_exit(self, count: int, timeout: float) -> list[int]:
        """Until the service has exited `count` times in all; the statuses."""
        deadline = time.monotonic() + timeout
        while len(self.exits) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return list(self.exits)


def verify(names: list[str], paths: Mapping[str, str], folder: Path) -> subprocess.CompletedProcess:
    """`systemd-analyze verify` of these unit instances, their paths rewritten (it checks
    that every ExecStart program exists and is executable)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name in names:
        template = re.sub(r"@[^.]*$", "@", name)
        text = (UNITS / f"{template}.service").read_text(encoding="utf-8")
        path = folder / f"{name}.service"
        path.write_text(rewrite(text, paths), encoding="utf-8")
        files.append(str(path))
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
