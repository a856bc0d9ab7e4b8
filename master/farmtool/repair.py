"""The repair step: make the wheel portable for the platform policy (auditwheel,
delocate, delvewheel), then normalise its zip so one sdist and toolchain give one
wheel's bytes. Only the farm's own tools run here, on the wheel as data; in a
container worker's image they run in a container of their own (trusted, offline)."""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

from .facts import FACTS, fail
from .files import fresh_dir, one_file
from .isolation.container import ContainerPlace
from .isolation.limits import Limits
from .places import place_for
from .processes import check_run, error_line, run, say
from .system import system_packages
from .tags import parse_tag, tag_satisfies, wheel_platform_tags
from .toolchain import python_version
from .tools import which
from .wheels import check_zip, is_pure, normalise_wheel


def auditwheel_env() -> dict[str, str]:
    """auditwheel finds patchelf only on PATH: put both tools' directories first."""
    import os

    dirs: list[str] = []
    for tool in ("auditwheel", "patchelf"):
        found = which(tool)
        if found:
            for d in (str(Path(found).parent), str(Path(found).resolve().parent)):
                if d not in dirs:
                    dirs.append(d)
    path = os.pathsep.join([*dirs, os.environ.get("PATH", "")])
    return dict(os.environ, PATH=path)


def auditwheel_show(wheel: Path) -> tuple[str | None, list[str]]:
    """The platform tag `auditwheel show` finds the wheel consistent with, and its output."""
    done = run(["auditwheel", "show", wheel], env=auditwheel_env())
    text = " ".join(" ".join(done.lines).split())  # it wraps its lines
    match = re.search(r'consistent with the following platform tag: "([^"]+)"', text)
    if done.rc or not match:
        return None, done.lines
    return match.group(1), done.lines


def violation(needed: str, show_lines: list[str], policy: str) -> str:
    """`policy violation: wheel needs manylinux_2_34 (symbol versions GLIBC_2.34), ...`."""
    parsed, want = parse_tag(needed), parse_tag(policy)
    base = f"{parsed[0]}_{parsed[1][0]}_{parsed[1][1]}" if parsed else needed
    text = " ".join(" ".join(show_lines).split())
    versions: set[str] = set()
    for group in re.findall(r"with versions \{([^}]*)\}", text):
        versions.update(v.strip(" '\"") for v in group.split(","))
    too_new = []
    for v in versions:
        m = re.fullmatch(r"GLIBC_(\d+)\.(\d+)", v)
        if m and want and (int(m[1]), int(m[2])) > want[1]:
            too_new.append(v)
    detail = ""
    if too_new:
        key = sorted(too_new, key=lambda v: tuple(int(x) for x in v[6:].split(".")))
        detail = f" (symbol versions {', '.join(key)})"
    return f"policy violation: wheel needs {base}{detail}, policy is {policy}"


def in_image(
    args: argparse.Namespace, subcommand: str, farm_args: list[str],
    writable: tuple[Path, ...] = (),
) -> None:  # fmt: skip
    """Run this subcommand again in a container of the build image (trusted: the farm's
    tools on the wheel as data, offline); take its facts as this step's."""
    place = place_for(args, python_version())
    assert isinstance(place, ContainerPlace)
    place.with_system_packages(system_packages(args.system))
    try:
        done, facts = place.run_self(subcommand, farm_args, writable)
    finally:
        place.close()
    if done.rc:
        fail(str(facts.get("reason") or error_line(done.lines) or f"{subcommand} failed"))
    if isinstance(facts.get("summary"), str):
        FACTS["summary"] = facts["summary"]


def cmd_repair(args: argparse.Namespace) -> None:
    """Make the wheel portable for the platform policy (or pass a pure wheel through)."""
    wheel = one_file(Path(args.in_dir), "*.whl", "wheel")
    check_zip(wheel, Limits.parse(args.limit))
    out = Path(args.out).absolute()
    if is_pure(wheel) or args.tool == "none":
        fresh_dir(out)
        shutil.copy2(wheel, out / wheel.name)
        what = "pure wheel: no repair needed" if is_pure(wheel) else "no repair tool here"
        say(f"{what}: {wheel.name}")
        return
    if args.container_engine and args.tool == "auditwheel":
        fresh_dir(out)
        farm_args = ["--tool", args.tool, "--policy", args.policy, "--in", args.in_dir]
        in_image(args, "repair", [*farm_args, "--out", str(out)], writable=(out,))
        FACTS["summary"] = f"repaired to {one_file(out, '*.whl', 'repaired wheel').name}"
        return
    fresh_dir(out)
    if args.tool == "auditwheel":
        repair_auditwheel(wheel, out, args.policy)
    elif args.tool == "delocate":
        check_run(["delocate-wheel", "-w", out, "-v", wheel], "repair failed")
    elif args.tool == "delvewheel":
        check_run(["delvewheel", "repair", "-w", out, wheel], "repair failed")
    if not any(out.glob("*.whl")):  # some tools write nothing when there is nothing to do
        shutil.copy2(wheel, out / wheel.name)
    repaired = one_file(out, "*.whl", "repaired wheel")
    if not any(tag_satisfies(t, args.policy) for t in wheel_platform_tags(repaired)):
        tags = ".".join(wheel_platform_tags(repaired))
        fail(f"policy violation: wheel needs {tags}, policy is {args.policy}")
    epoch = normalise_wheel(repaired, wheel)
    FACTS["summary"] = f"repaired to {repaired.name}"
    say(f"repaired {repaired.name} (zip normalised, timestamps {epoch})")


def repair_auditwheel(wheel: Path, out: Path, policy: str) -> None:
    done = run(["auditwheel", "repair", "--plat", policy, "-w", out, wheel], env=auditwheel_env())
    if not done.rc:
        return
    # Tell "needs a newer policy" (the package's toolchain problem) from other failures.
    needed, show_lines = auditwheel_show(wheel)
    if needed and parse_tag(needed) and not tag_satisfies(needed, policy):
        fail(violation(needed, show_lines, policy))
    reason = error_line(done.lines) or f"auditwheel exited {done.rc}"
    fail(f"repair failed: {re.sub(r'^auditwheel: error: ', '', reason)}")
