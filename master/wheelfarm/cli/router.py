"""`wheelfarm router-config CBDIR`: the crossbar router's config for a cluster of masters.

Writes `CBDIR/config.json` (one realm, a WebSocket transport at /ws) and prints the
`mq_router_url` every master sets; `crossbar start --cbdir CBDIR` runs the router (the
unit deploy/systemd/wheelfarm-router.service does). See docs/operators/several-masters.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from ..ops.cluster import write_router_config

DESCRIPTION = "Write the message router's config for several masters (crossbar)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cbdir", type=Path, help="the router's folder (crossbar's --cbdir)")
    parser.add_argument("--port", type=int, default=8081, help="its port (default 8081)")
    parser.add_argument(
        "--interface",
        default="127.0.0.1",
        help="the address it listens on, reachable by the masters only (default 127.0.0.1)",
    )
    parser.add_argument("--realm", default="buildbot", help="the WAMP realm (default buildbot)")


def run(args: argparse.Namespace) -> int:
    try:
        ipaddress.ip_address(args.interface)
    except ValueError:
        print(f"wheelfarm router-config: {args.interface!r} is not an IP address", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"wheelfarm router-config: {args.port} is not a port", file=sys.stderr)
        return 2
    try:
        path = write_router_config(args.cbdir, args.port, args.realm, args.interface)
    except OSError as e:
        print(f"wheelfarm router-config: cannot write {args.cbdir}: {e}", file=sys.stderr)
        return 1
    host = f"[{args.interface}]" if ":" in args.interface else args.interface
    print(f"wrote {path}")
    print(f"mq_router_url: ws://{host}:{args.port}/ws  (realm {args.realm})")
    return 0
