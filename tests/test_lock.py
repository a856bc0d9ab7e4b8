"""The lock: uv.lock satisfies pyproject.toml, and the files installed from it are its own.

`make venv` installs requirements.lock and a volunteer's join script installs
workers/requirements.txt, both exported from uv.lock (`make lock`). `make lock-check`
re-exports them and runs `uv lock --locked` (that needs the network); this file checks
the same agreement without it.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from wheelfarm.pipeline.toollock import worker_lock

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
LOCK = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
# name -> the versions uv.lock holds (a few packages have one per marker, e.g. PyPy's)
LOCKED: dict[str, set[Version]] = {}
for package in LOCK["package"]:
    LOCKED.setdefault(canonicalize_name(package["name"]), set()).add(Version(package["version"]))


def exported(path: Path) -> dict[str, list[tuple[Version, str, int]]]:
    """name -> (version, marker, number of hashes) for each block of an exported file."""
    found: dict[str, list[tuple[Version, str, int]]] = {}
    for block in re.split(r"\n(?=\S)", path.read_text(encoding="utf-8")):
        match = re.match(r"([A-Za-z0-9._-]+)==(\S+)(?: ; ([^\\\n]+))?", block)
        if match:
            pins = found.setdefault(canonicalize_name(match[1]), [])
            pins.append((Version(match[2]), (match[3] or "").strip(), block.count("--hash=")))
    return found


def project_requirements() -> list[Requirement]:
    reqs = PYPROJECT["project"]["dependencies"]
    reqs += [r for extra in PYPROJECT["project"]["optional-dependencies"].values() for r in extra]
    reqs += PYPROJECT["dependency-groups"]["worker"]
    return [Requirement(r) for r in reqs]


@pytest.mark.parametrize("requirement", project_requirements(), ids=str)
def test_the_lock_satisfies_every_requirement_of_pyproject(requirement):
    name = canonicalize_name(requirement.name)
    assert name in LOCKED, f"{name} is not in uv.lock: run `make lock`"
    assert any(requirement.specifier.contains(v, prereleases=True) for v in LOCKED[name]), (
        f"uv.lock has {name} {sorted(map(str, LOCKED[name]))}, pyproject.toml asks {requirement}"
    )


@pytest.mark.parametrize("path", ["requirements.lock", "workers/requirements.txt"])
def test_exported_files_pin_uv_locks_versions_with_hashes(path):
    pins = exported(ROOT / path)
    assert pins
    for name, entries in pins.items():
        for version, _, hashes in entries:
            assert version in LOCKED.get(name, set()), f"{path}: {name} {version} is not uv.lock's"
            assert hashes >= 1, f"{path}: {name} has no --hash"


def test_a_worker_installs_the_masters_versions_of_every_tool():
    master, worker = (
        exported(ROOT / "requirements.lock"),
        exported(ROOT / "workers/requirements.txt"),
    )
    for requirement in map(Requirement, PYPROJECT["dependency-groups"]["worker"]):
        name = canonicalize_name(requirement.name)
        assert name in worker, f"{name} is missing from workers/requirements.txt"
        assert worker[name] == master[name]
    # the worker speaks the master's protocol: the same Buildbot release
    assert worker["buildbot-worker"][0][0] == Version(installed_version("buildbot"))


def test_the_venv_holds_the_locked_versions():
    """What `make venv` installed is what requirements.lock says (for this platform)."""
    for name, entries in exported(ROOT / "requirements.lock").items():
        for version, marker, _ in entries:
            if marker and not Marker(marker).evaluate():
                continue
            assert Version(installed_version(name)) == version, name


def test_the_build_record_names_the_lock_and_tools_that_differ_from_it():
    lock = worker_lock()
    assert lock.requirement("build") == f"build=={lock.versions['build']}"
    assert lock.requirement("not-a-locked-tool") == "not-a-locked-tool"
    as_locked = {tool: lock.versions[dist] for tool, dist in (("uv", "uv"), ("build", "build"))}
    assert lock.compare(as_locked) == {"sha256": lock.sha256, "as_locked": True, "differs": {}}
    older = lock.compare({**as_locked, "auditwheel": "6.0.0"})
    assert older["as_locked"] is False
    assert older["differs"] == {
        "auditwheel": {"used": "6.0.0", "locked": lock.versions["auditwheel"]}
    }
    # the identity is the exported file's own sha256
    text = (ROOT / "workers/requirements.txt").read_bytes()
    assert lock.sha256 == hashlib.sha256(text).hexdigest()
