"""farmtool finds the farm's tools when the worker's venv is not on PATH: in
WHEELFARM_TOOLS, or beside the Python that runs buildbot-worker; else it says what
is missing and where it looked. Real processes, no network."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from farmtoolmod import pyz

FARMTOOL = str(pyz())  # the zipapp, importable as any zip on sys.path
PLAIN_PATH = "/usr/bin:/bin"
PROBE = f"""\
import sys
sys.path.insert(0, {FARMTOOL!r})
from farmtool.tools import which
print(which("faketool"))
"""


def fake_worker(tmp_path: Path, name: str = "buildbot-worker") -> Path:
    """A venv-like bin/ with a python, a `faketool`, and a `name` script that runs
    farmtool's lookup as its child with a PATH that has neither, as a worker would."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    tool = bin_dir / "faketool"
    tool.write_text("#!/bin/sh\necho fake\n")
    tool.chmod(0o755)
    script = bin_dir / name
    script.write_text(
        textwrap.dedent(f"""\
        import os, subprocess, sys
        env = dict(os.environ, PATH={PLAIN_PATH!r})
        env.pop("WHEELFARM_TOOLS", None)
        env.update(dict(a.split("=", 1) for a in sys.argv[1:]))
        subprocess.run([{sys.executable!r}, "-c", {PROBE!r}], env=env, check=True)
        """)
    )
    return bin_dir


def probe(bin_dir: Path, name: str = "buildbot-worker", *env: str) -> str:
    done = subprocess.run(
        [str(bin_dir / "python"), str(bin_dir / name), *env],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PATH=PLAIN_PATH),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_found_beside_the_python_that_runs_buildbot_worker(tmp_path):
    bin_dir = fake_worker(tmp_path)
    assert probe(bin_dir) == str(bin_dir / "faketool")


def test_only_a_worker_parent_counts(tmp_path):
    bin_dir = fake_worker(tmp_path, name="something-else")
    assert probe(bin_dir, "something-else") == "None"


def test_found_in_wheelfarm_tools(tmp_path):
    bin_dir = fake_worker(tmp_path, name="something-else")
    found = probe(bin_dir, "something-else", f"WHEELFARM_TOOLS=/nonexistent:{bin_dir}")
    assert found == str(bin_dir / "faketool")


def test_a_missing_tool_is_named_with_where_it_was_looked_for(tmp_path):
    code = f"import sys; sys.path.insert(0, {FARMTOOL!r})"
    code += "\nfrom farmtool.facts import Failure\nfrom farmtool.processes import run"
    code += "\ntry: run(['no-such-farm-tool', '--version'])\n"
    code += "except Failure as e: print(e)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PATH=PLAIN_PATH, WHEELFARM_TOOLS=str(tmp_path)),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == (
        f"no-such-farm-tool not found (looked in PATH, WHEELFARM_TOOLS ({tmp_path})): "
        "install the farm's tools (workers/requirements.txt) in the worker's venv, "
        "or set WHEELFARM_TOOLS"
    )
