"""`build.env` may not change how programs load or find code: `wheelfarm check` says where."""

from __future__ import annotations

from pathlib import Path

import pytest

from wheelfarm.cli.check import main as check_main
from wheelfarm.registry.packages import ValidationError, load_registry


def problems(tmp_path: Path, env_lines: str) -> tuple[Path, list[str]]:
    path = tmp_path / "packages.yaml"
    path.write_text(
        "schema: 1\npackages:\n  - name: a\n    build:\n      env:\n" + env_lines, encoding="utf-8"
    )
    with pytest.raises(ValidationError) as e:
        load_registry(path)
    return path, [str(p) for p in e.value.problems]


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "DYLD_INSERT_LIBRARIES",
        "PATH",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "UV_INDEX_URL",
        "UV_EXTRA_INDEX_URL",
        "HOME",
        "Path",  # Windows reads names without case
    ],
)
def test_names_that_change_how_code_is_found_are_refused(tmp_path, name):
    path, found = problems(tmp_path, f"        {name}: /tmp/evil\n")
    assert found == [
        f"{path}:6: packages[0].build.env.{name}: "
        f"{name!r} changes how programs load or find code: a build may not set it"
    ]


def test_a_nul_byte_in_a_value_is_refused(tmp_path):
    path, found = problems(tmp_path, '        CFLAGS: "-O2"\n        OPT: "a\\0b"\n')
    assert found == [f"{path}:7: packages[0].build.env.OPT: contains a NUL byte"]


def test_a_line_break_in_a_value_is_refused(tmp_path):
    path, found = problems(tmp_path, '        CFLAGS: "-O2\\n--privileged"\n')
    assert found == [f"{path}:6: packages[0].build.env.CFLAGS: contains a line break"]


def test_ordinary_build_variables_pass(tmp_path):
    path = tmp_path / "packages.yaml"
    env = "{CFLAGS: '-O2', CIBUILDWHEEL: '1', MATURIN_PEP517_ARGS: '--features x'}"
    path.write_text(f"schema: 1\npackages:\n  - name: a\n    build: {{env: {env}}}\n")
    (package,) = load_registry(path).packages.values()
    assert dict(package.build_env)["CFLAGS"] == "-O2"


def test_wheelfarm_check_prints_file_line_and_field(tmp_path, capsys):
    path = tmp_path / "packages.yaml"
    entry = "  - name: a\n    build:\n      env: {LD_PRELOAD: x.so}\n"
    path.write_text("schema: 1\npackages:\n" + entry)
    workers = tmp_path / "workers"
    workers.mkdir()
    (workers / "workers.yaml").write_text("schema: 1\nworkers: []\n")
    assert check_main([str(path), "--workers", str(workers)]) != 0
    err = capsys.readouterr()
    assert f"{path}:5: packages[0].build.env.LD_PRELOAD: 'LD_PRELOAD' changes how" in (
        err.out + err.err
    )


def test_system_packages_are_names_per_manager(tmp_path):
    path = tmp_path / "packages.yaml"
    path.write_text(
        "schema: 1\npackages:\n  - name: a\n    build:\n      system:\n"
        "        apt: [libyaml-dev, libffi-dev]\n        brew: [libyaml]\n",
        encoding="utf-8",
    )
    (package,) = load_registry(path).packages.values()
    assert package.build_system == (("apt", ("libyaml-dev", "libffi-dev")), ("brew", ("libyaml",)))


@pytest.mark.parametrize(
    "lines, message",
    [
        ("        apt: ['libyaml-dev; rm -rf /']\n", "is not a apt package name"),
        ("        apt: [--force-yes]\n", "is not a apt package name"),
        ("        apt: []\n", "must not be an empty list"),
        ("        pacman: [yaml]\n", "unknown key 'pacman'"),
        ("        apt: libyaml-dev\n", "a list"),
    ],
)
def test_system_packages_refused_with_file_line_and_field(tmp_path, lines, message):
    path = tmp_path / "packages.yaml"
    path.write_text(
        "schema: 1\npackages:\n  - name: a\n    build:\n      system:\n" + lines,
        encoding="utf-8",
    )
    with pytest.raises(ValidationError) as e:
        load_registry(path)
    (problem,) = [str(p) for p in e.value.problems]
    assert problem.startswith(f"{path}:6: packages[0].build.system.")
    assert message in problem
