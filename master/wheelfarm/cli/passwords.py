"""`wheelfarm worker-password NAME`: make a volunteer worker's password, for the operator.

The password goes into the master's secrets directory as the file the configuration
reads (`worker-NAME`, mode 0600) and is printed once, to be sent to the volunteer. It
is never written into the repository.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from ..problems import ValidationError
from ..registry.workers import WORKER_NAME, load_workers, password_secret_name
from ..settings import DEFAULT_WORKERS


def make_password(name: str, secrets_dir: Path, rotate: bool = False) -> str:
    """Write a new password for worker `name`; refuses to replace one unless `rotate`."""
    if not WORKER_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid worker name")
    path = secrets_dir / password_secret_name(name)
    if path.exists() and not rotate:
        raise FileExistsError(f"{path} exists: pass --rotate to replace the password")
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = secrets.token_urlsafe(24)
    # written to a new 0600 file and renamed, so the secret is never readable by others
    tmp = path.with_name(f".{path.name}.new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(password)
    tmp.replace(path)
    return password


def declared(name: str, workers_files: list[Path]) -> bool:
    for path in workers_files:
        try:
            if any(w.name == name for w in load_workers(path)):
                return True
        except (OSError, ValidationError):
            continue  # `wheelfarm check` reports a broken file; here it just declares nobody
    return False


DESCRIPTION = "Generate a worker's password and store it in the master's secrets."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the worker's name, as in workers/workers.yaml")
    parser.add_argument(
        "--secrets-dir",
        type=Path,
        default=os.environ.get("WHEELFARM_SECRETS_DIR"),
        help="the master's secrets directory (default: $WHEELFARM_SECRETS_DIR)",
    )
    parser.add_argument(
        "--workers",
        type=Path,
        action="append",
        metavar="FILE",
        help="workers file that must declare NAME (default: workers/workers.yaml; repeatable)",
    )
    parser.add_argument("--rotate", action="store_true", help="replace an existing password")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wheelfarm worker-password", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    if args.secrets_dir is None:
        print(
            "wheelfarm worker-password: give --secrets-dir or set WHEELFARM_SECRETS_DIR",
            file=sys.stderr,
        )
        return 2
    try:
        password = make_password(args.name, Path(args.secrets_dir), args.rotate)
    except (ValueError, FileExistsError) as e:
        print(f"wheelfarm worker-password: {e}", file=sys.stderr)
        return 1
    workers_files = args.workers or [DEFAULT_WORKERS]
    if not declared(args.name, workers_files):
        files = ", ".join(str(p) for p in workers_files)
        print(
            f"wheelfarm worker-password: warning: {args.name!r} is not declared in {files}; "
            "the master accepts it only once it is",
            file=sys.stderr,
        )
    print(password)
    return 0
