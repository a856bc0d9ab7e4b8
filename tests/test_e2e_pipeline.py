"""The whole pipeline through a real master and worker: sdist -> checked wheel -> index -> pip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from conftest import wait_builds, write_registry
from fakepypi import FakePyPI
from sdists import c_extension, make_sdist

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
FROM_PYPI = """\
  - name: six
    platforms: [linux-x86_64]
    python: ["3.11"]
    abi: none
  - name: MarkupSafe
    versions: "<4"
    platforms: [linux-x86_64]
    python: ["3.11"]
    build:
      env: {CIBUILDWHEEL: "1"}  # fail rather than fall back to pure Python
    abi: minor
"""


def fresh_venv(path: Path, seed: bool = False) -> Path:
    """A new venv (with pip if `seed`); returns its interpreter."""
    seeded = ["--seed"] if seed else []
    subprocess.run([BIN / "uv", "venv", "-q", *seeded, "--python", "3.11", path], check=True)
    return path / "bin" / "python"


def steps_of(farm, build: dict) -> dict[str, dict]:
    return {s["name"]: s for s in farm.api(f"builds/{build['buildid']}/steps")["steps"]}


def test_pypi_sdists_to_wheels_that_pip_and_uv_install(farm_factory, tmp_path):
    farm = farm_factory(write_registry(tmp_path / "packages.yaml", FROM_PYPI), max_builds=2)
    brids = farm.force("six") + farm.force("markupsafe")
    builds = wait_builds(farm, brids, timeout=600)
    for b in builds:
        assert b["results"] == 0, b["state_string"]
    six, markupsafe = ({k: v[0] for k, v in b["properties"].items()} for b in builds)

    # every step of the pipeline ran, each with its own log
    ran = steps_of(farm, builds[1])
    for name in ("resolve", "fetch", "build", "repair", "check", "test", "metadata", "publish"):
        assert ran[name]["results"] == 0, (name, ran[name]["state_string"])

    # the C extension was repaired to a manylinux tag
    assert "manylinux" in markupsafe["wheel"] and "cp311" in markupsafe["wheel"]
    assert six["wheel"].endswith("-none-any.whl")

    index = f"{farm.url}simple/"
    # the record of the build is next to the wheel
    record = requests.get(f"{index}markupsafe/{markupsafe['wheel']}.json", timeout=10).json()
    assert record["sdist_sha256"] == markupsafe["sdist_sha256"]
    assert record["worker"] == "local" and record["platform"] == "linux-x86_64"
    assert record["python"] == "3.11" and record["build_url"].startswith(farm.url)
    assert record["toolchain"]["auditwheel"] and record["toolchain_key"]

    # pip installs from the farm's index only (binary only) and the modules import
    py = fresh_venv(tmp_path / "pip-env", seed=True)
    subprocess.run(
        [
            py,
            "-m",
            "pip",
            "install",
            "-q",
            "--index-url",
            index,
            "--only-binary",
            ":all:",
            "markupsafe",
            "six",
        ],
        check=True,
    )
    out = subprocess.run(
        [py, "-c", "import markupsafe, markupsafe._speedups, six; print(markupsafe.escape('<'))"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "&lt;"

    # ... and so does uv
    py = fresh_venv(tmp_path / "uv-env")
    subprocess.run(
        [
            BIN / "uv",
            "pip",
            "install",
            "-q",
            "--python",
            py,
            "--index-url",
            index,
            "--only-binary",
            ":all:",
            "markupsafe",
            "six",
        ],
        check=True,
    )
    subprocess.run([py, "-c", "import markupsafe._speedups, six"], check=True)

    # a second request for the same wheel is a no-op, shown as skipped
    (again,) = wait_builds(farm, farm.force("six"), timeout=120)
    assert again["results"] == 3, again["state_string"]  # SKIPPED
    assert "already built" in again["state_string"]
    # ... unless a rebuild is asked for
    (rebuilt,) = wait_builds(farm, farm.force("six", rebuild=True), timeout=300)
    assert rebuilt["results"] == 0, rebuilt["state_string"]
    assert steps_of(farm, rebuilt)["build"]["results"] == 0


# -- failures: small sdists the tests make, served by a local fake PyPI --------

NEGATIVE = """\
  - name: goodpkg
    platforms: [linux-x86_64]
    python: ["3.11"]
  - name: hashbad
    platforms: [linux-x86_64]
    python: ["3.11"]
  - name: badimport
    platforms: [linux-x86_64]
    python: ["3.11"]
  - name: undeclared
    platforms: [linux-x86_64]
    python: ["3.11"]
  - name: toonew
    platforms: [linux-x86_64]
    python: ["3.11"]
  - name: notonpypi
    platforms: [linux-x86_64]
    python: ["3.11"]
  - name: needsgood
    platforms: [linux-x86_64]
    python: ["3.11"]
"""
# calls a glibc 2.34 function: too new for manylinux_2_28
TOO_NEW = c_extension(
    "_native",
    includes="#include <unistd.h>",
    body="volatile int never = 0; if (never) { _Fork(); }",
)


@pytest.fixture
def fake_pypi(tmp_path):
    pypi = FakePyPI()
    sdists = tmp_path / "sdists"
    sdists.mkdir()
    pypi.publish(make_sdist(sdists, "goodpkg", "1.0", {"goodpkg/__init__.py": "X = 1\n"}))
    pypi.publish(make_sdist(sdists, "hashbad", "1.0", {"hashbad/__init__.py": ""}), sha256="0" * 64)
    pypi.publish(
        make_sdist(
            sdists,
            "badimport",
            "1.0",
            {"badimport/__init__.py": "", "badimport/bad.py": "raise RuntimeError('boom')\n"},
        )
    )
    pypi.publish(
        make_sdist(
            sdists,
            "undeclared",
            "1.0",
            {"undeclared/__init__.py": ""},
            setup_py="import wheelfarm_undeclared_helper\nfrom setuptools import setup\nsetup()\n",
        )
    )
    pypi.publish(
        make_sdist(
            sdists,
            "toonew",
            "1.0",
            {"toonew/__init__.py": "", "toonew/_native.c": TOO_NEW},
            ext_modules={"toonew._native": ["toonew/_native.c"]},
        )
    )
    pypi.publish(
        make_sdist(
            sdists, "needsgood", "1.0", {"needsgood/__init__.py": ""}, dependencies=["goodpkg"]
        )
    )
    url = pypi.start()
    yield pypi, url
    pypi.stop()


def test_each_failure_has_one_reason_and_publishes_nothing(farm_factory, tmp_path, fake_pypi):
    _, url = fake_pypi
    registry = write_registry(tmp_path / "packages.yaml", NEGATIVE)
    farm = farm_factory(registry, pypi_url=url, max_builds=2)
    names = ["goodpkg", "hashbad", "badimport", "undeclared", "toonew", "notonpypi", "needsgood"]
    brids = [brid for name in names for brid in farm.force(name)]
    builds = dict(zip(names, wait_builds(farm, brids, timeout=600), strict=True))

    assert builds["goodpkg"]["results"] == 0, builds["goodpkg"]["state_string"]
    # a Requires-Dist on a registry package missing from `depends` warns, and publishes
    assert builds["needsgood"]["results"] == 1, builds["needsgood"]["state_string"]
    assert (
        "requires goodpkg: in the registry but not in needsgood's depends"
        in (builds["needsgood"]["state_string"])
    )
    expected = {
        "hashbad": ("fetch", "hash mismatch for hashbad-1.0.tar.gz: expected sha256 " + "0" * 64),
        "badimport": ("test", "import failed: badimport.bad: RuntimeError: boom"),
        "undeclared": ("build", "build failed"),
        "toonew": ("repair", "policy violation"),
        "notonpypi": ("resolve", "sdist not found"),
    }
    for name, (step, reason) in expected.items():
        build = builds[name]
        assert build["results"] == 2, (name, build["state_string"])
        assert reason in build["state_string"], (name, build["state_string"])
        failed = [s["name"] for s in steps_of(farm, build).values() if s["results"] == 2]
        assert failed == [step], (name, failed)
    assert "wheelfarm_undeclared_helper" in builds["undeclared"]["state_string"]

    # only the good packages reached the index; no upload was left behind
    index = farm.settings().index_path
    published = sorted(p.name for p in index.iterdir() if not p.name.startswith("."))
    assert published == ["goodpkg", "needsgood"]
    assert not any((index / ".incoming").glob("*/*"))
