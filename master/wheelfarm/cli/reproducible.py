"""`wheelfarm reproducible`: the share of the registry's packages whose verify builds
gave the same bytes (`index/verify.py` records and compares them)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import paths
from ..index.verify import share
from ..registry.packages import load_registry

DESCRIPTION = (
    "Share of the registry's packages whose verify builds gave the same bytes "
    "(start a verify rollout first)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # here too, as well as before the subcommand (SUPPRESS: the global one stays if absent)
    parser.add_argument(
        "--registry", type=Path, default=argparse.SUPPRESS, help="default: packages.yaml"
    )
    parser.add_argument(
        "--index", type=Path, help="the farm's index (default: the local farm's, .farm/)"
    )


def run(args: argparse.Namespace) -> int:
    """`wheelfarm reproducible`: the registry's share of reproducible packages."""
    registry = load_registry(getattr(args, "registry", None) or paths.REGISTRY)
    home = Path(getattr(args, "home", None) or paths.CHECKOUT / ".farm")
    index = args.index or home / "master" / "index"
    names = [n for n, p in registry.packages.items() if p.skip is None]
    found = share(index, names)
    verified = found["verified"]
    percent = f" ({100 * found['reproducible'] / verified:.0f}%)" if verified else ""
    print(
        f"{found['reproducible']} of {verified} verified packages reproducible{percent}; "
        f"{found['packages'] - verified} of {found['packages']} not verified"
    )
    for project, wheels in found["not_reproducible"].items():
        for wheel, differ in wheels.items():
            print(f"not reproducible: {project}: {wheel}: {', '.join(differ)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wheelfarm reproducible", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
