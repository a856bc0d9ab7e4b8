"""ABI-correct cascades through a real master and worker, with packages that really
depend on each other's ABI (compiled against a header, checked at import):

    abicore  ships include/abicore.h (found through abicore.get_include()) and a C-API
             capsule carrying its ABI number (the major version);
    abiuser  compiles against the header (its build-system requires abicore) and at
             import refuses a runtime capsule whose ABI differs from the one it was
             compiled against, as numpy-based extensions do.

abiuser is built against the farm's own abicore wheel, its record says which one (and
its sha256), and its published METADATA pins abicore to that ABI; a new ABI of abicore
cascades to abiuser, and pip and uv then find the old pair or the new pair, never a
mixed one.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import wait_builds, write_registry
from fakepypi import FakePyPI
from sdists import make_sdist
from test_e2e_cascade import builds_of, campaign_builds, wait_campaigns
from wheelfarm.index.pinning import NOT_FROM_THE_FARM

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
REGISTRY = """\
  - name: abicore
    platforms: [linux-x86_64]
    python: ['3.11']
    abi: major
  - name: abiuser
    platforms: [linux-x86_64]
    python: ['3.11']
    depends: [abicore]
"""

CORE_C = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
typedef struct {{ int abi; }} abicore_api;
static abicore_api api = {{ {abi} }};
static struct PyModuleDef def = {{PyModuleDef_HEAD_INIT, "_core", NULL, -1, NULL}};
PyMODINIT_FUNC PyInit__core(void) {{
    PyObject *m = PyModule_Create(&def);
    if (m == NULL) return NULL;
    PyObject *capsule = PyCapsule_New(&api, "abicore._core._C_API", NULL);
    if (capsule == NULL || PyModule_AddObject(m, "_C_API", capsule) < 0) return NULL;
    PyModule_AddIntConstant(m, "ABI", {abi});
    return m;
}}
"""
CORE_H = """\
#define ABICORE_ABI {abi}
typedef struct {{ int abi; }} abicore_api;
"""
CORE_INIT = """\
import os

from ._core import ABI


def get_include():
    return os.path.join(os.path.dirname(__file__), "include")
"""
CORE_SETUP = """\
from setuptools import Extension, setup

setup(
    ext_modules=[Extension("abicore._core", ["abicore/_core.c"])],
    package_data={"abicore": ["include/*.h"]},
)
"""
USER_C = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "abicore.h"
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_user", NULL, -1, NULL};
PyMODINIT_FUNC PyInit__user(void) {
    abicore_api *api = (abicore_api *)PyCapsule_Import("abicore._core._C_API", 0);
    if (api == NULL) return NULL;
    if (api->abi != ABICORE_ABI) {
        PyErr_Format(PyExc_ImportError,
            "abiuser was compiled against abicore ABI %d, but abicore ABI %d is installed",
            ABICORE_ABI, api->abi);
        return NULL;
    }
    PyObject *m = PyModule_Create(&def);
    if (m != NULL) PyModule_AddIntConstant(m, "COMPILED_ABI", ABICORE_ABI);
    return m;
}
"""
USER_SETUP = """\
import abicore
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("abiuser._user", ["abiuser/_user.c"], include_dirs=[abicore.get_include()])
    ]
)
"""


def publish_core(pypi: FakePyPI, folder: Path, version: str) -> None:
    abi = version.split(".")[0]
    files = {
        "abicore/__init__.py": CORE_INIT,
        "abicore/_core.c": CORE_C.format(abi=abi),
        "abicore/include/abicore.h": CORE_H.format(abi=abi),
    }
    pypi.publish(make_sdist(folder, "abicore", version, files, setup_py=CORE_SETUP))


def publish_user(pypi: FakePyPI, folder: Path, version: str, runtime: bool = True) -> None:
    files = {"abiuser/__init__.py": "from ._user import COMPILED_ABI\n", "abiuser/_user.c": USER_C}
    sdist = make_sdist(
        folder,
        "abiuser",
        version,
        files,
        build_requires=["setuptools>=61", "abicore"],
        dependencies=["abicore"] if runtime else [],
        setup_py=USER_SETUP,
    )
    pypi.publish(sdist)


def ok(build: dict) -> dict:
    assert build["results"] == 0, build["state_string"]
    return {k: v[0] for k, v in build["properties"].items()}


def record_of(farm, project: str, wheel: str) -> dict:
    return requests.get(f"{farm.url}simple/{project}/{wheel}.json", timeout=10).json()


def venv(path: Path, seed: bool) -> Path:
    seeded = ["--seed"] if seed else []
    subprocess.run([BIN / "uv", "venv", "-q", *seeded, "--python", "3.11", path], check=True)
    return path / "bin" / "python"


def install(tool: str, where: Path, index: str, *reqs: str, no_deps: bool = False):
    """Install from the farm's index only (wheels only); the completed process."""
    py = venv(where, seed=tool == "pip")
    extra = ["--no-deps"] if no_deps else []
    if tool == "pip":
        argv = [py, "-m", "pip", "--isolated", "install", "-q", "--index-url", index]
        argv += ["--only-binary", ":all:", *extra, *reqs]
    else:
        argv = [BIN / "uv", "pip", "install", "-q", "--python", py, "--no-config"]
        argv += ["--index-url", index, "--only-binary", ":all:", *extra, *reqs]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return py, done


def versions_in(py: Path) -> dict[str, str]:
    out = subprocess.run(
        [
            py,
            "-c",
            "import importlib.metadata as m; print(m.version('abicore'), m.version('abiuser'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {"abicore": out[0], "abiuser": out[1]}


def imports(py: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [py, "-c", "import abiuser; print(abiuser.COMPILED_ABI)"], capture_output=True, text=True
    )


def test_abi_pins_cascade_and_resolution(farm_factory, tmp_path):
    pypi = FakePyPI()
    sdists = tmp_path / "sdists"
    publish_core(pypi, sdists, "1.0")
    publish_user(pypi, sdists, "1.0")
    rollouts = tmp_path / "rollouts.yaml"
    rollouts.write_text("schema: 1\nrollouts:\n  - {name: verify-all, verify: true}\n")
    farm = farm_factory(
        write_registry(tmp_path / "packages.yaml", REGISTRY),
        rollouts=rollouts,
        pypi_url=pypi.start(),
    )
    index = f"{farm.url}simple/"
    try:
        (core1,) = map(ok, wait_builds(farm, farm.force("abicore")))
        (user1,) = map(ok, wait_builds(farm, farm.force("abiuser")))
        core1_record = record_of(farm, "abicore", core1["wheel"])

        # abiuser was built against the farm's abicore wheel, and its record says which
        assert user1["wheel"].startswith("abiuser-1.0+abicore.1.0-cp311-cp311-")
        record = record_of(farm, "abiuser", user1["wheel"])
        assert record["built_against"] == {
            "abicore": {
                "version": "1.0",
                "from": "farm",
                "wheel": core1["wheel"],
                "sha256": core1_record["sha256"],
            }
        }
        assert record["pins"] == ["abicore>=1.0,<2"]
        backend = record["backend_wheel"]
        assert backend["filename"].startswith("abiuser-1.0-cp311-cp311-")
        # METADATA (as PEP 658 serves it) pins abicore to its ABI 1
        metadata = requests.get(f"{index}abiuser/{user1['wheel']}.metadata", timeout=10).text
        assert "Requires-Dist: abicore>=1.0,<2" in metadata.splitlines()
        assert "Version: 1.0+abicore.1.0" in metadata.splitlines()
        assert hashlib.sha256(metadata.encode()).hexdigest() == record["metadata_sha256"]
        page = requests.get(f"{farm.url}farm/packages/abiuser", timeout=10).text
        assert "abicore&gt;=1.0,&lt;2" in page

        # a new ABI of abicore: the cascade rebuilds abiuser against the farm's abicore 2.0
        publish_core(pypi, sdists, "2.0")
        (core2,) = map(ok, wait_builds(farm, farm.force("abicore")))
        (campaign,) = wait_campaigns(farm, 1)
        assert campaign["results"] == 0, campaign["state_string"]
        users = builds_of(farm, "abiuser")
        assert len(users) == 2
        user2 = ok(users[1])
        assert user2["cause"] == "cascade from abicore 2.0"
        assert user2["wheel"].startswith("abiuser-1.0+abicore.2.0-cp311-cp311-")
        record2 = record_of(farm, "abiuser", user2["wheel"])
        core2_record = record_of(farm, "abicore", core2["wheel"])
        assert record2["built_against"]["abicore"]["wheel"] == core2["wheel"]
        assert record2["built_against"]["abicore"]["sha256"] == core2_record["sha256"]
        assert record2["pins"] == ["abicore>=2.0,<3"]
        # the older abiuser stays, pinned to the older abicore
        wheels = sorted(p.name for p in (farm.master_dir / "index" / "abiuser").glob("*.whl"))
        assert wheels == sorted([user1["wheel"], user2["wheel"]])

        for tool in ("pip", "uv"):
            # abiuser alone: the new pair, and it imports
            py, done = install(tool, tmp_path / f"{tool}-new", index, "abiuser")
            assert done.returncode == 0, done.stderr
            assert versions_in(py) == {"abicore": "2.0", "abiuser": "1.0+abicore.2.0"}
            assert imports(py).stdout.strip() == "2"
            # with abicore 1.0: the old abiuser, and it imports
            py, done = install(tool, tmp_path / f"{tool}-old", index, "abiuser", "abicore==1.0")
            assert done.returncode == 0, done.stderr
            assert versions_in(py) == {"abicore": "1.0", "abiuser": "1.0+abicore.1.0"}
            assert imports(py).stdout.strip() == "1"
            # the new abiuser with abicore 1.0: refused by the resolver
            mixed = ("abiuser==1.0+abicore.2.0", "abicore==1.0")
            _, done = install(tool, tmp_path / f"{tool}-mixed", index, *mixed)
            assert done.returncode != 0
            assert "abicore" in done.stderr
            # without the pin (no dependency resolution) the same pair installs ... and
            # fails at import: what the pin saves a user from
            py, done = install(tool, tmp_path / f"{tool}-nopin", index, *mixed, no_deps=True)
            assert done.returncode == 0, done.stderr
            broken = imports(py)
            assert broken.returncode != 0
            assert "compiled against abicore ABI 2, but abicore ABI 1 is installed" in (
                broken.stderr
            )

        # a backfill of an old abicore starts no cascade
        publish_core(pypi, sdists, "1.1")
        (backfill,) = map(ok, wait_builds(farm, farm.force("abicore", version="1.1")))
        assert backfill["wheel"].startswith("abicore-1.1-")
        time.sleep(3)
        assert len(campaign_builds(farm)) == 1
        assert len(builds_of(farm, "abiuser")) == 2

        # two builds of the C extension (sdist, toolchain) give the same bytes, repaired
        (again,) = map(ok, wait_builds(farm, farm.force("abicore", version="2.0", rebuild=True)))
        assert again["wheel"] == core2["wheel"]
        steps = farm.api(f"builds/{builds_of(farm, 'abicore')[-1]['buildid']}/steps")["steps"]
        publish = next(s for s in steps if s["name"] == "publish")
        assert publish["state_string"].endswith("(exists)"), publish["state_string"]
        (again,) = map(ok, wait_builds(farm, farm.force("abiuser", rebuild=True)))
        assert again["wheel"] == user2["wheel"]  # pinned, and still the same bytes
        # ... which a verify build (force form option) checks and says, publishing nothing
        for name in ("abicore", "abiuser"):
            before = sorted((farm.master_dir / "index" / name).iterdir())
            (verified,) = map(ok, wait_builds(farm, farm.force(name, verify=True)))
            assert verified["verify"]["reproducible"] is True, verified["verify"]
            assert sorted((farm.master_dir / "index" / name).iterdir()) == before
            page = requests.get(f"{farm.url}farm/packages/{name}", timeout=10).text
            assert ">reproducible</a>" in page

        # a verify rollout over the whole registry, and the share it reports
        farm.rpc(
            "forceschedulers/rollout", "force", builderNames=["orchestrate"], rollout="verify-all"
        )
        campaigns = wait_campaigns(farm, 2)
        assert all(c["results"] == 0 for c in campaigns), [c["state_string"] for c in campaigns]
        registry = tmp_path / "packages.yaml"
        out = subprocess.run(
            [
                BIN / "wheelfarm",
                "reproducible",
                "--registry",
                registry,
                "--index",
                farm.master_dir / "index",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.splitlines() == [
            "2 of 2 verified packages reproducible (100%); 0 of 2 not verified"
        ]
    finally:
        pypi.stop()


def test_without_a_farm_wheel_the_build_uses_pypi_and_says_so(farm_factory, tmp_path):
    """Outside a cascade, a registry package the farm has not built yet comes from PyPI
    (here abicore's sdist, built in abiuser's build environment): the record says so.

    The tests' PyPI serves sdists only, so the test step could not install abicore at
    runtime (its sdist needs setuptools, which only the real PyPI has): this abiuser
    declares no runtime dependency and the import check leaves it out.
    """
    pypi = FakePyPI()
    sdists = tmp_path / "sdists"
    publish_core(pypi, sdists, "1.0")
    publish_user(pypi, sdists, "1.0", runtime=False)
    registry = REGISTRY + "    test: {skip_imports: [abiuser]}\n"
    farm = farm_factory(write_registry(tmp_path / "packages.yaml", registry), pypi_url=pypi.start())
    try:
        (build,) = wait_builds(farm, farm.force("abiuser"))
        user = ok(build)
        record = record_of(farm, "abiuser", user["wheel"])
        assert record["built_against"] == {
            "abicore": {"version": "1.0", "from": "elsewhere", "note": NOT_FROM_THE_FARM}
        }
        assert record["pins"] == ["abicore>=1.0,<2"]  # the ABI it was compiled against
        steps = farm.api(f"builds/{build['buildid']}/steps")["steps"]
        publish = next(s for s in steps if s["name"] == "publish")
        assert "built against abicore not from the farm" in publish["state_string"]
    finally:
        pypi.stop()
