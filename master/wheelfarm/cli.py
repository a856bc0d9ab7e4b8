"""`wheelfarm`: check the registry, start and stop a local farm."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import check
from .localfarm import LocalFarm, local_pythons
from .platforms import host_platform
from .registry import ValidationError, load_registry
from .settings import REPO_ROOT

RESULTS = {
    0: "ok",
    1: "warnings",
    2: "FAILED",
    3: "skipped",
    4: "exception",
    5: "retry",
    6: "cancelled",
}


def _farm(args: argparse.Namespace) -> LocalFarm:
    return LocalFarm(
        home=Path(args.home),
        www_port=args.port,
        worker_port=args.worker_port,
        db_url=args.db_url,
        registry=Path(args.registry).resolve(),
    )


def cmd_up(args: argparse.Namespace) -> int:
    try:
        registry = load_registry(args.registry)
    except ValidationError as e:
        print(e, file=sys.stderr)
        return 1
    platform = host_platform()
    if platform is None:
        print("wheelfarm: this machine is not one of the farm's platforms", file=sys.stderr)
        return 1
    farm = _farm(args)
    farm.create()
    print(f"wheelfarm: starting the master and a {platform.name} worker in {farm.home}")
    farm.start()
    print(f"wheelfarm: the farm is up: {farm.url} (packages: {farm.url}farm/packages/)")
    print(f"wheelfarm: log in as `admin`, password in {farm.users_file}")
    python = args.python or f"{sys.version_info.major}.{sys.version_info.minor}"
    if python not in local_pythons():
        print(f"wheelfarm: python{python} is not on this machine", file=sys.stderr)
        return 1
    wanted: dict[int, str] = {}
    for package in registry.for_platform(platform.name):
        if python not in package.pythons:
            continue
        for brid in farm.force(
            package.name,
            platforms=[platform.name],
            pythons=[python],
            reason="wheelfarm up",
            rebuild=args.rebuild,
        ):
            wanted[brid] = package.name
    print(
        f"wheelfarm: {len(wanted)} builds requested; following them (Ctrl-C stops "
        "following, the farm keeps running)"
    )
    failed = _follow(farm, wanted) if args.wait else 0
    print(f"wheelfarm: farm running at {farm.url} (stop it with `wheelfarm down`)")
    return 1 if failed else 0


def _follow(farm: LocalFarm, wanted: dict[int, str]) -> int:
    """Print a line per finished build until all of `wanted` have finished."""
    done: set[int] = set()
    failed = skipped = 0
    try:
        while len(done) < len(wanted):
            builds = farm.api(
                "builds",
                complete="true",
                order="-buildid",
                limit=1000,
                property=["package", "version", "python", "platform"],
            )["builds"]
            for b in builds:
                brid = b["buildrequestid"]
                if brid not in wanted or brid in done:
                    continue
                done.add(brid)
                props = {k: v[0] for k, v in b["properties"].items()}
                took = (b["complete_at"] or 0) - (b["started_at"] or 0)
                status = RESULTS.get(b["results"], str(b["results"]))
                failed += b["results"] not in (0, 1, 3)
                skipped += b["results"] == 3
                print(
                    f"  [{len(done)}/{len(wanted)}] {status:>8}  {props.get('package')} "
                    f"{props.get('version', '?')} py{props.get('python')} "
                    f"{props.get('platform')} ({took:.0f} s): {b['state_string']}  "
                    f"{farm.url}#/builders/{b['builderid']}/builds/{b['number']}",
                    flush=True,
                )
            if len(done) < len(wanted):
                time.sleep(2)
    except KeyboardInterrupt:
        print("\nwheelfarm: stopped following; the farm keeps running")
    built = len(done) - failed - skipped
    print(f"wheelfarm: {built} built, {skipped} already built, {failed} failed")
    return failed


def cmd_down(args: argparse.Namespace) -> int:
    farm = _farm(args)
    farm.stop()
    print(f"wheelfarm: stopped the farm in {farm.home}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "check":
        return check.main(argv[1:])
    if argv and argv[0] == "worker-password":
        from . import passwords

        return passwords.main(argv[1:])
    if argv and argv[0] == "plan":
        from . import plan  # only this subcommand needs the graph code

        return plan.main(argv[1:])
    if argv and argv[0] == "reproducible":
        from . import verify

        return verify.main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="wheelfarm", description="a community build farm for PyPI"
    )
    parser.add_argument(
        "--home",
        default=os.environ.get("WHEELFARM_HOME", REPO_ROOT / ".farm"),
        help="where the local farm keeps its state (default: .farm/)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("WHEELFARM_PORT", 8010)),
        help="web UI and index port (default 8010)",
    )
    parser.add_argument(
        "--worker-port", type=int, default=int(os.environ.get("WHEELFARM_WORKER_PORT", 9989))
    )
    parser.add_argument(
        "--db-url", default=os.environ.get("WHEELFARM_DB_URL", "sqlite:///state.sqlite")
    )
    parser.add_argument("--registry", default=REPO_ROOT / "packages.yaml")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="validate packages.yaml and workers/ (see `wheelfarm check -h`)")
    sub.add_parser("plan", help="print the cascade a new ABI of a package causes (`plan -h`)")
    sub.add_parser("worker-password", help="make a worker's password (`worker-password -h`)")
    sub.add_parser("reproducible", help="share of packages whose verify builds gave the same bytes")
    up = sub.add_parser("up", help="start a local farm and build the registry for this machine")
    up.add_argument("--python", help="Python version to build for (default: this one)")
    up.add_argument("--rebuild", action="store_true", help="rebuild what is already built")
    up.add_argument("--no-wait", dest="wait", action="store_false", help="do not follow the builds")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the local farm")
    down.set_defaults(func=cmd_down)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
