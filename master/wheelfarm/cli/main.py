"""`wheelfarm`: check the registry, plan a cascade, make a worker password, start,
reload and stop a local farm."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ..changes.registrydiff import added_targets
from ..registry.packages import Package, Registry, ValidationError, load_registry
from ..registry.platforms import SUPPORTED_PYTHONS, host_platform
from . import check, passwords, plan, reproducible, router
from .localfarm import DEFAULT_REGISTRY, LocalFarm, local_pythons

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
        registry=Path(args.registry or DEFAULT_REGISTRY).resolve(),
    )


def cmd_up(args: argparse.Namespace) -> int:
    """Start the local farm and build the registry; on a running farm, reload and build
    what the registry added since the last `up`."""
    try:
        registry = load_registry(args.registry or DEFAULT_REGISTRY)
    except ValidationError as e:
        print(e, file=sys.stderr)
        return 1
    platform = host_platform()
    if platform is None:
        print("wheelfarm: this machine is not one of the farm's platforms", file=sys.stderr)
        return 1
    python = args.python or f"{sys.version_info.major}.{sys.version_info.minor}"
    if python not in local_pythons():
        print(f"wheelfarm: python{python} is not on this machine", file=sys.stderr)
        return 1
    farm = _farm(args)
    running = farm.master_running()
    previous = farm.last_registry()
    farm.create()
    if running:
        print(f"wheelfarm: the farm in {farm.home} is running: reloading its configuration")
        taken, log = farm.reconfig()
        if not taken:
            problems = [ln for ln in log.splitlines() if "wheelfarm" in ln or "error" in ln]
            print("wheelfarm: the master refused the new configuration and keeps the old:")
            print("\n".join(problems[-20:]) or log[-2000:], file=sys.stderr)
            return 1
        farm.start()  # a worker that was stopped comes back
    else:
        print(f"wheelfarm: starting the master and a {platform.name} worker in {farm.home}")
        farm.start()
    print(f"wheelfarm: the farm is up: {farm.url} (packages: {farm.url}farm/packages/)")
    print(f"wheelfarm: log in as `admin`, password in {farm.users_file}")
    wanted: dict[int, str] = {}
    for package, rebuild in _to_build(registry, previous if running else None, platform.name):
        if python not in package.pythons:
            continue
        for brid in farm.force(
            package.name,
            platforms=[platform.name],
            pythons=[python],
            reason="wheelfarm up",
            rebuild=args.rebuild or rebuild,
        ):
            wanted[brid] = package.name
    farm.remember_registry()
    if running and not wanted:
        print("wheelfarm: nothing new in the registry to build")
    else:
        print(
            f"wheelfarm: {len(wanted)} builds requested; following them (Ctrl-C stops "
            "following, the farm keeps running)"
        )
    failed = _follow(farm, wanted) if args.wait else 0
    print(f"wheelfarm: farm running at {farm.url} (stop it with `wheelfarm down`)")
    return 1 if failed else 0


def _to_build(
    registry: Registry, previous: Registry | None, platform: str
) -> list[tuple[Package, bool]]:
    """The packages to request, and whether each must be rebuilt: all of them on a fresh
    start (what is built is skipped), else what the registry added or changed since."""
    packages = registry.for_platform(platform)
    if previous is None:
        return [(p, False) for p in packages]
    offered = {platform: frozenset(SUPPORTED_PYTHONS)}
    changed = {
        t.package: t.why
        for t in added_targets(previous, registry, offered, offered, settings_count=True)
    }
    # an entry whose build settings changed makes other bytes from the same sdist
    return [(p, changed[p.name].endswith(" changed")) for p in packages if p.name in changed]


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
                # the summary starts with the target this line names already
                said = b["state_string"].partition(": ")[2] or b["state_string"]
                took = (b["complete_at"] or 0) - (b["started_at"] or 0)
                status = RESULTS.get(b["results"], str(b["results"]))
                failed += b["results"] not in (0, 1, 3)
                skipped += b["results"] == 3
                print(
                    f"  [{len(done)}/{len(wanted)}] {status:>8}  {props.get('package')} "
                    f"{props.get('version', '?')} py{props.get('python')} "
                    f"{props.get('platform')} ({took:.0f} s): {said}  "
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


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The `wheelfarm` command line; its defaults from `environ` (default: os.environ)."""
    parser = argparse.ArgumentParser(
        prog="wheelfarm", description="a community build farm for PyPI"
    )
    defaults = LocalFarm.from_environment(environ)
    parser.add_argument(
        "--home",
        default=defaults.home,
        help="where the local farm keeps its state (default: .farm/; env WHEELFARM_HOME)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=defaults.www_port,
        help=f"web UI and index port (default {defaults.www_port}; env WHEELFARM_PORT)",
    )
    parser.add_argument(
        "--worker-port",
        type=int,
        default=defaults.worker_port,
        help=f"where workers connect (default {defaults.worker_port}; env WHEELFARM_WORKER_PORT)",
    )
    parser.add_argument(
        "--db-url", default=defaults.db_url, help="the master's database (env WHEELFARM_DB_URL)"
    )
    parser.add_argument(
        "--registry", type=Path, help="the package registry (default: packages.yaml)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = (
        ("check", check),
        ("plan", plan),
        ("worker-password", passwords),
        ("reproducible", reproducible),
        ("router-config", router),
    )
    for name, module in commands:
        command = sub.add_parser(name, help=module.DESCRIPTION, description=module.DESCRIPTION)
        module.add_arguments(command)
        command.set_defaults(func=module.run)
    up = sub.add_parser("up", help="start a local farm (or reload a running one) and build")
    up.add_argument("--python", help="Python version to build for (default: this one)")
    up.add_argument("--rebuild", action="store_true", help="rebuild what is already built")
    up.add_argument("--no-wait", dest="wait", action="store_false", help="do not follow the builds")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the local farm")
    down.set_defaults(func=cmd_down)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
