"""The worker side for the tests: the `farmtool` package (importable like any other)
and its zipapp, `farmtool.pyz`, made as the master makes it (wheelfarm.pipeline.workerapp),
which tests copy into a build directory and run as the master's steps run it."""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import farmtool
from wheelfarm.pipeline.factory import FRONTEND as FRONTEND_DISTS
from wheelfarm.pipeline.toollock import worker_lock
from wheelfarm.pipeline.workerapp import zipapp_bytes

# `--frontend` options with the lock's pins, as the master passes them
FRONTEND = [a for d in FRONTEND_DISTS for a in ("--frontend", worker_lock().requirement(d))]


@functools.cache
def pyz() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="farmtool-tests-"))
    path = folder / "farmtool.pyz"
    path.write_bytes(zipapp_bytes())
    return path


def install(build_dir: Path) -> Path:
    """farmtool.pyz in a build directory, as the master's first step puts it there."""
    build_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(pyz(), build_dir / "farmtool.pyz"))


__all__ = ["FRONTEND", "farmtool", "install", "pyz"]
