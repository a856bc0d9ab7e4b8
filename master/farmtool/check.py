"""The check step: the wheel meets the platform policy (auditwheel show), the abi3
rules (abi3audit) and check-wheel-contents. The farm's tools only, on the wheel as data."""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path

from .facts import FACTS, fail
from .files import read_bounded
from .processes import error_line, run, say
from .repair import auditwheel_show, in_image, violation
from .tags import tag_satisfies, wheel_platform_tags
from .tools import missing, which
from .wheels import is_pure

# check-wheel-contents codes we do not fail on, because real, working packages of
# the registry trip them (checked on the wheels of its 27 packages) or they are the project's
# packaging choice rather than a broken build:
#   W002 duplicate files: tzdata ships identical zone files under several names.
#   W004 module not at importable path: .py files used as data or templates.
#   W005 common top-level name (tests, docs...): the project's choice; the farm
#        builds what the sdist says.
#   W009 multiple top-level entries: attrs (attr/ + attrs/), wrapt (wrapt-stubs/),
#        any repaired wheel with a vendored-libraries directory.
# W010 (top-level directory without modules) is kept except for the `NAME.libs/`
# directory auditwheel and delvewheel add themselves (pyyaml.libs/). Kept: W001
# .pyc files, W003 non-module at top level, W006 top-level __init__.py, W007/W008
# empty library or wheel: these mean the build picked up the wrong files.
CWC_IGNORE = ("W002", "W004", "W005", "W009")


def cmd_check(args: argparse.Namespace) -> None:
    """The wheels meet the platform policy, the abi3 rules and check-wheel-contents."""
    if args.container_engine:  # the image's tools, for the image's architecture
        farm_args = ["--wheel-dir", args.wheel_dir, "--policy", args.policy, "--tool", args.tool]
        in_image(args, "check", farm_args)
        return
    wheels = sorted(Path(args.wheel_dir).glob("*.whl"))
    if not wheels:
        fail(f"no wheel in {args.wheel_dir}")
    for wheel in wheels:
        if not is_pure(wheel):
            check_policy(wheel, args.policy, args.tool)
            if "-abi3-" in wheel.name:
                check_abi3(wheel)
        elif wheel_platform_tags(wheel) != ["any"]:
            check_tags(wheel, args.policy)  # no compiled code, yet a platform tag
        check_contents(wheel)
    FACTS["summary"] = "checked " + " ".join(w.name for w in wheels)
    say(FACTS["summary"])


def check_tags(wheel: Path, policy: str) -> None:
    """The wheel's name carries the policy's platform tag or an older compatible one."""
    tags = wheel_platform_tags(wheel)
    if not any(tag_satisfies(t, policy) for t in tags):
        fail(f"policy violation: wheel is tagged {'.'.join(tags)}, policy is {policy}")


def check_policy(wheel: Path, policy: str, tool: str) -> None:
    """Name and contents (as auditwheel sees them) meet the policy."""
    import sys

    check_tags(wheel, policy)
    if tool == "auditwheel" and sys.platform.startswith("linux"):
        needed, lines = auditwheel_show(wheel)
        if not needed:
            fail(f"policy violation: auditwheel show: {error_line(lines) or 'no platform tag'}")
        if not tag_satisfies(needed, policy):
            fail(violation(needed, lines, policy))
        say(f"policy ok: contents are {needed}, policy is {policy}")


def check_abi3(wheel: Path) -> None:
    """An abi3 wheel's extensions use only the limited API of the Python it claims."""
    if not which("abi3audit"):
        fail(missing("abi3audit"))
    with tempfile.TemporaryDirectory(prefix="farmtool-abi3-") as tmp:
        report_path = Path(tmp) / "report.json"
        done = run(["abi3audit", "--strict", "--report", "--output", report_path, wheel])
        try:
            report = json.loads(read_bounded(report_path, 16 << 20))
        except Exception:  # noqa: BLE001 -- no report: its exit status says what it can
            report = {}
    problems = []
    for spec in report.get("specs", {}).values():
        for ext in spec.get("wheel", []):
            result = ext.get("result") or {}
            bad = sorted(result.get("non_abi3_symbols") or [])
            future = result.get("future_abi3_objects") or {}
            if bad:
                problems.append(f"{ext['name']} uses non-abi3 symbols {', '.join(bad[:5])}")
            if future or result.get("is_abi3_baseline_compatible") is False:
                problems.append(
                    f"{ext['name']} needs abi3 {result.get('computed')}, "
                    f"wheel says {result.get('baseline')}"
                )
    if problems:
        fail(f"abi3 violation: {'; '.join(problems)}")
    if done.rc:
        fail(f"abi3 violation: {error_line(done.lines) or f'abi3audit exited {done.rc}'}")
    say(f"abi3 ok: {wheel.name}")


def cwc_problems(lines: list[str]) -> list[tuple[str, str, list[str]]]:
    """check-wheel-contents output as (code, message, entries) per failed check."""
    problems: list[tuple[str, str, list[str]]] = []
    for line in lines:
        match = re.match(r"^.*?: (W\d{3}): (.*?):?$", line)
        if match:
            problems.append((match[1], match[2], []))
        elif line.startswith("  ") and problems:
            problems[-1][2].append(line.strip())
    return problems


def check_contents(wheel: Path) -> None:
    if not which("check-wheel-contents"):
        fail(missing("check-wheel-contents"))
    done = run(["check-wheel-contents", "--no-config", "--ignore", ",".join(CWC_IGNORE), wheel])
    if not done.rc:
        return
    problems = cwc_problems(done.lines)
    # A repair tool's vendored-libraries directory has no modules by design.
    real = [
        (code, message, entries)
        for code, message, entries in problems
        if not (code == "W010" and all(e.endswith(".libs/") for e in entries))
    ]
    if problems and not real:
        say("check-wheel-contents: only the repair tool's .libs/ directory (fine)")
        return
    shown = [
        f"{code} {message}: {' '.join(entries[:3])}".strip(": ") for code, message, entries in real
    ]
    fail(f"wheel contents: {'; '.join(shown[:3]) or error_line(done.lines)}")
