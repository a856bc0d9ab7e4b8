"""`wheelfarm check`: exit codes and output lines, run as a real subprocess."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from wheelfarm.cli import check

REGISTRY = """\
schema: 1
packages:
  - name: markupsafe
    platforms: [linux-x86_64]
  - name: six
    platforms: [linux-x86_64, macos-arm64]
"""
WORKER = """\
  - name: {name}
    owner: ops@example.org
    platform: {platform}
    python: ["3.12"]
"""


def farm(tmp_path: Path, registry: str = REGISTRY, workers: str = "") -> tuple[Path, Path]:
    """Write packages.yaml and workers/workers.yaml under tmp_path; return their paths."""
    (tmp_path / "packages.yaml").write_text(registry, encoding="utf-8")
    (tmp_path / "workers").mkdir()
    body = f"workers:\n{workers}" if workers else "workers: []\n"
    (tmp_path / "workers" / "workers.yaml").write_text("schema: 1\n" + body, encoding="utf-8")
    return tmp_path / "packages.yaml", tmp_path / "workers"


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wheelfarm.cli.check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ok(tmp_path):
    farm(tmp_path)
    result = run(tmp_path, "packages.yaml", "--workers", "workers")
    assert (result.returncode, result.stderr) == (0, "")
    assert (
        result.stdout
        == "packages.yaml: 2 packages OK; workers/workers.yaml: 0 workers OK; 0 rollouts OK\n"
    )


def test_errors_in_both_files(tmp_path):
    farm(
        tmp_path,
        registry="schema: 1\npackages:\n  - name: a\n    versions: '>=2.0,,'\n  - name: 'b;c'\n",
        workers=WORKER.format(name="Bad", platform="linux-x86_64"),
    )
    result = run(tmp_path, "packages.yaml", "--workers", "workers")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "packages.yaml:4: packages[0].versions: '>=2.0,,' is not a valid version specifier",
        "packages.yaml:5: packages[1].name: 'b;c' contains the shell metacharacter ';'",
        "workers/workers.yaml:3: workers[0].name: 'Bad' is not a valid worker name "
        "(lowercase letters, digits and '-', starting with a letter or digit, at most 63)",
    ]


def test_missing_files(tmp_path):
    result = run(tmp_path, "nope.yaml", "--workers", "nodir")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "nope.yaml: (file): cannot read: No such file or directory",
        "nodir/workers.yaml: (file): cannot read: No such file or directory",
    ]


def test_idle_worker_and_unserved_platform_warn_but_pass(tmp_path):
    farm(tmp_path, workers=WORKER.format(name="win-1", platform="windows-amd64"))
    result = run(tmp_path, "packages.yaml", "--workers", "workers")
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "warning: workers/workers.yaml:3: workers[0].platform: "
        "no package in packages.yaml builds for 'windows-amd64'",
        "warning: workers/workers.yaml: workers: "
        "no worker serves 'linux-x86_64' (packages to build there: 2)",
        "warning: workers/workers.yaml: workers: "
        "no worker serves 'macos-arm64' (packages to build there: 1)",
    ]
    assert (
        result.stdout
        == "packages.yaml: 2 packages OK; workers/workers.yaml: 1 workers OK; 0 rollouts OK\n"
    )


def test_no_unserved_platform_warning_without_workers(tmp_path):
    farm(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert check.run_check(tmp_path / "packages.yaml", tmp_path / "workers", out, err) == 0
    assert err.getvalue() == ""


def test_served_platforms_do_not_warn(tmp_path):
    workers = WORKER.format(name="lin", platform="linux-x86_64")
    workers += WORKER.format(name="mac", platform="macos-arm64")
    registry, workers_dir = farm(tmp_path, workers=workers)
    out, err = io.StringIO(), io.StringIO()
    assert check.run_check(registry, workers_dir, out, err) == 0
    assert err.getvalue() == ""
    assert out.getvalue().endswith("2 workers OK; 0 rollouts OK\n")


def test_skipped_packages_do_not_count_as_targets(tmp_path):
    registry = "schema: 1\npackages:\n  - {name: a, platforms: [macos-arm64], skip: later}\n"
    farm(tmp_path, registry=registry, workers=WORKER.format(name="mac", platform="macos-arm64"))
    out, err = io.StringIO(), io.StringIO()
    assert check.run_check(tmp_path / "packages.yaml", tmp_path / "workers", out, err) == 0
    assert "no package in" in err.getvalue()


def test_defaults_come_from_the_repository(tmp_path, monkeypatch, capsys):
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    repo.mkdir()
    elsewhere.mkdir()
    farm(repo)
    monkeypatch.setattr(check.paths, "CHECKOUT", repo)
    monkeypatch.chdir(elsewhere)
    assert check.main([]) == 0
    assert capsys.readouterr().out.startswith(f"{repo / 'packages.yaml'}: 2 packages OK; ")


def test_defaults_fall_back_to_the_current_directory(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    farm(tmp_path)
    monkeypatch.setattr(check.paths, "CHECKOUT", tmp_path / "empty")
    monkeypatch.chdir(tmp_path)
    assert check.main([]) == 0
    assert capsys.readouterr().out == (
        "packages.yaml: 2 packages OK; workers/workers.yaml: 0 workers OK; 0 rollouts OK\n"
    )


def test_help_exits_cleanly(tmp_path):
    result = run(tmp_path, "--help")
    assert result.returncode == 0
    assert "usage: wheelfarm check" in result.stdout


@pytest.mark.skipif(
    not (check.paths.CHECKOUT / "packages.yaml").exists(),
    reason="the repository has no packages.yaml yet",
)
def test_the_repository_files_pass():
    result = run(check.paths.CHECKOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("packages.yaml: ")


def test_rollouts_next_to_the_registry_are_checked(tmp_path):
    registry = tmp_path / "packages.yaml"
    registry.write_text("schema: 1\npackages:\n  - name: six\n")
    (tmp_path / "workers").mkdir()
    (tmp_path / "workers" / "workers.yaml").write_text("schema: 1\nworkers: []\n")
    (tmp_path / "rollouts.yaml").write_text(
        "schema: 1\nrollouts:\n  - name: py313\n    packages: [six, numpy]\n    python: ['2.7']\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert check.run_check(registry, tmp_path / "workers", out, err) == 1
    lines = err.getvalue().splitlines()
    assert (
        f"{tmp_path / 'rollouts.yaml'}:4: rollouts[0].packages[1]: 'numpy' is not in the registry"
        in lines
    )
    assert any(
        line.startswith(f"{tmp_path / 'rollouts.yaml'}:5: rollouts[0].python[0]: ")
        for line in lines
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--registry", "{registry}", "check", "--workers", "{workers}"],
        ["check", "{registry}", "--workers", "{workers}"],
    ],
)
def test_global_options_before_the_subcommand(tmp_path, args):
    """`wheelfarm --registry FILE check`, as `wheelfarm --help` shows it, works too."""
    registry, workers = farm(tmp_path)
    argv = [a.format(registry=registry, workers=workers) for a in args]
    done = subprocess.run(
        [Path(sys.executable).parent / "wheelfarm", *argv], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{registry}: 2 packages OK; ")
    assert "Traceback" not in done.stderr


def test_worker_in_two_files(tmp_path):
    farm(tmp_path, workers=WORKER.format(name="w1", platform="linux-x86_64"))
    (tmp_path / "more.yaml").write_text(
        "schema: 1\nworkers:\n" + WORKER.format(name="w1", platform="macos-arm64"),
        encoding="utf-8",
    )
    result = run(tmp_path, "packages.yaml", "--workers", "workers", "--workers-file", "more.yaml")
    assert result.returncode == 1
    assert result.stderr == (
        "more.yaml:3: workers[0].name: worker 'w1' is declared in two files: "
        "first in workers/workers.yaml:3\n"
    )


def test_warnings_name_the_file_of_their_worker(tmp_path):
    farm(tmp_path, workers=WORKER.format(name="w1", platform="linux-x86_64"))
    (tmp_path / "more.yaml").write_text(
        "schema: 1\nworkers:\n" + WORKER.format(name="w2", platform="windows-amd64"),
        encoding="utf-8",
    )
    result = run(tmp_path, "packages.yaml", "--workers", "workers", "--workers-file", "more.yaml")
    assert result.returncode == 0, result.stderr
    [idle] = [line for line in result.stderr.splitlines() if "windows-amd64" in line]
    assert idle.startswith("warning: more.yaml:3: workers[0].platform: ")
