"""`wheelfarm plan PKG`: output lines and exit codes, run as a real subprocess."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from wheelfarm.cascade.plan import Plan
from wheelfarm.cli import check
from wheelfarm.cli import plan as plan_cli
from wheelfarm.registry.platforms import PLATFORMS

REGISTRY = """\
schema: 1
packages:
  - name: MarkupSafe
    platforms: [linux-x86_64, macos-arm64]
  - name: jinja2
    depends: [markupsafe]
    platforms: [linux-x86_64, macos-arm64, windows-amd64]
    python: ["3.12", "3.13"]
  - name: Werkzeug
    depends: [MarkupSafe]
    platforms: [linux-x86_64]
    python: ["3.12"]
  - name: flask
    depends: [jinja2, werkzeug]
    python: ["3.11", "3.12", "3.13"]
  - name: legacy
    depends: [markupsafe]
    skip: needs libfoo
"""


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wheelfarm.cli.main", "plan", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def write(tmp_path: Path, text: str = REGISTRY) -> None:
    (tmp_path / "packages.yaml").write_text(text, encoding="utf-8")


def test_plan(tmp_path):
    write(tmp_path)
    result = run(tmp_path, "markupsafe", "packages.yaml")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "a new ABI of markupsafe rebuilds 3 packages in 2 waves: 22 builds",
        "wave 1 (2): jinja2, werkzeug",
        "wave 2 (1): flask",
        "skipped (1, not built): legacy",
        "linux-x86_64: 3 packages, 6 builds",
        "linux-aarch64: 1 package, 3 builds",
        "macos-arm64: 2 packages, 5 builds",
        "macos-x86_64: 1 package, 3 builds",
        "windows-amd64: 2 packages, 5 builds",
    ]


def test_plan_takes_names_as_written(tmp_path):
    write(tmp_path)
    result = run(tmp_path, "Jinja2", "packages.yaml")
    assert result.returncode == 0
    assert result.stdout.splitlines()[:2] == [
        "a new ABI of jinja2 rebuilds 1 package in 1 wave: 15 builds",
        "wave 1 (1): flask",
    ]


def test_nothing_downstream(tmp_path):
    write(tmp_path)
    result = run(tmp_path, "flask", "packages.yaml")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "a new ABI of flask rebuilds 0 packages in 0 waves: 0 builds"
    assert lines[1:] == [f"{p}: 0 packages, 0 builds" for p in PLATFORMS]


def test_unknown_package_exits_2(tmp_path):
    write(tmp_path)
    result = run(tmp_path, "flsk", "packages.yaml")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "wheelfarm plan: 'flsk' is not a package in packages.yaml (did you mean 'flask'?)\n"
    )


def test_invalid_registry_exits_1_with_the_problems(tmp_path):
    write(tmp_path, "schema: 1\npackages:\n  - name: a\n    versions: '>=2.0,,'\n")
    result = run(tmp_path, "a", "packages.yaml")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "packages.yaml:4: packages[0].versions: '>=2.0,,' is not a valid version specifier",
    ]


def test_missing_registry_exits_1(tmp_path):
    result = run(tmp_path, "a", "nope.yaml")
    assert result.returncode == 1
    assert result.stderr == "nope.yaml: (file): cannot read: No such file or directory\n"


def test_long_waves_are_cut(tmp_path):
    dependents = "".join(f"  - {{name: d{i:02d}, depends: [hub]}}\n" for i in range(13))
    write(tmp_path, f"schema: 1\npackages:\n  - name: hub\n{dependents}")
    result = run(tmp_path, "hub", "packages.yaml")
    assert result.returncode == 0
    names = ", ".join(f"d{i:02d}" for i in range(10))
    assert result.stdout.splitlines()[1] == f"wave 1 (13): {names} ... and 3 more"
    everything = run(tmp_path, "hub", "packages.yaml", "--names", "0")
    names = ", ".join(f"d{i:02d}" for i in range(13))
    assert everything.stdout.splitlines()[1] == f"wave 1 (13): {names}"


def test_big_numbers_have_separators():
    names = [f"p{i:04d}" for i in range(2345)]
    cascade = Plan("hub", [names], [], {"linux-x86_64": 2345}, {"linux-x86_64": 11725}, 11725)
    out = io.StringIO()
    plan_cli.print_plan(cascade, out, limit=2)
    assert out.getvalue().splitlines() == [
        "a new ABI of hub rebuilds 2,345 packages in 1 wave: 11,725 builds",
        "wave 1 (2,345): p0000, p0001 ... and 2,343 more",
        "linux-x86_64: 2,345 packages, 11,725 builds",
    ]


def test_default_registry_is_the_repositorys(tmp_path, monkeypatch, capsys):
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    repo.mkdir()
    elsewhere.mkdir()
    write(repo)
    monkeypatch.setattr(check.paths, "CHECKOUT", repo)
    monkeypatch.chdir(elsewhere)
    assert plan_cli.main(["werkzeug"]) == 0
    assert capsys.readouterr().out.startswith("a new ABI of werkzeug rebuilds 1 package in")


def test_help(tmp_path):
    result = run(tmp_path, "--help")
    assert result.returncode == 0
    assert "usage: wheelfarm plan" in result.stdout
