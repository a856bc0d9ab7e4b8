"""Builds in a real container engine (podman) with a build image made from Debian alone.

The image is Debian bullseye (glibc 2.31) with CPython 3.11 at the manylinux path and
the farm's locked tools (workers/images/make_image.py): a consistent build environment
for the manylinux_2_31 policy, which this host (glibc 2.36) cannot give. Making the
image takes minutes the first time; it is cached by its recipe, so once per machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import wait_builds, write_registry
from fakecrates import REGISTRY, FakeCrates
from fakepypi import FakePyPI
from farmtoolmod import FRONTEND, install
from sdists import c_extension, make_rust_sdist, make_sdist
from test_farmtool import PYTHON, error_of, ok, wheels
from wheelfarm.paths import CONTAINERS_CONF

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.containers,
    pytest.mark.skipif(os.geteuid() != 0, reason="making an image needs root (debootstrap)"),
]

POLICY_2_31 = "manylinux_2_31_x86_64"
CFFI = "cffi==2.1.1"  # links libffi: built on this host, its wheel needs glibc 2.36


@pytest.fixture(scope="session")
def cffi_sdist(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("cffi-sdist")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         "--dest", dest, CFFI],
        check=True,
    )  # fmt: skip
    (sdist,) = dest.iterdir()
    return sdist


def farmtool(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    install(cwd)
    # the worker's tools (auditwheel, uv, ...) from the farm's venv, as a local worker has
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = dict(os.environ, CONTAINERS_CONF=str(CONTAINERS_CONF), PATH=path)
    env.pop("SOURCE_DATE_EPOCH", None)
    return subprocess.run(
        [PYTHON, "farmtool.pyz", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=1800,
    )  # fmt: skip


def test_cffi_builds_and_repairs_to_the_images_policy(tmp_path, bullseye_image, cffi_sdist):
    (tmp_path / "sdist").mkdir()
    shutil.copy(cffi_sdist, tmp_path / "sdist")
    engine = ["--container-engine", "podman", "--image", bullseye_image]
    build = ["build", "--sdist-dir", "sdist", "--out", "dist/built", *FRONTEND, *engine]
    out = ok(farmtool(tmp_path, *build))
    # the backend ran in a container of its own: offline, no capabilities, not root
    backend = next(ln for ln in out.splitlines() if "<build helper: wheel>" in ln)
    for option in ("--network none", "--cap-drop all", "--security-opt no-new-privileges",
                   "--read-only", "--user 65534:65534"):  # fmt: skip
        assert option in backend, backend
    assert "toolchain:" in out
    (built,) = wheels(tmp_path / "dist" / "built")
    assert built.name.startswith("cffi-2.1.1-cp311-cp311-linux_x86_64")

    # On this host the same wheel cannot meet manylinux_2_28: its libffi is too new.
    host = farmtool(
        tmp_path, "repair", "--tool", "auditwheel", "--policy", "manylinux_2_28_x86_64",
        "--in", "dist/built", "--out", "dist/host",
    )  # fmt: skip
    assert "policy violation" in error_of(host) or "repair failed" in error_of(host)

    # In the image, it repairs to the image's own policy, libffi vendored.
    args = ["--tool", "auditwheel", "--policy", POLICY_2_31, "--in", "dist/built"]
    ok(farmtool(tmp_path, "repair", *args, "--out", "dist/repaired", *engine))
    (repaired,) = wheels(tmp_path / "dist" / "repaired")
    assert "manylinux_2_31_x86_64" in repaired.name or "manylinux_2_17" in repaired.name
    with zipfile.ZipFile(repaired) as zf:
        assert any("libffi" in n for n in zf.namelist()), zf.namelist()

    # The check on the host agrees: the wheel meets the image's policy.
    check = ["check", "--wheel-dir", "dist/repaired", "--policy", POLICY_2_31]
    assert "policy ok" in ok(farmtool(tmp_path, *check, "--tool", "auditwheel"))

    # and it installs and imports on this host: every module of cffi
    pypi = "https://pypi.org/simple/"
    test = ["test", "--wheel-dir", "dist/repaired", "--index-url", pypi, "--extra-index-url", pypi]
    test += FRONTEND
    out = ok(
        farmtool(
            tmp_path, *test, "--", "python", "-c", "import cffi; cffi.FFI().cdef('int f(int);')"
        )
    )
    assert "tests passed" in out


CFFI_ENTRY = """\
  - name: cffi
    versions: "==2.1.1"
    platforms: [linux-x86_64]
    python: ["3.11"]
    test:
      requires: []
"""


def test_a_container_worker_publishes_cffi_for_the_images_policy(
    farm_factory, tmp_path, bullseye_image
):
    """Through a real master: a podman worker builds in the operator's image, and the
    wheel in the index meets that image's policy (cffi cannot on this host)."""
    image = {"image": bullseye_image, "policy": POLICY_2_31}
    farm = farm_factory(
        write_registry(tmp_path / "packages.yaml", CFFI_ENTRY),
        container="podman",
        settings_overrides={"build_images": {"linux-x86_64": image}},
    )
    (build,) = wait_builds(farm, farm.force("cffi", reason="e2e"), timeout=1500)
    assert build["results"] == 0, build["state_string"]
    (wheel,) = (farm.settings().index_path / "cffi").glob("*.whl")
    assert wheel.name.startswith("cffi-2.1.1-cp311-cp311-manylinux")
    tags = wheel.name[: -len(".whl")].split("-")[-1].split(".")
    assert POLICY_2_31 in tags or any(t.startswith("manylinux_2_17") for t in tags)
    record = json.loads(wheel.with_name(wheel.name + ".json").read_text())
    assert record["toolchain"]["container_image"] == bullseye_image
    assert record["toolchain"]["libc"] == "glibc 2.31"  # the image's, not this host's


ZSTD_SETUP = """\
from setuptools import Extension, setup
setup(ext_modules=[Extension("zstdext._z", ["zstdext/_z.c"], libraries=["zstd"])])
"""
ZSTD_ENTRY = """\
  - name: zstdext
    platforms: [linux-x86_64]
    python: ["3.11"]
    build:
      system:
        apt: [libzstd-dev]
        dnf: [libzstd-devel]
    test:
      command: ["python", "-c", "import zstdext._z as z; z.call(); print('zstd linked')"]
"""


@pytest.fixture
def zstd_pypi(tmp_path):
    """An sdist whose extension links libzstd: its build needs the -dev package."""
    source = c_extension("_z", body="(void)ZSTD_versionNumber();", includes="#include <zstd.h>")
    files = {"zstdext/__init__.py": "", "zstdext/_z.c": source}
    pypi = FakePyPI()
    pypi.publish(make_sdist(tmp_path / "sdists", "zstdext", "1.0", files, setup_py=ZSTD_SETUP))
    yield pypi.start()
    pypi.stop()


def test_system_packages_are_installed_in_the_image_and_vendored(
    farm_factory, tmp_path, bullseye_image, zstd_pypi
):
    """The registry says which system packages a build needs: in its container the
    build installs them, and repair vendors the library into the wheel."""
    image = {"image": bullseye_image, "policy": POLICY_2_31}
    farm = farm_factory(
        write_registry(tmp_path / "packages.yaml", ZSTD_ENTRY),
        pypi_url=zstd_pypi,
        container="podman",
        settings_overrides={"build_images": {"linux-x86_64": image}},
    )
    (build,) = wait_builds(farm, farm.force("zstdext", reason="e2e"), timeout=1500)
    assert build["results"] == 0, build["state_string"]
    (wheel,) = (farm.settings().index_path / "zstdext").glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert any("libzstd" in n for n in zf.namelist()), zf.namelist()


def test_a_worker_without_the_system_packages_declines_the_build(farm_factory, tmp_path, zstd_pypi):
    """On a volunteer's own system nothing is installed: the build says what is missing."""
    if not shutil.which("dpkg-query"):
        pytest.skip("a Debian worker")
    done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "libzstd-dev"], capture_output=True)
    if b"install ok installed" in done.stdout:
        pytest.skip("libzstd-dev is installed here")
    farm = farm_factory(
        write_registry(tmp_path / "packages.yaml", ZSTD_ENTRY),
        pypi_url=zstd_pypi,
        isolation="bubblewrap",
    )
    (build,) = wait_builds(farm, farm.force("zstdext", reason="e2e"), timeout=600)
    assert build["results"] == 2
    reason = "declined: needs system packages libzstd-dev (apt), not installed on this worker"
    assert reason in build["state_string"]
    assert not (farm.settings().index_path / "zstdext").exists()


def test_a_rust_package_builds_in_the_image_with_the_workers_toolchain(
    tmp_path, bullseye_image, monkeypatch
):
    """The image has no Rust: the worker's toolchain is mounted read-only, and the wheel,
    linked against the image's glibc 2.31, repairs to its policy without zig. Its crate
    is fetched before, in bubblewrap on the host, from the outside only."""
    rustc = shutil.which("rustc") or str(Path.home() / ".cargo" / "bin" / "rustc")
    if not os.access(rustc, os.X_OK):
        pytest.skip("needs a Rust toolchain")
    sysroot = subprocess.run(
        [rustc, "--print", "sysroot"], capture_output=True, text=True, check=True
    ).stdout.strip()
    crates = FakeCrates(tmp_path / "crates").start()
    crates.publish("tinydep", "1.0.0", "pub fn twice(x: i32) -> i32 { x * 2 }\n")
    crate = ("tinydep", REGISTRY, crates.cargo_config())
    make_rust_sdist(tmp_path / "sdist", "tinyrs", "1.0", crate=crate)
    engine = ["--container-engine", "podman", "--image", bullseye_image]
    monkeypatch.setenv("WHEELFARM_RUST", sysroot)  # as a volunteer declares it
    build = ["build", "--sdist-dir", "sdist", "--out", "dist/built", *FRONTEND, *engine]
    try:
        out = ok(farmtool(tmp_path, *build))
    finally:
        crates.stop()
    assert crates.downloads == ["tinydep-1.0.0.crate"]
    assert "Compiling tinydep v1.0.0" in out
    # the toolchain is mounted read-only (not at its own path: /root is closed in the image)
    assert f"{sysroot}:/wheelfarm-ro/" in out and "Compiling tinyrs v1.0.0" in out
    facts = json.loads((tmp_path / ".facts" / "build.json").read_text())
    assert facts["toolchain"]["rustc"] and facts["toolchain"]["libc"] == "glibc 2.31"
    args = ["--tool", "auditwheel", "--policy", POLICY_2_31, "--in", "dist/built"]
    ok(farmtool(tmp_path, "repair", *args, "--out", "dist/repaired", *engine))
    (repaired,) = wheels(tmp_path / "dist" / "repaired")
    assert repaired.name.startswith("tinyrs-1.0-py3-none-manylinux_2_"), repaired.name
    check = ["check", "--wheel-dir", "dist/repaired", "--policy", POLICY_2_31]
    assert "policy ok" in ok(farmtool(tmp_path, *check, "--tool", "auditwheel"))


def test_what_a_test_command_leaves_running_cannot_write_the_reason(tmp_path, bullseye_image):
    """A test command that fails and leaves a process printing `error:` lines: the
    step's reason is still the farm's: the host decides it from the command's exit
    status, and the container (its PID 1 gone) takes the spammer with it."""
    import wheelhouse

    (tmp_path / "wheels").mkdir()
    (six,) = wheelhouse.directory().glob("six-*.whl")
    shutil.copy(six, tmp_path / "wheels")
    pypi = FakePyPI()  # over HTTP: the install runs in a container, which has no host paths
    pypi.publish(six)
    index = pypi.start() + "/simple/"
    engine = ["--container-engine", "podman", "--image", bullseye_image]
    spammer = "(while :; do echo 'error: forged by the test command' >&2; done) & sleep 0.5; exit 1"
    done = farmtool(
        tmp_path, "test", "--wheel-dir", "wheels", "--index-url", index,
        "--extra-index-url", index, *FRONTEND, *engine, "--", "sh", "-c", spammer,
    )  # fmt: skip
    pypi.stop()
    assert error_of(done) == "error: tests failed (exit 1)"
    facts = json.loads((tmp_path / ".facts" / "test.json").read_text())
    assert facts["reason"] == "tests failed (exit 1)"


def test_no_key_and_no_user_namespace_in_a_container(tmp_path, bullseye_image):
    """The engine's default profile lets a container's process keep keys (`keyctl`: a
    persistent keyring per uid outlives the container) and make user namespaces: the
    farm's untrusted phases run with both refused; threads and processes still run."""
    import wheelhouse
    from test_isolation import KERNEL_CALLS

    (tmp_path / "wheels").mkdir()
    (six,) = wheelhouse.directory().glob("six-*.whl")
    shutil.copy(six, tmp_path / "wheels")
    pypi = FakePyPI()
    pypi.publish(six)
    index = pypi.start() + "/simple/"
    engine = ["--container-engine", "podman", "--image", bullseye_image]
    done = farmtool(
        tmp_path, "test", "--wheel-dir", "wheels", "--index-url", index,
        "--extra-index-url", index, *FRONTEND, *engine, "--", "python", "-c", KERNEL_CALLS,
    )  # fmt: skip
    pypi.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    calls = [ln for ln in done.stdout.splitlines() if " allowed" in ln or " refused" in ln]
    assert len(calls) == 9, done.stdout
    assert [ln for ln in calls if "allowed" in ln] == []
    assert "thread ran" in done.stdout and "process 1" in done.stdout
