"""The command line: `python farmtool.pyz SUBCOMMAND ...`, as the master's steps run it.

Every subcommand takes plain arguments (never a shell line), prints each command it
runs prefixed "+ ", and when it fails exits non-zero with exactly one final line
`error: <reason>` on stderr; the reason also goes into the facts file the master reads.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import NoReturn

from . import facts
from .build import cmd_build
from .check import cmd_check
from .environment import set_aside
from .facts import FACTS, Failure, facts_path, write_facts
from .isolation import ISOLATIONS
from .isolation.limits import Limits
from .processes import OUTPUT_MAX
from .repair import cmd_repair
from .sdist import cmd_fetch
from .testing import cmd_test
from .toolchain import cmd_toolchain


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad arguments end like any failure: with one `error: ...` line."""
        self.print_usage(sys.stdout)
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="farmtool", description="The worker side of wheelfarm.")
    p.add_argument("--facts-dir", default=facts.FACTS_DIR, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="subcommand", required=True)

    fetch = sub.add_parser("fetch", help=cmd_fetch.__doc__)
    fetch.add_argument("--url", required=True)
    fetch.add_argument("--sha256", required=True)
    fetch.add_argument("--filename", required=True)
    fetch.add_argument("--dest", required=True)
    fetch.set_defaults(func=cmd_fetch)

    def common(cmd: argparse.ArgumentParser, isolation: bool = True) -> None:
        cmd.add_argument("--container-engine", help="docker or podman: run inside --image")
        cmd.add_argument("--image", help="a manylinux image with /opt/python/cp3XY-cp3XY")
        cmd.add_argument("--container-arch", help="the image's architecture, if not this one's")
        cmd.add_argument("--limit", action="append", default=[], help="KEY=VALUE (limits.py)")
        cmd.add_argument(
            "--system", action="append", default=[], help="MANAGER:NAME, a system package"
        )
        if isolation:
            # the master always passes the worker's declared kind; run by hand, it is yours
            choices = ["auto", *ISOLATIONS]
            cmd.add_argument("--isolation", choices=choices, default="none-i-accept-the-risk")
            cmd.add_argument(
                "--frontend", action="append", default=[],
                help="a pin of the PEP 517 frontend and what it needs (the lock's)",
            )  # fmt: skip
            cmd.add_argument("--index-url", help="the farm's simple index (preferred)")
            cmd.add_argument("--extra-index-url", help="PyPI's simple index")

    build = sub.add_parser("build", help=cmd_build.__doc__)
    build.add_argument("--sdist-dir", required=True)
    build.add_argument("--out", required=True)
    build.add_argument("--requires", action="append", default=[], help="extra build requirement")
    build.add_argument("--pass-env", action="append", default=[], help="variable to pass on")
    common(build)
    build.set_defaults(func=cmd_build)

    tools = ["auditwheel", "delocate", "delvewheel", "none"]
    repair = sub.add_parser("repair", help=cmd_repair.__doc__)
    repair.add_argument("--tool", required=True, choices=tools)
    repair.add_argument("--policy", required=True)
    repair.add_argument("--in", dest="in_dir", required=True)
    repair.add_argument("--out", required=True)
    common(repair, isolation=False)
    repair.set_defaults(func=cmd_repair)

    check = sub.add_parser("check", help=cmd_check.__doc__)
    check.add_argument("--wheel-dir", required=True)
    check.add_argument("--policy", required=True)
    check.add_argument("--tool", choices=tools, default="none")
    common(check, isolation=False)
    check.set_defaults(func=cmd_check)

    usage = "%(prog)s [options] [-- COMMAND ARGS...]"
    test = sub.add_parser("test", help=cmd_test.__doc__, usage=usage)
    test.add_argument("--wheel-dir", required=True)
    test.add_argument("--requires", action="append", default=[], help="test requirement")
    test.add_argument(
        "--skip-import", action="append", default=[], help="module (or package) not to import"
    )
    test.add_argument("--import-timeout", type=float, default=600)
    common(test)
    test.set_defaults(func=cmd_test, command=[])

    sub.add_parser("toolchain", help=cmd_toolchain.__doc__).set_defaults(func=cmd_toolchain)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:  # `test ... -- COMMAND ARGS`: everything after -- is the command
        at = argv.index("--")
        argv, command = argv[:at], argv[at + 1 :]
    args = parser().parse_args(argv)
    if command:
        if args.subcommand != "test":
            print("error: only `test` takes a command after --", file=sys.stderr)
            return 2
        args.command = command
    set_aside(getattr(args, "pass_env", []))  # before anything trusted reads the environment
    facts.set_facts_dir(args.facts_dir)
    path = facts_path(args.subcommand)
    path.parent.mkdir(parents=True, exist_ok=True)  # before any sandbox starts: it hides it
    if path.exists():
        path.unlink()  # a previous build's, never to be taken for this one's
    try:
        output = Limits.parse(getattr(args, "limit", [])).output
        if output:
            OUTPUT_MAX[0] = output
        args.func(args)
    except Failure as e:
        _flush()
        print(f"error: {e}", file=sys.stderr, flush=True)
        FACTS["reason"] = str(e)
        write_facts(args.subcommand)
        return 1
    except Exception as e:  # a bug here must still end with one clear line
        traceback.print_exc(file=sys.stdout)
        _flush()
        reason = f"farmtool crashed: {type(e).__name__}: {str(e)[:500]}"
        print(f"error: {reason}", file=sys.stderr, flush=True)
        FACTS["reason"] = reason
        write_facts(args.subcommand)
        return 1
    write_facts(args.subcommand)
    return 0


def _flush() -> None:
    try:
        sys.stdout.flush()
    except OSError:
        pass
