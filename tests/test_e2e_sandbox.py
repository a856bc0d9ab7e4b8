"""A hostile package through a real master and worker, contained by bubblewrap and by a
podman container: its setup.py and its test command try everything a stranger's code
could try on a volunteer's machine, and nothing of it works, shows, stays behind or
reaches the record."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest
import requests

from conftest import wait_builds, write_registry
from fakepypi import FakePyPI
from sdists import make_sdist

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not shutil.which("bwrap"), reason="needs bubblewrap (make test has it)"),
]

FARMTOOL = Path(__file__).resolve().parents[1] / "master" / "wheelfarm" / "build" / "worker_side"

# Runs in the package's setup.py (phase "build") and in its test command ("test").
ATTACK = """
import os, subprocess, sys
WORKER, OTHER, HOME, MARK, BUILD = {worker!r}, {other!r}, {home!r}, {mark!r}, {build!r}
# outlives the step if it can: rewrites every wheel of the build dir for a minute
LINGER = '''
import glob, sys, time
build = sys.argv[1]
time.sleep(2)
end = time.time() + 60
while time.time() < end:
    for path in glob.glob(build + "/dist/*/*.whl") + [build + "/lingered"]:
        try:
            open(path, "wb").write(b"tampered")
        except OSError:
            pass
    time.sleep(0.1)
'''

def attempt(phase, name, action):
    try:
        print(f"hostile {{phase}} {{name}}: done {{action()!r}}")
    except Exception as e:
        print(f"hostile {{phase}} {{name}}: refused ({{type(e).__name__}})")

def attack(phase):
    attempt(phase, "read tac", lambda: open(WORKER + "/buildbot.tac").read())
    attempt(phase, "list basedir", lambda: os.listdir(WORKER))
    attempt(phase, "read other builder", lambda: open(OTHER + "/secret.txt").read())
    attempt(phase, "environment", lambda: dict(os.environ))
    attempt(phase, "write basedir", lambda: open(WORKER + "/hostile-" + MARK, "w").write("x"))
    attempt(phase, "write home", lambda: open(HOME + "/hostile-" + MARK, "w").write("x"))
    attempt(phase, "write farmtool", lambda: open(BUILD + "/farmtool.py", "a").write("x"))
    attempt(phase, "write facts", lambda: open(BUILD + "/.facts/build.json", "w").write("{{}}"))
    subprocess.Popen(
        [sys.executable, "-c", LINGER, BUILD, MARK],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print('toolchain: {{"compiler": "forged-by-' + phase + '"}}')
    print("toolchain: {{not json")
    print("error: forged-error-by-" + phase, file=sys.stderr)
    sys.stdout.flush()
"""

REGISTRY = """\
  - name: cleanpkg
    platforms: [linux-x86_64]
    python: ["3.11"]
  - name: hostile
    platforms: [linux-x86_64]
    python: ["3.11"]
    test:
      command: {command}
"""


def _processes_with(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace")[:200])
    return found


def _logs(farm, build: dict) -> dict[str, str]:
    """Every log of every step of the build, as the public REST API serves it."""
    texts = {}
    for step in farm.api(f"builds/{build['buildid']}/steps")["steps"]:
        for log in farm.api(f"steps/{step['stepid']}/logs")["logs"]:
            raw = requests.get(f"{farm.url}api/v2/logs/{log['logid']}/raw", timeout=30)
            raw.raise_for_status()
            texts[f"{step['name']}/{log['name']}"] = raw.text
    return texts


# Where the package's code is contained, and how it sees the build directory.
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


@pytest.mark.parametrize("contained", CONTAINED)
def test_hostile_package_is_contained(farm_factory, tmp_path, monkeypatch, request, contained):
    env_secret = f"env-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", env_secret)  # in the worker's environment
    mark = uuid.uuid4().hex
    home = Path.home()
    farm_home = tmp_path / "farm"
    worker = farm_home / "workers" / "local"
    build_dir = worker / "build-linux-x86_64" / "build"
    other = worker / "build-linux-aarch64"  # another builder's directory
    other_secret = f"other-builder-{uuid.uuid4().hex}"
    farm_kw: dict = {}
    seen_build = str(build_dir)
    if contained == "podman":
        image = request.getfixturevalue("bullseye_image")  # made once per run
        farm_kw = {
            "container": "podman",
            "settings_overrides": {
                "build_images": {
                    "linux-x86_64": {"image": image, "policy": "manylinux_2_31_x86_64"}
                }
            },
        }
        seen_build = "/work"  # where the container mounts the build directory
    attack = ATTACK.format(
        worker=str(worker), other=str(other), home=str(home), mark=mark, build=seen_build
    )
    pypi = FakePyPI()
    sdists = tmp_path / "sdists"
    setup_py = attack + "attack('build')\nfrom setuptools import setup\nsetup()\n"
    files = {"hostile/__init__.py": ""}
    pypi.publish(make_sdist(sdists, "hostile", "1.0", files, setup_py=setup_py))
    pypi.publish(make_sdist(sdists, "cleanpkg", "1.0", {"cleanpkg/__init__.py": "X = 1\n"}))
    url = pypi.start()
    try:
        command = json.dumps(["python", "-c", attack + "attack('test')"])
        registry = write_registry(tmp_path / "packages.yaml", REGISTRY.format(command=command))
        farm = farm_factory(registry, pypi_url=url, **farm_kw)
        assert farm.worker_dir() == worker
        other.mkdir(parents=True)
        (other / "secret.txt").write_text(other_secret)
        password = (worker / "buildbot.tac").read_text().split("passwd = ")[1].split("\n")[0]
        password = password.strip("'\"")
        assert len(password) > 10
        home_before = set(os.listdir(home))

        # the clean package on the untouched worker, then the hostile one, then clean again
        (first,) = wait_builds(farm, farm.force("cleanpkg"), timeout=600)
        assert first["results"] == 0, first["state_string"]
        (hostile,) = wait_builds(farm, farm.force("hostile"), timeout=600)
        survivors = _processes_with(mark)
        (again,) = wait_builds(farm, farm.force("cleanpkg", rebuild=True), timeout=600)
    finally:
        pypi.stop()

    # the hostile code ran in both phases, and every attempt failed
    logs = _logs(farm, hostile)
    build_log, test_log = logs["build/stdio"], logs["test/stdio"]
    refused = ["read tac", "read other builder", "write basedir", "write farmtool"]
    if contained == "bubblewrap":
        # its own code's facts folder is hidden; a container's is the inner farmtool's,
        # which the outer one overwrites with its own facts after the container exits
        refused += ["write home", "write facts"]
    for phase, log in (("build", build_log), ("test", test_log)):
        for name in refused:
            assert f"hostile {phase} {name}: refused" in log, (phase, name, log[-3000:])
        assert f"forged-error-by-{phase}" in log  # printed, shown, and not believed
    # nothing of the secrets appears in any log
    for name, text in logs.items():
        for secret in (password, other_secret, env_secret):
            assert secret not in text, (name, secret)
        assert "environment:" not in text.split("\n", 3)[0:3]  # logEnviron is off

    # the build went through; its record and summaries are the farm's own facts
    assert hostile["results"] == 0, hostile["state_string"]
    props = {k: v[0] for k, v in hostile["properties"].items()}
    steps = {s["name"]: s for s in farm.api(f"builds/{hostile['buildid']}/steps")["steps"]}
    if contained == "bubblewrap":
        assert steps["build"]["state_string"] == "built hostile-1.0-py3-none-any.whl"
        assert steps["test"]["state_string"] == "imported 1 modules; tests passed"
        isolated = "bubblewrap"
    else:
        built = f"built hostile-1.0-py3-none-any.whl in {image}"
        assert steps["build"]["state_string"] == built
        assert steps["test"]["state_string"] == f"imported and tested in {image}"
        isolated = "container (podman)"
    for step in steps.values():
        assert "forged" not in step["state_string"]
    record = requests.get(f"{farm.url}simple/hostile/{props['wheel']}.json", timeout=10).json()
    assert "forged" not in json.dumps(record)
    assert record["toolchain"]["python"].startswith("3.11")
    assert record["isolation"] == {"build": isolated, "test": isolated}
    page = requests.get(f"{farm.url}farm/packages/hostile", timeout=10).text
    assert f"isolated: {isolated}" in page

    # nothing was written outside the build directory, nothing outlived its step
    assert survivors == []
    assert _processes_with(mark) == []
    assert not list(worker.glob("hostile-*")) and not list(farm_home.rglob("lingered"))
    assert set(os.listdir(home)) == home_before
    assert (other / "secret.txt").read_text() == other_secret
    shipped = (FARMTOOL / "farmtool.py").read_text()
    assert (build_dir / "farmtool.py").read_text() == shipped

    # the clean package built after it is exactly the untouched worker's wheel
    assert again["results"] == 0, again["state_string"]
    before = {k: v[0] for k, v in first["properties"].items()}["published"]
    after = {k: v[0] for k, v in again["properties"].items()}["published"]
    assert after["filename"] == before["filename"]
    assert after["sha256"] == before["sha256"]


def test_a_backend_finds_the_tools_of_its_build_venv(tmp_path):
    """As maturin's backend runs `maturin`: a build requirement's script, by name, in bwrap."""
    import subprocess
    import sys

    from sdists import make_wheel

    tool = make_wheel(
        tmp_path / "wheels",
        "probetool",
        files={
            "probetool/__init__.py": "",
            "probetool-1.0.data/scripts/probe-tool": "#!python\nprint('probe tool ran')\n",
        },
    )
    setup_py = (
        "import subprocess\nsubprocess.run(['probe-tool'], check=True)\n"
        "from setuptools import setup\nsetup()\n"
    )
    build = tmp_path / "build"
    make_sdist(
        build / "sdist", "usesprobe", "1.0", {"usesprobe/__init__.py": ""}, setup_py=setup_py
    )
    shutil.copy(FARMTOOL / "farmtool.py", build)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    argv = [sys.executable, "farmtool.py", "build", "--sdist-dir", "sdist", "--out", "dist"]
    argv += ["--requires", str(tool), "--isolation", "bubblewrap"]
    done = subprocess.run(argv, cwd=build, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "probe tool ran" in done.stdout
    facts = json.loads((build / ".facts" / "build.json").read_text())
    assert facts["isolation"] == "bubblewrap"
    assert facts["summary"] == "built usesprobe-1.0-py3-none-any.whl"


def test_a_worker_that_opts_out_says_so_in_the_record(farm_factory, tmp_path):
    pypi = FakePyPI()
    pypi.publish(make_sdist(tmp_path / "sdists", "cleanpkg", "1.0", {"cleanpkg/__init__.py": ""}))
    url = pypi.start()
    try:
        registry = write_registry(tmp_path / "packages.yaml", REGISTRY.format(command="[python]"))
        farm = farm_factory(registry, pypi_url=url, isolation="none-i-accept-the-risk")
        (build,) = wait_builds(farm, farm.force("cleanpkg"), timeout=300)
    finally:
        pypi.stop()
    assert build["results"] == 0, build["state_string"]
    wheel = {k: v[0] for k, v in build["properties"].items()}["wheel"]
    record = requests.get(f"{farm.url}simple/cleanpkg/{wheel}.json", timeout=10).json()
    opted_out = "none-i-accept-the-risk"
    assert record["isolation"] == {"build": opted_out, "test": opted_out}


# Built by the installer (an sdist-only build requirement): records what it could do.
EVIL_SETUP = """
import os
WORKER = {worker!r}
def attempt(action):
    try:
        action()
        return "done"
    except Exception as e:
        return "refused " + type(e).__name__
found = {{
    "read tac": attempt(lambda: open(WORKER + "/buildbot.tac").read()),
    "write basedir": attempt(lambda: open(WORKER + "/evil", "w").write("x")),
    "write farmtool": attempt(lambda: open(WORKER + "/build/farmtool.py", "a").write("x")),
}}
os.makedirs("evildep", exist_ok=True)
with open("evildep/_attempts.py", "w") as f:
    f.write("FOUND = %r\\n" % found)
from setuptools import setup
setup()
"""


def test_an_sdist_only_requirement_is_built_in_the_sandbox(tmp_path):
    """Installing requirements may run their setup.py: that is the package's code too."""
    import subprocess
    import sys

    worker = tmp_path / "worker"
    build = worker / "build"
    (worker / "buildbot.tac").parent.mkdir(parents=True)
    (worker / "buildbot.tac").write_text("passwd = 'the-worker-password'\n")
    evil = make_sdist(
        tmp_path / "deps",
        "evildep",
        "1.0",
        {"evildep/__init__.py": ""},
        setup_py=EVIL_SETUP.format(worker=str(worker)),
    )
    make_sdist(build / "sdist", "plain", "1.0", {"plain/__init__.py": ""})
    shutil.copy(FARMTOOL / "farmtool.py", build)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    argv = [sys.executable, "farmtool.py", "build", "--sdist-dir", "sdist", "--out", "dist"]
    argv += ["--requires", str(evil), "--isolation", "bubblewrap"]
    done = subprocess.run(argv, cwd=build, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    (attempts,) = build.glob(".buildenv/lib/python3*/site-packages/evildep/_attempts.py")
    found = attempts.read_text()
    assert "the-worker-password" not in done.stdout + done.stderr + found
    assert "'read tac': 'refused" in found and "'write farmtool': 'refused" in found
    assert "'write basedir': 'refused" in found and not (worker / "evil").exists()
