"""linux-aarch64 for real, by emulation: an x86_64 worker offers it through QEMU.

The worker is declared `emulated: true` with `container: podman`; its builds run the
platform's image (Debian bookworm for arm64, made by workers/images/make_image.py)
under QEMU user-mode emulation registered with binfmt_misc. Making the image takes
minutes the first time (debootstrap of a foreign root); it is cached by its recipe.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import zipfile

import pytest
import requests

from conftest import wait_builds, write_registry
from fakepypi import FakePyPI
from sdists import c_extension, make_sdist

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.containers,
    pytest.mark.emulated,
    pytest.mark.skipif(
        os.geteuid() != 0 or platform.machine() != "x86_64",
        reason="emulates aarch64 on an x86_64 host, as root (debootstrap, binfmt_misc)",
    ),
]

EM_AARCH64 = 183  # e_machine of an aarch64 ELF file
CHECK = "import platform, emuext._speed as s; s.call(); print(platform.machine())"
REGISTRY = f"""\
  - name: emuext
    platforms: [linux-aarch64]
    python: ["3.11"]
    test:
      command: ["python", "-c", "{CHECK}"]
"""


@pytest.fixture
def fake_pypi(tmp_path):
    pypi = FakePyPI()
    files = {"emuext/__init__.py": "", "emuext/_speed.c": c_extension("_speed")}
    ext = {"emuext._speed": ["emuext/_speed.c"]}
    pypi.publish(make_sdist(tmp_path / "sdists", "emuext", "1.0", files, ext_modules=ext))
    url = pypi.start()
    yield url
    pypi.stop()


def elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF"
    return int.from_bytes(data[18:20], "little")


def test_an_emulated_worker_builds_checks_tests_and_publishes_an_aarch64_wheel(
    farm_factory, tmp_path, arm64_image, fake_pypi
):
    farm = farm_factory(
        write_registry(tmp_path / "packages.yaml", REGISTRY),
        pypi_url=fake_pypi,
        container="podman",
        emulate="linux-aarch64",
        pythons=["3.11"],
        settings_overrides={"build_images": {"linux-aarch64": {"image": arm64_image}}},
    )
    (build,) = wait_builds(farm, farm.force("emuext", reason="e2e"), timeout=1800)
    assert build["results"] == 0, build["state_string"]

    # the test command ran in the image, under emulation
    test_step = next(
        s for s in farm.api(f"builds/{build['buildid']}/steps")["steps"] if s["name"] == "test"
    )
    log = farm.api(f"steps/{test_step['stepid']}/logs")["logs"][0]
    text = requests.get(f"{farm.url}api/v2/logs/{log['logid']}/raw", timeout=30).text
    assert "aarch64" in text.splitlines() and "tests passed" in text

    # the record says how it was built
    (wheel,) = (farm.settings().index_path / "emuext").glob("*.whl")
    assert "aarch64" in wheel.name
    record = json.loads(wheel.with_name(wheel.name + ".json").read_text())
    assert record["emulated"] is True and record["platform"] == "linux-aarch64"

    # pip, asked for aarch64 wheels, gets it from the farm's index: an aarch64 ELF inside
    dest = tmp_path / "dl"
    subprocess.run(
        [sys.executable, "-m", "pip", "--isolated", "download", "--quiet", "--no-deps",
         "--only-binary", ":all:", "--platform", "manylinux_2_28_aarch64",
         "--python-version", "3.11", "--index-url", f"{farm.url}simple/", "--dest", dest,
         "emuext"],
        check=True,
    )  # fmt: skip
    (got,) = dest.glob("*.whl")
    with zipfile.ZipFile(got) as zf:
        (so,) = [n for n in zf.namelist() if n.endswith(".so")]
        assert elf_machine(zf.read(so)) == EM_AARCH64
