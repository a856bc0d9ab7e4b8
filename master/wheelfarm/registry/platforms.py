"""The farm's platforms, as one table of data.

A platform says which wheel tag a portable wheel must carry, which tool repairs
wheels into that tag, how a worker qualifies for it, and how a worker starts a
given Python version. Builders, worker matching and the repair step all read
this table; nothing subclasses it.
"""

from __future__ import annotations

import platform as _platform
import sys
from dataclasses import dataclass

# The Python versions the farm builds for unless a package asks for fewer.
SUPPORTED_PYTHONS: tuple[str, ...] = ("3.10", "3.11", "3.12", "3.13", "3.14")


@dataclass(frozen=True)
class Platform:
    name: str
    os: str  # what a worker's operating system must be: linux, macos, windows
    arch: str  # what a worker's machine must be (normalised, see host_platform())
    policy: str  # wheel platform tag a portable wheel must carry
    repair: str | None  # repair tool: auditwheel, delocate, delvewheel
    python_launcher: tuple[str, ...]  # argv prefix that starts Python {py}
    manylinux_image: str | None = None  # container used where an engine exists
    image_arch: str | None = None  # the images' architecture, as container engines name it
    # The farm's toolchain generation here: wheels from an older one are rebuilt
    # (a toolchain rollout bumps it).
    toolchain: str = "2026.11"

    def python_argv(self, version: str) -> list[str]:
        return [part.format(py=version) for part in self.python_launcher]

    @property
    def toolchain_key(self) -> str:
        """Wheels with the same key are interchangeable: no need to build twice."""
        return f"{self.policy}/{self.toolchain}"

    @property
    def builder_name(self) -> str:
        return f"build-{self.name}"


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform(
            name="linux-x86_64",
            os="linux",
            arch="x86_64",
            policy="manylinux_2_28_x86_64",
            repair="auditwheel",
            python_launcher=("python{py}",),
            manylinux_image="quay.io/pypa/manylinux_2_28_x86_64",
            image_arch="amd64",
        ),
        Platform(
            name="linux-aarch64",
            os="linux",
            arch="aarch64",
            policy="manylinux_2_28_aarch64",
            repair="auditwheel",
            python_launcher=("python{py}",),
            manylinux_image="quay.io/pypa/manylinux_2_28_aarch64",
            image_arch="arm64",
        ),
        Platform(
            name="macos-arm64",
            os="macos",
            arch="arm64",
            policy="macosx_11_0_arm64",
            repair="delocate",
            python_launcher=("python{py}",),
        ),
        Platform(
            name="macos-x86_64",
            os="macos",
            arch="x86_64",
            policy="macosx_10_13_x86_64",
            repair="delocate",
            python_launcher=("python{py}",),
        ),
        Platform(
            name="windows-amd64",
            os="windows",
            arch="amd64",
            policy="win_amd64",
            repair="delvewheel",
            python_launcher=("py", "-{py}"),
        ),
    )
}


def host_platform() -> Platform | None:
    """The farm platform this machine qualifies for, or None."""
    osname = {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(sys.platform)
    machine = _platform.machine().lower()
    # platform.machine() says x86_64 / aarch64 on Linux, arm64 / x86_64 on macOS, AMD64 on Windows
    return next((p for p in PLATFORMS.values() if (p.os, p.arch) == (osname, machine)), None)
