"""The index on a small or read-only filesystem, with a real master and worker: builds
fail fast with a one-line reason, leave nothing behind, and the next build runs.

Needs root (it mounts tmpfs filesystems), as the farm's CI does."""

from __future__ import annotations

import base64
import os
import random
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import wait_builds, write_registry
from fakepypi import FakePyPI
from sdists import make_sdist

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounts tmpfs: needs root"),
]

MB = 1_000_000
REGISTRY = """\
  - name: big
    platforms: [linux-x86_64]
    python: ["3.11"]
  - name: small
    platforms: [linux-x86_64]
    python: ["3.11"]
  - name: small2
    platforms: [linux-x86_64]
    python: ["3.11"]
"""


@pytest.fixture
def pypi(tmp_path):
    fake = FakePyPI()
    # about 3 MB of wheel that does not compress: more than the full index has left
    noise = base64.b64encode(random.Random(15).randbytes(4 * MB // 2 * 3 // 2)).decode()
    files = {"big/__init__.py": "", "big/data.py": f"DATA = {noise!r}\n"}
    fake.publish(make_sdist(tmp_path / "sdists", "big", "1.0", files))
    for name in ("small", "small2"):
        fake.publish(make_sdist(tmp_path / "sdists", name, "1.0", {f"{name}/__init__.py": ""}))
    yield fake.start()
    fake.stop()


@pytest.fixture
def mounts():
    """mount(dir, options) mounts a tmpfs there; all are unmounted at the end."""
    mounted: list[Path] = []

    def mount(path: Path, options: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, mode: str) -> None:
    """Remount read-only or read-write; a moment's EBUSY is retried."""
    for _ in range(10):
        done = subprocess.run(
            ["mount", "-o", f"remount,{mode}", str(path)], capture_output=True, text=True
        )
        if done.returncode == 0:
            return
        time.sleep(1)
    raise AssertionError(f"remount,{mode} {path}: {done.stderr}")


def fill(index: Path, leave: int) -> Path:
    """A file that leaves `leave` bytes free on the index's filesystem."""
    filler = index / "filler"
    filler.unlink(missing_ok=True)
    st = os.statvfs(index)
    size = st.f_bavail * st.f_frsize - leave
    with filler.open("wb") as f:
        f.write(bytes(max(size, 0)))
    return filler


def build_outcome(farm, package: str) -> tuple[dict, float]:
    started = time.monotonic()
    [build] = wait_builds(farm, farm.force(package), timeout=300)
    return build, time.monotonic() - started


def leftovers(index: Path) -> list[str]:
    """Files in the index other than the filler and the folders the farm keeps."""
    return sorted(
        str(p.relative_to(index))
        for p in index.rglob("*")
        if p.is_file() and p.name not in ("filler", ".lock")
    )


def package_page(farm, package: str) -> str:
    return requests.get(f"{farm.url}farm/packages/{package}", timeout=30).text


def test_a_full_index_fails_the_upload_cleanly_and_the_next_build_runs(
    farm_factory, tmp_path, pypi, mounts
):
    index = mounts(tmp_path / "index", "size=5m")
    farm = farm_factory(
        write_registry(tmp_path / "packages.yaml", REGISTRY),
        pypi_url=pypi,
        settings_overrides={"index_dir": index, "min_free_bytes": 1 * MB},
    )
    # 2 MB free: above min_free_bytes, so the upload starts, and fills the disk
    filler = fill(index, 2 * MB)
    build, took = build_outcome(farm, "big")
    reason = build["state_string"]
    print(f"full index: {reason!r} ({took:.1f} s from force to the end)")
    assert build["results"] == 2, reason  # FAILURE, not EXCEPTION, not stuck
    assert without_target(reason, "big").startswith(
        "failed upload failed: cannot write to the index: No space left"
    )
    assert leftovers(index) == []
    assert without_target(reason, "big").removeprefix("failed ") in package_page(farm, "big")

    # under min_free_bytes: refused before anything is sent
    fill(index, MB // 2)
    build, _ = build_outcome(farm, "small")
    assert build["results"] == 2
    said = without_target(build["state_string"], "small")
    assert said.startswith("failed upload refused: the index has 0.")
    assert said.endswith("free, under min_free_bytes (1.0 MB)")
    assert said.removeprefix("failed ") in package_page(farm, "small")
    workers = requests.get(f"{farm.url}farm/workers", timeout=30).text
    assert "free, under min_free_bytes (1.0 MB): every upload is refused" in workers
    assert leftovers(index) == []

    # room again: the same worker builds and publishes the next one
    filler.unlink()
    build, took = build_outcome(farm, "small2")
    assert build["results"] == 0, build["state_string"]
    assert requests.get(f"{farm.url}simple/small2/", timeout=30).status_code == 200
    workers = requests.get(f"{farm.url}farm/workers", timeout=30).text
    assert "under min_free_bytes" not in workers
    assert [p for p in leftovers(index) if not p.startswith("small2/")] == []


def test_a_read_only_index_fails_publish_with_a_reason(farm_factory, tmp_path, pypi, mounts):
    index = mounts(tmp_path / "index", "size=20m")
    mounts(index / ".incoming", "size=20m")  # uploads land; publishing is what fails
    farm = farm_factory(
        write_registry(tmp_path / "packages.yaml", REGISTRY),
        pypi_url=pypi,
        settings_overrides={"index_dir": index, "min_free_bytes": 0},
    )
    remount(index, "ro")
    try:
        build, took = build_outcome(farm, "small")
    finally:
        remount(index, "rw")
    reason = build["state_string"]
    print(f"read-only index: {reason!r} ({took:.1f} s)")
    assert build["results"] == 2, reason
    said = without_target(reason, "small")
    assert said.startswith(
        "failed publish failed: cannot write to the index: Read-only file system"
    )
    assert said.removeprefix("failed ") in package_page(farm, "small")
    assert leftovers(index) == []
    build, _ = build_outcome(farm, "small")
    assert build["results"] == 0, build["state_string"]


def without_target(state: str, package: str) -> str:
    """A build's summary after the target it names (`big 1.0 py3.11: failed ...`)."""
    target, _, said = state.partition(": ")
    assert target.startswith(f"{package} 1.0 py"), state
    return said
