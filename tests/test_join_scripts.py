"""The join scripts in workers/: they install the locked tools, and they refuse bad input."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKERS = ROOT / "workers"
SCRIPTS = ("join-linux.sh", "join-macos.sh", "join-windows.ps1")


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_installs_exactly_the_locked_requirements_txt(script):
    text = (WORKERS / script).read_text(encoding="utf-8")
    assert "requirements.txt" in text and "--require-hashes" in text and "--no-deps" in text


@pytest.mark.parametrize("script", ["join-linux.sh", "join-macos.sh"])
def test_shell_scripts_parse(script):
    subprocess.run(["bash", "-n", WORKERS / script], check=True)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--name", "alice-1"], "give --master HOST:PORT (or set WHEELFARM_MASTER)"),
        (["--master", "farm.example.org:9989"], "give --name NAME"),
        (
            ["--master", "http://farm.example.org", "--name", "alice-1"],
            "--master must be HOST:PORT, not 'http://farm.example.org'",
        ),
        (
            ["--master", "farm.example.org:9989", "--name", "Alice_1"],
            "'Alice_1' is not a valid worker name",
        ),
        (["--colour", "red"], "unknown argument: --colour"),
        (
            ["--master", "h:1", "--name", "a", "--emulate", "riscv64"],
            "--emulate: only aarch64 is offered",
        ),
        (
            ["--master", "h:1", "--name", "a", "--container", "docker"],
            "--container: only podman is set up here",
        ),
    ],
)
def test_linux_script_refuses_bad_arguments(tmp_path, args, message):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHEELFARM_")}
    done = subprocess.run(
        ["bash", WORKERS / "join-linux.sh", "--dir", tmp_path / "w", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode != 0
    assert message in done.stderr
    assert not (tmp_path / "w").exists()  # nothing was made


def test_linux_script_needs_a_password_without_a_terminal(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHEELFARM_")}
    done = subprocess.run(
        ["bash", WORKERS / "join-linux.sh", "--master", "h:1", "--name", "a", "--dir", tmp_path],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1
    assert "no password: set WHEELFARM_WORKER_PASSWORD or give --password-file" in done.stderr
