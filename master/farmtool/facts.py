"""What the master believes about a step, and the one way a step fails.

The step's output is shown, never believed (the package's own code prints into it).
What the master records comes from `.facts/SUBCOMMAND.json`, written here, in a
folder no sandbox can see; the master fetches it through the worker process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NoReturn

FACTS_DIR = ".facts"  # in the build directory; hidden from every sandbox
INNER = f"{FACTS_DIR}/inner"  # the facts of this program's runs inside a container
_where = [FACTS_DIR]  # where this run writes its facts (--facts-dir)
# what this run found: summary, toolchain, isolation (and the reason, on failure)
FACTS: dict[str, Any] = {}


class Failure(Exception):
    """A reason to stop: becomes the step's one `error: ...` line and its reason."""


def fail(message: str) -> NoReturn:
    raise Failure(message)


def set_facts_dir(folder: str) -> None:
    _where[0] = folder


def facts_path(subcommand: str) -> Path:
    return Path(_where[0]) / f"{subcommand}.json"


def write_facts(subcommand: str) -> None:
    folder = Path(_where[0])
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{subcommand}.json.part"
    partial.write_text(json.dumps(FACTS, sort_keys=True), encoding="utf-8")
    os.replace(partial, facts_path(subcommand))
