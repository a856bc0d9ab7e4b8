"""farmtool.py as a module for the tests: it is a standalone script, copied to workers,
not part of the wheelfarm package, so the tests load it from its file (once)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

FARMTOOL = (
    Path(__file__).resolve().parents[1]
    / "master"
    / "wheelfarm"
    / "build"
    / "worker_side"
    / "farmtool.py"
)


def _load():
    spec = importlib.util.spec_from_file_location("farmtool", FARMTOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


farmtool = _load()
