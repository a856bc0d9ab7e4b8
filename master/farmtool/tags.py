"""Wheel file names and platform tags: which policy a tag meets."""

from __future__ import annotations

import re
from pathlib import Path

# PEP 427: name-version(-build)?-python-abi-platform.whl, each part without a dash
WHEEL_NAME = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?)-(?P<version>[A-Za-z0-9_.!+]+)"
    r"(?:-(?P<build>\d[A-Za-z0-9_.]*))?-(?P<python>[A-Za-z0-9_.]+)-(?P<abi>[A-Za-z0-9_.]+)"
    r"-(?P<platform>[A-Za-z0-9_.]+)\.whl"
)


def wheel_name_ok(filename: str) -> bool:
    return len(filename) <= 255 and bool(WHEEL_NAME.fullmatch(filename))


def wheel_project(filename: str) -> str:
    """The (normalised) project name a wheel file name says."""
    match = WHEEL_NAME.fullmatch(filename)
    return re.sub(r"[-_.]+", "-", match["name"]).lower() if match else ""


def wheel_platform_tags(wheel: Path) -> list[str]:
    return wheel.name[: -len(".whl")].split("-")[-1].split(".")


def expanded_tags(filename: str) -> set[str]:
    """`a-1.0-cp311-cp311-linux_x86_64.whl` -> {"cp311-cp311-linux_x86_64"}, expanded."""
    parts = filename[: -len(".whl")].split("-")[-3:]
    pythons, abis, platforms = (p.split(".") for p in parts)
    return {f"{x}-{y}-{z}" for x in pythons for y in abis for z in platforms}


_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def parse_tag(tag: str) -> tuple[str, tuple[int, ...], str] | None:
    """manylinux_2_17_x86_64 -> ("manylinux", (2, 17), "x86_64"); also musllinux, macosx."""
    for legacy, version in _LEGACY_MANYLINUX.items():
        if tag.startswith(legacy + "_"):
            return "manylinux", version, tag[len(legacy) + 1 :]
    match = re.fullmatch(r"(manylinux|musllinux|macosx)_(\d+)_(\d+)_(.+)", tag)
    if not match:
        return None
    family, major, minor, arch = match.groups()
    return family, (int(major), int(minor)), arch


def tag_satisfies(tag: str, policy: str) -> bool:
    """Whether a wheel tagged `tag` is acceptable under `policy` (same or older base)."""
    if tag == policy:
        return True
    got, want = parse_tag(tag), parse_tag(policy)
    if not got or not want or got[0] != want[0]:
        return False
    arch_ok = got[2] == want[2] or (
        got[0] == "macosx" and got[2] == "universal2" and want[2] in ("arm64", "x86_64")
    )
    return arch_ok and got[1] <= want[1]
