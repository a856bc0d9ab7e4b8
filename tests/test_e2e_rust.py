"""A Rust package through a real master and worker: its crates are fetched in a sandbox
with the network, maturin builds it in bubblewrap with the worker's Rust toolchain
(read-only in the sandbox, no network), auditwheel repairs it, the test step imports it
and calls into the Rust library, and the index serves it.

The package is made by the tests (tests/sdists.py, make_rust_sdist): a Rust library
exposed through maturin's cffi bindings, which calls a crate of a registry on loopback
(tests/fakecrates.py; crates.io is not reachable from here). maturin, cffi and ziglang
come from PyPI as build requirements.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from conftest import build_logs, wait_builds, write_registry
from fakecrates import REGISTRY, FakeCrates
from fakepypi import FakePyPI
from sdists import make_rust_sdist
from test_e2e_pipeline import fresh_venv, steps_of

# rustup's proxies, where a volunteer with rustup has them
RUSTUP_BIN = Path.home() / ".cargo" / "bin"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not shutil.which("bwrap"), reason="needs bubblewrap (make test has it)"),
    pytest.mark.skipif(
        not (shutil.which("rustc") or (RUSTUP_BIN / "rustc").exists()),
        reason="needs a Rust toolchain (rustc on PATH, or rustup's in ~/.cargo/bin)",
    ),
]

# This host's glibc (2.36) is newer than the policy (manylinux_2_28): Rust's standard
# library, linked here, needs glibc 2.34 (pthread_key_create@GLIBC_2.34). maturin's
# `--zig` links against an older glibc's symbols instead, with zig from PyPI.
RUST_ENTRY = """\
  - name: tinyrs
    platforms: [linux-x86_64]
    python: ["3.11"]
    build:
      requires: [ziglang]
      env: {MATURIN_PEP517_ARGS: "--zig --compatibility manylinux_2_28"}
    test:
      command:
        - python
        - -c
        - "from tinyrs import lib; print('rust says', lib.tinyrs_add(2, 3), lib.tinyrs_twice(21))"
"""


def test_a_maturin_package_builds_repairs_imports_and_publishes(
    farm_factory, tmp_path, monkeypatch
):
    # The worker finds the toolchain as a volunteer's would: the `rustc` on its PATH.
    path = os.environ["PATH"]
    if not shutil.which("rustc"):
        monkeypatch.setenv("PATH", f"{RUSTUP_BIN}{os.pathsep}{path}")
    monkeypatch.delenv("WHEELFARM_RUST", raising=False)
    sysroot = subprocess.run(
        ["rustc", "--print", "sysroot"], capture_output=True, text=True, check=True
    ).stdout.strip()
    crates = FakeCrates(tmp_path / "crates").start()
    crates.publish("tinydep", "1.0.0", "pub fn twice(x: i32) -> i32 { x * 2 }\n")
    crate = ("tinydep", REGISTRY, crates.cargo_config())
    pypi = FakePyPI()
    pypi.publish(make_rust_sdist(tmp_path / "sdists", "tinyrs", "1.0", crate=crate))
    # its runtime dependency, which the test step installs from this index: PyPI's wheels
    deps = tmp_path / "deps"
    download = [sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:"]
    subprocess.run([*download, "--dest", deps, "cffi"], check=True)
    for wheel in deps.glob("*.whl"):
        pypi.publish(wheel)
    url = pypi.start()
    try:
        registry = write_registry(tmp_path / "packages.yaml", RUST_ENTRY)
        farm = farm_factory(registry, pypi_url=url)
        (build,) = wait_builds(farm, farm.force("tinyrs"), timeout=900)
    finally:
        pypi.stop()
        crates.stop()
    assert build["results"] == 0, build["state_string"]
    steps = steps_of(farm, build)
    for name in ("build", "repair", "check", "test", "publish"):
        assert steps[name]["results"] == 0, (name, steps[name]["state_string"])
    # the library cffi loads is shipped, and is not taken for an extension module
    summary = "imported 2 modules (1 skipped: tinyrs.libtinyrs); tests passed"
    assert steps["test"]["state_string"] == summary

    # cargo ran in the sandbox, from the toolchain the worker's rustc names
    logs = build_logs(farm, build)
    assert f"in {Path(sysroot).resolve()}" in logs["build/stdio"]
    assert "Compiling tinyrs v1.0.0" in logs["build/stdio"]
    # its crate was fetched once, before the build, which compiled it without network
    assert crates.downloads == ["tinydep-1.0.0.crate"]
    assert "cargo fetch --manifest-path" in logs["build/stdio"]
    assert "Compiling tinydep v1.0.0" in logs["build/stdio"]
    assert "rust says 5 42" in logs["test/stdio"]  # the Rust code ran, in the test sandbox

    # the index has the repaired wheel: the Rust library inside, the policy's tag
    props = {k: v[0] for k, v in build["properties"].items()}
    wheel = props["wheel"]
    assert wheel.startswith("tinyrs-1.0-py3-none-manylinux_2_28_x86_64"), wheel
    (published,) = (farm.settings().index_path / "tinyrs").glob("*.whl")
    assert published.name == wheel
    with zipfile.ZipFile(published) as zf:
        assert "tinyrs/libtinyrs.so" in zf.namelist(), zf.namelist()
    record = requests.get(f"{farm.url}simple/tinyrs/{wheel}.json", timeout=10).json()
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout
    assert record["toolchain"]["rustc"] == rustc.split()[1]
    assert record["toolchain"]["build_deps"]["maturin"]
    assert record["isolation"] == {"build": "bubblewrap", "test": "bubblewrap"}

    # and pip installs it from the farm's index, and it calls into Rust here too
    py = fresh_venv(tmp_path / "env", seed=True)
    pip = [py, "-m", "pip", "install", "-q", "--only-binary", "tinyrs"]
    subprocess.run([*pip, "--index-url", f"{farm.url}simple/", "--no-deps", "tinyrs"], check=True)
    subprocess.run([py, "-m", "pip", "install", "-q", "cffi"], check=True)
    done = subprocess.run(
        [py, "-c", "import tinyrs; print(tinyrs.lib.tinyrs_add(40, 2))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "42"
