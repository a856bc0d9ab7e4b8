"""The attack corpus of the trust-boundary issue, through a real master and worker, once
with bubblewrap and once with a podman worker (the bullseye image): one hostile sdist
per class, each varied, then the checks a volunteer and a wheel's user would make.

Classes: (1) requirement strings as options, paths and URLs, static and dynamic, and
an sdist among the build requirements that tries the network; (2) links where the host
reads or cleans; (3) poisoning what outlives the build (the frontend, the venv, the
caches, farmtool); (4) forging the build record; (5) making the host read too much;
(6) the network and capabilities of every phase; (7) limits. A registry test command
tries the same from the test step. (8), a jammed non-root worker, is
tests/test_e2e_nonroot.py.

The farm runs every package once (a module-scoped fixture per isolation); each test
checks one promise over all of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import threading
import uuid
from pathlib import Path

import pytest
import requests

import hostile
from conftest import ARTIFACTS, build_logs, make_farm, wait_builds, write_registry
from fakepypi import FakePyPI
from outside import host_address
from sdists import make_sdist

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not shutil.which("bwrap"), reason="needs bubblewrap (make test has it)"),
]

# Small limits, so that each trips in seconds (the settings' defaults are generous).
LIMITS = {
    "build_memory_mb": 512, "build_processes": 128, "build_time_seconds": 300,
    "test_time_seconds": 20, "disk_mb": 200, "log_mb": 1, "wheel_mb": 8,
    "wheel_unpacked_mb": 64,
}  # fmt: skip

# The registry test command's attack (a test-command author): the same snooping, plus
# what outlives its step, forged lines, the facts and farmtool.
TEST_ATTACK = (
    hostile.SNOOP.replace("attempt(", "attempt_(")
    + """
import subprocess, sys
attempt_("write farmtool", lambda: open(build + "/farmtool.pyz", "ab").write(b"x"))
attempt_("write facts", lambda: open(build + "/.facts/test.json", "w").write("{}"))
subprocess.Popen([sys.executable, "-c", "import time\\nwhile True: time.sleep(0.1)", marker],
                 start_new_session=True, stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print('toolchain: {"compiler": "forged-by-test"}')
print("error: forged-error-by-test", file=sys.stderr)
"""
)
TEST_PRELUDE = """
import json, os, socket
def attempt_(name, action):
    try:
        action()
        print(f"hostile test {name}: done", flush=True)
    except Exception as e:
        print(f"hostile test {name}: refused ({type(e).__name__})", flush=True)
globals().update(json.loads(%r))
"""
SLEEPER = "import time; time.sleep(600)"

# package -> (its attack, its build requirements, what its build ends with)
ATTACKS = {
    "req-option": ("", ["setuptools>=61", "--find-links", "{worker}", "evildep"],
                   "build failed: bad requirement '--find-links' in [build-system] requires"),
    "req-path": ("", ["{secret_file}"],
                 "in [build-system] requires: not a PEP 508 requirement"),
    "req-url": ("", ["evildep @ file:///etc/passwd"],
                "build failed: bad requirement 'evildep @ file:///etc/passwd' in [build-system] "
                "requires: a URL or path, not a project"),
    "req-dynamic": (hostile.REQUIRES_OPTION, [],
                    "build failed: bad requirement '--index-url=http://"),
    "uses-netdep": (hostile.SNOOP, ["netdep"], None),
    "uses-plantdep": ("", ["plantdep"], "writes the dist-info of another distribution"),
    "env-attack": (hostile.ENV_ATTACK, [], None),
    "url-dependency": (hostile.URL_DEPENDENCY, [],
                       "build failed: bad requirement 'evil @ http://127.0.0.1:"),
    "link-wheel": (hostile.LINK_WHEEL, [],
                   "build failed: wheel link_wheel-1.0-py3-none-any.whl is not a regular file"),
    "fifo-wheel": (hostile.FIFO_WHEEL, [],
                   "build failed: wheel fifo_wheel-1.0-py3-none-any.whl is not a regular file"),
    "link-plant": (hostile.LINK_PLANT, [], None),
    "poisoner": (hostile.POISONER, ["setuptools>=61"], None),
    "forger": (hostile.FORGER, ["setuptools>=61"], None),
    "bomb": (hostile.BOMB, [], "wheel limit: bomb-1.0-py3-none-any.whl unpacks to 2 GiB, "
             "over 64 MiB"),
    "big-wheel": (hostile.BIG_WHEEL, [], "wheel limit: big_wheel-1.0-py3-none-any.whl is "),
    "long-lines": (hostile.LONG_LINES, [], None),
    "fork-bomb": (hostile.FORK_BOMB, [], "build failed: process limit (128) reached"),
    "memory-hog": (hostile.MEMORY_HOG, [], "build failed: memory limit (512 MiB) exceeded"),
    "disk-fill": (hostile.DISK_FILL, [], "build failed: disk limit (200 MiB) exceeded"),
}  # fmt: skip
TEST_COMMANDS = {"hostile-test": None, "sleeper": "tests failed: time limit (20 s) exceeded"}
ORDER = ["cleanpkg", *ATTACKS, *TEST_COMMANDS]


class Listener:
    """A TCP listener that counts who reached it: nothing of a build may."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen()
        self.host, self.port = self.sock.getsockname()[:2]
        self.hits = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()


def _processes_with(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline and b"pytest" not in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace")[:200])
    return found


def _snapshot(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple]:
    """Every file under `folder` (links not followed) but those under `skip` names."""
    found = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in (f for f in files if f not in skip):
            path = os.path.join(root, name)
            info = os.lstat(path)
            found[path] = (info.st_size, info.st_mtime_ns, info.st_ino)
    return found


class Attacked:
    """A farm that has built every package of the corpus once, and what it saw."""

    def __init__(self, root: Path, contained: str, image: str | None) -> None:
        self.contained = contained
        self.mark = uuid.uuid4().hex
        farm_home = root / "farm"
        self.worker = farm_home / "workers" / "local"
        self.build_dir = self.worker / "build-linux-x86_64" / "build"
        self.other = self.worker / "build-linux-aarch64"
        self.secrets = {"env": f"env-secret-{uuid.uuid4().hex}",
                        "other": f"other-builder-{uuid.uuid4().hex}",
                        "file": f"secret-file-{uuid.uuid4().hex}"}  # fmt: skip
        # this machine's own address and its loopback: no phase may reach either
        self.outside, self.loopback = Listener(host_address()), Listener("127.0.0.1")
        kw: dict = {"settings_overrides": dict(LIMITS)}
        if image:
            kw["container"] = "podman"
            kw["settings_overrides"]["build_images"] = {
                "linux-x86_64": {"image": image, "policy": "manylinux_2_31_x86_64"}
            }
        os.environ["AWS_SECRET_ACCESS_KEY"] = self.secrets["env"]  # the worker's environment
        self.pypi = FakePyPI()
        registry = root / "packages.yaml"
        registry.write_text("")  # written below, once the context is known
        self.farm = make_farm(root, registry, pypi_url="", **kw)
        context = {
            "worker": str(self.worker), "master": str(self.farm.master_dir),
            "users_file": str(self.farm.users_file), "other": str(self.other),
            "secret_file": str(self.worker / "secret-file.txt"), "www_port": self.farm.www_port,
            "outside_host": self.outside.host, "outside_port": self.outside.port,
            "loopback_port": self.loopback.port, "home": str(Path.home()),
            "build": str(self.build_dir), "marker": self.mark,
        }  # fmt: skip
        self._publish(root / "sdists", context)
        self.farm.pypi_url = self.pypi.start()
        write_registry(registry, self._registry(context))
        try:
            self._run()
        except BaseException:
            self.stop()
            raise

    def _run(self) -> None:
        self.farm.create()
        self.farm.start()
        self.other.mkdir(parents=True)
        (self.other / "secret.txt").write_text(self.secrets["other"])
        (self.worker / "secret-file.txt").write_text(self.secrets["file"] + "\n")
        tac = (self.worker / "buildbot.tac").read_text()
        self.secrets["worker password"] = tac.split("passwd = ")[1].split("\n")[0].strip("'\"")
        self.secrets["admin password"] = self.farm.add_user("admin")
        self.home_before = set(os.listdir(Path.home()))
        self.worker_before = _snapshot(self.worker, skip=("build", "twistd.log"))
        self.builds: dict[str, dict] = {}
        try:
            for package in ORDER:
                (self.builds[package],) = wait_builds(self.farm, self.farm.force(package), 900)
            self.survivors = _processes_with(self.mark)
            (self.builds["cleanpkg again"],) = wait_builds(
                self.farm, self.farm.force("cleanpkg", rebuild=True), 900
            )
        finally:
            self.pypi.stop()
        self.logs = {name: build_logs(self.farm, build) for name, build in self.builds.items()}

    def _publish(self, sdists: Path, context: dict) -> None:
        self.pypi.publish(
            make_sdist(sdists, "cleanpkg", "1.0", {"cleanpkg/__init__.py": "X = 1\n"})
        )
        netdep = hostile.NETDEP_SETUP.replace("{context!r}", repr(json.dumps(context)))
        self.pypi.publish(hostile.hostile_sdist(sdists, "netdep", "", {}, setup_py=netdep))
        plant = hostile.PLANTDEP_SETUP
        self.pypi.publish(hostile.hostile_sdist(sdists, "plantdep", "", {}, setup_py=plant))
        for name, (attack, requires, _) in ATTACKS.items():
            requires = [r.format(**context) for r in requires]
            path = hostile.hostile_sdist(sdists, name, attack, context, requires=requires)
            self.pypi.publish(path)
        for name in TEST_COMMANDS:
            self.pypi.publish(
                make_sdist(sdists, name, "1.0", {f"{name.replace('-', '_')}/__init__.py": ""})
            )

    def _registry(self, context: dict) -> str:
        entries = ""
        for name in ORDER:
            entries += f'  - name: {name}\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n'
        # build.env naming places of the package's own source tree (see hostile.ENV_ATTACK)
        src = f"{self.build_dir}/.buildsrc/env_attack-1.0"
        env = json.dumps({"CC": f"{src}/bin/cc", "TMPDIR": src, "XDG_CACHE_HOME": src})
        entries = entries.replace(
            '  - name: env-attack\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n',
            '  - name: env-attack\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n'
            f"    build:\n      env: {env}\n",
        )
        code = (TEST_PRELUDE % json.dumps(context)) + TEST_ATTACK
        hostile_test = json.dumps(["python", "-c", code])
        sleeper = json.dumps(["python", "-c", SLEEPER])
        entries = entries.replace(
            '  - name: hostile-test\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n',
            f'  - name: hostile-test\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n'
            f"    test:\n      command: {hostile_test}\n",
        )
        return entries.replace(
            '  - name: sleeper\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n',
            f'  - name: sleeper\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n'
            f"    test:\n      command: {sleeper}\n",
        )

    def record(self, package: str) -> dict:
        props = {k: v[0] for k, v in self.builds[package]["properties"].items()}
        url = f"{self.farm.url}simple/{props['package']}/{props['wheel']}.json"
        return requests.get(url, timeout=10).json()

    def stop(self) -> None:
        self.pypi.stop()
        self.farm.stop()
        os.environ.pop("AWS_SECRET_ACCESS_KEY", None)
        for listener in (self.outside, self.loopback):
            listener.sock.close()
        log = self.farm.master_dir / "twistd.log"
        if log.exists():
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / f"attacks-{self.contained}-master.log").write_bytes(log.read_bytes())


CONTAINED = [
    pytest.param("bubblewrap", id="bubblewrap"),
    pytest.param(
        "podman",
        id="podman",
        marks=[
            pytest.mark.containers,
            pytest.mark.skipif(os.geteuid() != 0, reason="making an image needs root"),
            pytest.mark.skipif(not shutil.which("podman"), reason="needs podman (make test)"),
        ],
    ),
]


@pytest.fixture(scope="module", params=CONTAINED)
def attacked(request, tmp_path_factory) -> Attacked:
    image = request.getfixturevalue("bullseye_image") if request.param == "podman" else None
    farm = Attacked(tmp_path_factory.mktemp(f"attacks-{request.param}"), request.param, image)
    yield farm
    farm.stop()


def test_each_attack_ends_as_the_farm_says(attacked):
    for package in ORDER:
        build = attacked.builds[package]
        expected = ATTACKS.get(package, (None, None, TEST_COMMANDS.get(package)))[2]
        if expected is None:
            assert build["results"] == 0, (package, build["state_string"])
        else:
            assert build["results"] == 2, (package, build["state_string"])
            assert expected in build["state_string"], (package, build["state_string"])
    # the worker keeps building: the clean package after all of them
    assert attacked.builds["cleanpkg again"]["results"] == 0


def test_no_secret_appears_in_any_log(attacked):
    for package, logs in attacked.logs.items():
        for name, text in logs.items():
            for what, secret in attacked.secrets.items():
                assert secret not in text, (package, name, what)
    # and the attacks did run, and were refused, in the build and in the test step
    netdep = "\n".join(attacked.logs["uses-netdep"].values())
    build = attacked.logs["uses-netdep"]["build/stdio"]
    test = attacked.logs["hostile-test"]["test/stdio"]
    for log, who in ((build, "hostile uses-netdep"), (netdep, "hostile netdep"),
                     (test, "hostile test")):  # fmt: skip
        for attempt in ("read tac", "read users", "read secret file", "read other builder",
                        "read facts", "list worker",
                        "environment", "connect master ui", "connect postgres",
                        "connect slirp gateway", "connect outside", "connect loopback listener",
                        "raw socket", "add key", "join keyring", "persistent keyring",
                        "user namespace", "clone user namespace"):  # fmt: skip
            assert f"{who} {attempt}: refused" in log, (who, attempt)


def test_nothing_reached_the_hosts_services_or_left_the_machine(attacked):
    assert (attacked.outside.hits, attacked.loopback.hits) == (0, 0)
    # nobody logged in as admin or forced a build but the test
    forced = [b for b in attacked.builds.values()]
    builds = attacked.farm.api("builds", limit=500)["builds"]
    assert len([b for b in builds if b["builderid"] == forced[0]["builderid"]]) == len(forced)


def test_nothing_was_written_outside_the_builds_own_folders(attacked):
    worker_after = _snapshot(attacked.worker, skip=("build", "twistd.log"))
    changed = {p for p in set(worker_after) | set(attacked.worker_before)
               if worker_after.get(p) != attacked.worker_before.get(p)}  # fmt: skip
    # the worker writes its own log and pid; nothing else of its basedir changes
    assert {Path(p).name for p in changed} <= {"twistd.pid", "twistd.log.1"}, changed
    assert set(os.listdir(Path.home())) == attacked.home_before
    assert (attacked.other / "secret.txt").read_text() == attacked.secrets["other"]
    planted = "\n".join(attacked.logs["link-plant"].values())
    assert "hostile link-plant plant worker link" in planted  # links were planted...
    # ... and the cleaning after them followed none: the worker and master are whole
    assert (attacked.worker / "buildbot.tac").exists()
    assert (attacked.farm.master_dir / "buildbot.tac").exists()
    assert "hostile link-plant hard link to the tac: refused" in planted
    shipped = (attacked.build_dir / "farmtool.pyz").read_bytes()
    sha = hashlib.sha256(shipped).hexdigest()
    assert sha == attacked.record("cleanpkg again")["farmtool"]["sha256"]


def test_nothing_the_build_left_reaches_a_later_build(attacked):
    poison = "\n".join(attacked.logs["poisoner"].values())
    tried = [ln for ln in poison.splitlines() if ln.startswith("hostile poisoner poison")]
    assert len(tried) >= 6 and all(": refused" in ln for ln in tried), tried
    props = [{k: v[0] for k, v in attacked.builds[n]["properties"].items()}["published"]
             for n in ("cleanpkg", "cleanpkg again")]  # fmt: skip
    assert props[1]["filename"] == props[0]["filename"]
    assert props[1]["sha256"] == props[0]["sha256"]  # the untouched worker's bytes
    assert attacked.survivors == [] and _processes_with(attacked.mark) == []


def test_the_registrys_environment_never_reaches_the_trusted_side(attacked):
    """build.env named a CC, a TMPDIR and a cache home inside the package's own tree: the
    backend got them, nothing outside the sandbox ran or wrote there."""
    log = attacked.logs["env-attack"]["build/stdio"]
    assert "hostile env-attack the backend sees its CC: done" in log
    assert not (attacked.worker / "env-attack-ran").exists()
    record = attacked.record("env-attack")
    assert "forged" not in json.dumps(record) and "9.9.9" not in json.dumps(record)


def test_every_published_record_is_the_farms_own(attacked):
    from wheelfarm.pipeline.toollock import worker_lock

    for package in ("forger", "poisoner", "uses-netdep", "link-plant", "hostile-test",
                    "long-lines", "env-attack"):  # fmt: skip
        record = attacked.record(package)
        text = json.dumps(record)
        assert "forged" not in text and "9.9.9" not in text, package
        toolchain = record["toolchain"]
        assert toolchain["build"] == worker_lock().versions["build"], package
        assert set(toolchain["build_env"]) <= {"setuptools", "netdep"}, (package, toolchain)
        assert "built_against" not in record or "cleanpkg" not in record["built_against"]
        isolated = "bubblewrap" if attacked.contained == "bubblewrap" else "container (podman)"
        assert record["isolation"] == {"build": isolated, "test": isolated}
    netdep = attacked.record("uses-netdep")["toolchain"]["build_env"]["netdep"]
    assert netdep["built_from_sdist"] is True and netdep["from"] == "elsewhere"
    steps = {s["name"]: s for s in attacked.farm.api(
        f"builds/{attacked.builds['hostile-test']['buildid']}/steps")["steps"]}  # fmt: skip
    assert steps["test"]["state_string"] == "imported 1 modules; tests passed"


def test_a_steps_log_is_bounded(attacked):
    log = attacked.logs["long-lines"]["build/stdio"]
    assert len(log) < 2 * LIMITS["log_mb"] << 20
    assert "truncated" in log
