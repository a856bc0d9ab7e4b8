"""`wheelfarm plan PKG`: the rebuild cascade a new ABI of PKG would cause, without running it.

    $ wheelfarm plan multidict
    a new ABI of multidict rebuilds 2 packages in 2 waves: 40 builds
    wave 1 (1): yarl
    wave 2 (1): aiohttp
    linux-x86_64: 2 packages, 8 builds
    ...

Wave k holds the packages whose parents in the cascade are all in earlier waves: a
package can start as soon as its own parents have finished, so waves show the order
and the parallelism, not barriers. A wave of thousands shows its first 10 names
(`--names N` to change that). Downstream packages with `skip:` are listed as
skipped: they are not built and nothing waits for them.

The root's own rebuild is not counted: the cascade is what comes after it. Exit
codes: 0 planned, 1 the registry does not validate (problems printed as `wheelfarm
check` prints them), 2 unknown package or bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from ..cascade.plan import Plan, plan
from ..problems import ValidationError
from ..registry.graph import UnknownPackage
from ..registry.packages import load_registry
from .check import _default, add_registry_argument

NAMES_PER_WAVE = 10  # a hub's first wave can hold thousands of names


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _names(names: list[str], limit: int) -> str:
    if limit <= 0 or len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} ... and {len(names) - limit:,} more"


def print_plan(cascade: Plan, out: TextIO = sys.stdout, limit: int = NAMES_PER_WAVE) -> None:
    print(
        f"a new ABI of {cascade.root} rebuilds {_count(cascade.packages, 'package')} "
        f"in {_count(len(cascade.waves), 'wave')}: {_count(cascade.builds, 'build')}",
        file=out,
    )
    for i, wave in enumerate(cascade.waves, 1):
        print(f"wave {i} ({len(wave):,}): {_names(wave, limit)}", file=out)
    if cascade.skipped:
        print(
            f"skipped ({len(cascade.skipped):,}, not built): {_names(cascade.skipped, limit)}",
            file=out,
        )
    for platform, packages in cascade.per_platform.items():
        builds = cascade.builds_per_platform[platform]
        print(f"{platform}: {_count(packages, 'package')}, {_count(builds, 'build')}", file=out)


DESCRIPTION = "Print the rebuild cascade a new ABI of PACKAGE would cause."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("package", help="the package whose ABI changes")
    add_registry_argument(parser)
    parser.add_argument(
        "--names",
        type=int,
        default=NAMES_PER_WAVE,
        metavar="N",
        help=f"names shown per wave (default {NAMES_PER_WAVE}; 0 shows all)",
    )


def run(args: argparse.Namespace) -> int:
    registry_path = (
        args.registry_file or getattr(args, "registry", None) or _default("packages.yaml")
    )
    try:
        registry = load_registry(registry_path)
    except ValidationError as e:
        for problem in e.problems:
            prefix = "warning: " if problem.severity == "warning" else ""
            print(f"{prefix}{problem}", file=sys.stderr)
        return 1
    try:
        cascade = plan(registry, args.package)
    except UnknownPackage as e:
        print(f"wheelfarm plan: {e}", file=sys.stderr)
        return 2
    print_plan(cascade, sys.stdout, args.names)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wheelfarm plan", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
