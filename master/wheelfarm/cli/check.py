"""`wheelfarm check`: validate the package registry and the workers file, as CI does on PRs.

Prints one line per problem to stderr (`file:line: field: message`, warnings prefixed
`warning: `) and a one-line summary to stdout when there are no errors. Exits 1 on errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .. import paths
from ..problems import Problem, ValidationError
from ..registry import coverage
from ..registry.packages import Registry, load_registry
from ..registry.rollouts import Rollout, load_rollouts
from ..registry.workers import WorkerEntry, load_worker_files

DESCRIPTION = "Validate packages.yaml and workers/workers.yaml."


def run_check(
    registry_path: str | Path,
    workers_dir: str | Path,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    more_workers: Sequence[str | Path] = (),
) -> int:
    workers_path = Path(workers_dir) / "workers.yaml"
    problems: list[Problem] = []
    registry: Registry | None = None
    workers: list[WorkerEntry] | None = None
    try:
        registry = load_registry(registry_path)
    except ValidationError as e:
        problems += e.problems
    try:
        workers = load_worker_files([workers_path, *more_workers])
    except ValidationError as e:
        problems += e.problems
    # rollouts.yaml lives next to the registry, and names its packages
    rollouts_path = Path(registry_path).with_name("rollouts.yaml")
    rollouts: list[Rollout] = []
    if registry is not None:
        try:
            rollouts = load_rollouts(rollouts_path, set(registry.packages))
        except ValidationError as e:
            problems += e.problems
    if registry is not None and workers is not None:
        problems += _coverage_warnings(registry, workers, str(workers_path))
    for problem in problems:
        prefix = "warning: " if problem.severity == "warning" else ""
        print(f"{prefix}{problem}", file=err)
    if registry is None or workers is None or any(p.severity != "warning" for p in problems):
        return 1
    print(
        f"{registry_path}: {len(registry.packages)} packages OK; "
        f"{workers_path}: {len(workers)} workers OK; {len(rollouts)} rollouts OK",
        file=out,
    )
    return 0


def _coverage_warnings(
    registry: Registry, workers: list[WorkerEntry], workers_file: str
) -> list[Problem]:
    """Workers that would sit idle, and (once there are workers) platforms nobody serves."""
    warnings = []
    idle = {w.name for w in coverage.idle_workers(registry, workers)}
    position: dict[str, int] = {}  # each worker's place in its own file
    for worker in workers:
        i = position[worker.file] = position.get(worker.file, -1) + 1
        if worker.name in idle:
            message = coverage.idle_message(registry, worker)
            file = worker.file or workers_file
            warnings.append(
                Problem(file, worker.line, f"workers[{i}].platform", message, "warning")
            )
    if workers:
        for platform, count in coverage.unserved_platforms(registry, workers).items():
            message = coverage.unserved_message(platform, count)
            warnings.append(Problem(workers_file, None, "workers", message, "warning"))
    return warnings


def _default(name: str) -> Path:
    """`name` in the repository this file is in, else in the current directory."""
    candidate = paths.CHECKOUT / name
    if not candidate.exists():
        return Path(name)
    try:
        return candidate.relative_to(Path.cwd())  # short paths in messages when possible
    except ValueError:
        return candidate


def add_registry_argument(parser: argparse.ArgumentParser) -> None:
    """The optional REGISTRY positional that `check` and `plan` share."""
    parser.add_argument(
        "registry_file",
        nargs="?",
        type=Path,
        metavar="REGISTRY",
        help="the package registry (default: --registry, else packages.yaml)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_registry_argument(parser)
    parser.add_argument(
        "--workers", type=Path, metavar="DIR", help="directory of workers.yaml (default: workers/)"
    )
    parser.add_argument(
        "--workers-file",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="another workers file the master reads too (setting workers_files); repeatable",
    )


def run(args: argparse.Namespace) -> int:
    registry = args.registry_file or getattr(args, "registry", None) or _default("packages.yaml")
    workers_dir = args.workers or _default("workers")
    return run_check(registry, workers_dir, sys.stdout, sys.stderr, args.workers_file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wheelfarm check", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
