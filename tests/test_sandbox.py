"""The sandbox farmtool runs a package's own code in: its argv, its environment, and
what a real bubblewrap then lets that code do. No network is used (a loopback
server stands for "the network"), so these are unit tests.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from farmtoolmod import FARMTOOL, farmtool
from wheelfarm.build.steps import parse_facts

BWRAP = farmtool.ISOLATIONS["bubblewrap"]
NONE = farmtool.ISOLATIONS["none-i-accept-the-risk"]
needs_bwrap = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and shutil.which("bwrap")),
    reason="bubblewrap is not installed (make test installs it)",
)


def options(argv: list[str], option: str) -> list[tuple[str, ...]]:
    """The arguments of each occurrence of `option` (bwrap's binds take two)."""
    width = {"--ro-bind": 2, "--bind": 2, "--symlink": 2, "--tmpfs": 1, "--chdir": 1}[option]
    return [tuple(argv[i + 1 : i + 1 + width]) for i, a in enumerate(argv) if a == option]


# --- the argv ------------------------------------------------------------------------


def test_argv_binds_only_what_the_phase_needs(tmp_path):
    build = tmp_path / "worker" / "build-linux-x86_64" / "build"
    src = build / ".buildsrc"
    argv = farmtool.bwrap_argv(
        ["python", "-c", "print('hi; rm -rf /')"],
        cwd=src,
        readable=["/opt/python", build],
        writable=[src],
        hidden=[build / ".facts"],
    )
    assert argv[0] == "bwrap"
    # the command is passed as its own arguments, after --, never as a shell line
    assert argv[argv.index("--") + 1 :] == ["python", "-c", "print('hi; rm -rf /')"]
    for flag in ("--die-with-parent", "--unshare-all", "--new-session"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "--share-net" not in argv
    ro, rw = options(argv, "--ro-bind"), options(argv, "--bind")
    assert (str(build), str(build)) in ro and rw == [(str(src), str(src))]
    # the writable folder is mounted over the read-only build dir, the facts hidden last
    assert argv.index("--bind") > argv.index(str(build))
    assert options(argv, "--tmpfs")[-1] == (str(build / ".facts"),)
    assert argv[argv.index(str(build / ".facts")) + 1 :][:2] == [
        "--remount-ro",
        str(build / ".facts"),
    ]
    # the way to the build dir is made read-only (mode 0555), outermost first
    made = [argv[i + 3] for i, a in enumerate(argv) if a == "--perms"]
    assert str(tmp_path / "worker") in made and str(build) not in made
    assert made.index(str(tmp_path)) < made.index(str(build.parent))
    # nothing of the worker's basedir, /root or /home, and never the whole root
    sources = [src for src, _ in ro + rw]
    for path in ("/", "/root", "/home", str(tmp_path / "worker")):
        assert path not in sources
    assert options(argv, "--chdir") == [(str(src),)]


def test_a_reaper_is_pid_1():
    argv = farmtool.bwrap_argv(["make"], cwd="/tmp", reaper=["python", "-c", "reap"])
    assert argv[argv.index("--as-pid-1") :] == ["--as-pid-1", "--", "python", "-c", "reap", "make"]


def test_argv_system_dirs_and_masks_follow_the_host():
    argv = farmtool.bwrap_argv(["true"], cwd="/tmp")
    seen = {dest for _, dest in options(argv, "--ro-bind") + options(argv, "--symlink")}
    for d in ("/usr", "/etc", "/bin", "/lib"):
        if os.path.lexists(d):
            assert d in seen
    if os.path.exists("/etc/shadow"):
        assert ("/dev/null", "/etc/shadow") in options(argv, "--ro-bind")
    if os.path.islink("/bin"):  # merged /usr: recreated as the same link
        assert (os.readlink("/bin"), "/bin") in options(argv, "--symlink")


def test_network_only_when_asked():
    assert "--share-net" in farmtool.bwrap_argv(["true"], cwd="/tmp", network=True)


def test_without_isolation_the_argv_is_the_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sandbox = farmtool.Untrusted(NONE, (tmp_path,), {})
    assert sandbox.argv(["python", Path("x.py")], tmp_path) == ["python", "x.py"]


# --- the environment ------------------------------------------------------------------


def test_untrusted_code_never_gets_the_workers_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy:3128")
    monkeypatch.setenv("PIP_INDEX_URL", "https://user:pw@mirror/simple")
    monkeypatch.setenv("CFLAGS", "-O2")  # the registry's build.env, named by the master
    monkeypatch.setenv("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
    env = farmtool.untrusted_env(BWRAP, tmp_path / ".buildenv", ["CFLAGS", "NOT_SET"])
    assert "AWS_SECRET_ACCESS_KEY" not in env and "HTTPS_PROXY" not in env
    assert "PIP_INDEX_URL" not in env and "NOT_SET" not in env
    assert env["CFLAGS"] == "-O2" and env["SSL_CERT_FILE"].endswith(".crt")
    assert env["HOME"] == farmtool.SANDBOX_HOME and env["TMPDIR"] == "/tmp"
    # the build venv's tools (maturin, cmake) come first
    assert env["PATH"].split(os.pathsep)[0] == str(tmp_path / ".buildenv" / "bin")
    assert env["VIRTUAL_ENV"] == str(tmp_path / ".buildenv")
    # ... and the farm's own tools keep what they need to reach an index
    assert farmtool.tool_env()["PIP_INDEX_URL"] == "https://user:pw@mirror/simple"
    assert "AWS_SECRET_ACCESS_KEY" not in farmtool.tool_env()


def test_without_a_sandbox_home_is_a_fresh_folder_of_the_build(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = farmtool.untrusted_env(NONE, None)
    assert env["HOME"] == str(tmp_path / ".home")


# --- choosing the isolation ----------------------------------------------------------


def test_auto_refuses_where_nothing_isolates(monkeypatch):
    monkeypatch.setattr(farmtool, "which", lambda tool: None)
    with pytest.raises(farmtool.Failure) as e:
        farmtool.resolve_isolation("auto")
    assert str(e.value).startswith("untrusted build refused: nothing isolates it")
    assert "isolation: none-i-accept-the-risk" in str(e.value)
    with pytest.raises(farmtool.Failure, match="needs bwrap on PATH"):
        farmtool.resolve_isolation("bubblewrap")
    assert farmtool.resolve_isolation("none-i-accept-the-risk") is NONE


def test_auto_is_bubblewrap_where_it_is_installed(monkeypatch):
    monkeypatch.setattr(farmtool, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(farmtool.sys, "platform", "linux")
    assert farmtool.resolve_isolation("auto") is BWRAP
    monkeypatch.setattr(farmtool.sys, "platform", "darwin")
    with pytest.raises(farmtool.Failure, match="nothing isolates it"):
        farmtool.resolve_isolation("auto")


# --- the facts the master reads -------------------------------------------------------


def test_facts_keep_only_well_formed_values():
    good = {"reason": "build failed:\n boom", "toolchain": {"python": "3.11"}, "isolation": "x"}
    assert parse_facts(json.dumps(good).encode()) == {
        "reason": "build failed: boom",
        "toolchain": {"python": "3.11"},
        "isolation": "x",
    }
    assert parse_facts(b"toolchain: {not json") == {}
    assert parse_facts(b"\xff\xfe") == {}
    assert parse_facts(b"[1, 2]") == {}
    assert parse_facts(json.dumps({"toolchain": "forged", "summary": 3}).encode()) == {}


def test_farmtool_writes_its_facts_and_drops_a_previous_builds(tmp_path):
    facts = tmp_path / ".facts" / "fetch.json"
    facts.parent.mkdir()
    facts.write_text('{"summary": "stale"}')
    shutil.copy(FARMTOOL, tmp_path)
    argv = [sys.executable, "farmtool.py", "fetch", "--url", "file:///nonexistent/x.tar.gz"]
    argv += ["--sha256", "0" * 64, "--filename", "x.tar.gz", "--dest", "sdist"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1
    assert json.loads(facts.read_text())["reason"].startswith("sdist not found")
    assert "summary" not in json.loads(facts.read_text())


# --- what a real bubblewrap lets the package's code do ----------------------------------

HOSTILE = """
import os, socket, subprocess, sys, pathlib
worker, port, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3][::-1]
def attempt(name, action):
    try:
        action()
        print(name, "succeeded")
    except Exception as e:
        print(name, "failed", type(e).__name__)
attempt("read-tac", lambda: print(open(worker + "/buildbot.tac").read()))
attempt("list-basedir", lambda: print(os.listdir(worker)))
attempt("write-basedir", lambda: open(worker + "/owned", "w").write("x"))
attempt("write-build", lambda: open("../farmtool.py", "a").write("x"))
attempt("read-facts", lambda: print(os.listdir("../.facts")))
attempt("write-home", lambda: open(os.path.expanduser("~/owned"), "w").write("x"))
attempt("network", lambda: socket.create_connection(("127.0.0.1", port), timeout=2))
attempt("write-own", lambda: open("mine", "w").write("x"))
# outlives us if it can: sleeps, then writes into the build dir
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3); open('late', 'w')", marker],
                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(pid))
    return found


@needs_bwrap
def test_bubblewrap_keeps_the_code_in_its_folder(tmp_path, monkeypatch):
    worker = tmp_path / "worker"
    build = worker / "build-linux-x86_64" / "build"
    own = build / ".testrun"
    own.mkdir(parents=True)
    (build / ".facts").mkdir()
    (build / ".facts" / "build.json").write_text("{}")
    (build / "farmtool.py").write_text("# the farm's\n")
    (worker / "buildbot.tac").write_text("passwd = 'the-worker-password'\n")
    monkeypatch.chdir(build)
    home = Path.home()
    before = set(os.listdir(home))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    marker = f"sleeper-{uuid.uuid4().hex}"
    env = farmtool.untrusted_env(BWRAP, None)
    sandbox = farmtool.Untrusted(BWRAP, (own,), env)
    port = str(listener.getsockname()[1])
    # reversed: only the sleeper's command line holds the marker, not bwrap's
    argv = [sys.executable, "-c", HOSTILE, str(worker), port, marker[::-1]]
    done = subprocess.run(sandbox.argv(argv, own), cwd=own, env=env, capture_output=True, text=True)
    listener.close()
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "the-worker-password" not in out
    assert "build.json" not in out  # the facts folder is an empty tmpfs in there
    for name in ("read-tac", "write-build", "write-basedir"):
        assert f"{name} failed" in out, out
    # the way to the build dir exists (bwrap made it), empty and read-only
    assert "['build-linux-x86_64']" in out
    assert "network failed" in out and "write-own succeeded" in out
    assert "write-home succeeded" in out  # into its own tmpfs HOME, gone with it
    assert (own / "mine").exists() and not (worker / "owned").exists()
    assert (build / "farmtool.py").read_text() == "# the farm's\n"
    assert set(os.listdir(home)) == before
    # the detached sleeper died with the sandbox, and never wrote
    assert _processes_with(marker) == []
    time.sleep(3.5)
    assert not (own / "late").exists()


# --- a worker declares how it isolates ------------------------------------------------

WORKER = """\
schema: 1
workers:
  - name: w1
    owner: "A <a@example.org>"
    platform: linux-x86_64
    python: ["3.11"]
  - name: w2
    owner: "A <a@example.org>"
    platform: macos-arm64
    python: ["3.11"]
    isolation: {isolation}
"""


def test_workers_declare_their_isolation(tmp_path):
    from wheelfarm.config import _worker_properties
    from wheelfarm.registry.workers import load_workers

    path = tmp_path / "workers.yaml"
    path.write_text(WORKER.format(isolation="none-i-accept-the-risk"))
    linux, mac = load_workers(path)
    assert linux.isolation == "auto" and mac.isolation == "none-i-accept-the-risk"
    assert _worker_properties(mac)["isolation"] == "none-i-accept-the-risk"


def test_bubblewrap_is_refused_off_linux(tmp_path):
    from wheelfarm.problems import ValidationError
    from wheelfarm.registry.workers import load_workers

    path = tmp_path / "workers.yaml"
    path.write_text(WORKER.format(isolation="bubblewrap"))
    with pytest.raises(ValidationError) as e:
        load_workers(path)
    assert [str(p) for p in e.value.problems] == [
        f"{path}:11: workers[1].isolation: bubblewrap runs on Linux only, not on macos-arm64"
    ]


def test_an_unknown_isolation_is_refused_with_its_line(tmp_path):
    from wheelfarm.problems import ValidationError
    from wheelfarm.registry.workers import load_workers

    path = tmp_path / "workers.yaml"
    path.write_text(WORKER.format(isolation="chroot"))
    with pytest.raises(ValidationError) as e:
        load_workers(path)
    assert [str(p) for p in e.value.problems] == [
        f"{path}:11: workers[1].isolation: unknown isolation 'chroot' "
        "(one of: auto, bubblewrap, none-i-accept-the-risk)"
    ]


# --- the import check ----------------------------------------------------------------

FREE_THREADED_ONLY = """\
import sysconfig
assert sysconfig.get_config_var("Py_GIL_DISABLED"), "needs a free-threaded build"
"""


def test_import_check_skips_other_flavours_and_shows_tracebacks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    pkg = site / "flav"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "test_free_threading.py").write_text(FREE_THREADED_ONLY)
    (pkg / "broken.py").write_text("def helper():\n    raise RuntimeError('boom')\n\nhelper()\n")
    run = tmp_path / ".testrun"
    run.mkdir()
    sandbox = farmtool.Untrusted(NONE, (run,), farmtool.untrusted_env(NONE, venv))
    modules = ["flav", "flav.broken", "flav.test_free_threading"]
    python = venv / "bin" / "python"
    imported, skipped, failures = farmtool.import_all(
        python, modules, set(modules), sandbox, run, 60
    )
    out = capsys.readouterr().out
    assert imported == ["flav"]
    if not sysconfig_free_threaded():
        assert skipped == ["flav.test_free_threading"]
        assert "skipped import: flav.test_free_threading (another interpreter flavour" in out
    assert failures == ["flav.broken: RuntimeError: boom"]
    # the log shows where it broke: the traceback's last lines
    assert 'flav/broken.py", line 4, in <module>' in out
    assert "    RuntimeError: boom" in out


def sysconfig_free_threaded() -> bool:
    import sysconfig

    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def test_the_package_page_says_how_a_wheel_was_isolated():
    from wheelfarm.web.packages import isolation_text

    assert isolation_text({"isolation": {"build": "bubblewrap", "test": "bubblewrap"}}) == (
        "bubblewrap"
    )
    mixed = {"build": "container (podman)", "test": "bubblewrap"}
    assert isolation_text({"isolation": mixed}) == "build: container (podman), test: bubblewrap"
    assert isolation_text({}) == "not recorded"  # wheels built before records said it


def test_installs_run_sandboxed_with_the_network_and_a_cache_of_their_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UV_CACHE_DIR", "/root/.cache/uv")  # the worker's: never shared
    monkeypatch.setenv("UV_INDEX_URL", "https://mirror.example/simple")  # the operator's
    venv = tmp_path / ".buildenv"
    installs = farmtool.installer(BWRAP, venv)
    assert installs.network and installs.writable == (venv, tmp_path / farmtool.UV_CACHE)
    assert installs.env["UV_CACHE_DIR"] == str(tmp_path / farmtool.UV_CACHE)
    assert installs.env["UV_INDEX_URL"] == "https://mirror.example/simple"
    assert installs.env["HOME"] == farmtool.SANDBOX_HOME
    argv = installs.argv(["uv", "pip", "install", "x"], tmp_path)
    assert "--share-net" in argv and ("--bind", str(venv), str(venv)) == tuple(
        argv[argv.index("--bind") : argv.index("--bind") + 3]
    )
    assert not farmtool.installer(NONE, venv).isolation.sandboxed


@pytest.mark.parametrize(
    ("requirement", "plain"),
    [
        ("setuptools>=77", True),
        ("Cython < 3.1, >=0.29", True),
        ("foo[bar, baz]>=1; python_version < '3.12'", True),
        ("-e .", False),
        ("--index-url=https://evil.example/simple", False),
        ("foo @ https://evil.example/foo.tar.gz", False),
        ("./local", False),
        ("/root/.ssh", False),
        ("foo-1.0-py3-none-any.whl", False),
        ("setup.tar.gz", False),
        ("foo\nbar", False),
        ("", False),
    ],
)
def test_only_plain_requirements_are_installed_outside_the_sandbox(requirement, plain):
    assert farmtool.plain_requirement(requirement) is plain


@needs_bwrap
def test_wheels_come_from_the_workers_cache_which_no_build_can_write(tmp_path, monkeypatch, capsys):
    """A wheel is installed outside the sandbox, hard-linked from the worker's cache; an
    sdist is built in the sandbox, which cannot change the cache through those links."""
    import wheelhouse
    from sdists import make_sdist

    cache = tmp_path / "cache"
    monkeypatch.setenv(farmtool.CACHE_ENV, str(cache))
    monkeypatch.setenv("UV_DEFAULT_INDEX", wheelhouse.index_url())
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / farmtool.FACTS_DIR).mkdir()
    venv = tmp_path / ".buildenv"
    python = farmtool.make_venv(venv)
    installs = farmtool.installer(BWRAP, venv)
    farmtool.pip_install(python, ["six"], "cannot install", sandbox=installs)
    (six,) = venv.glob("lib/python*/site-packages/six.py")
    assert "--no-build" in capsys.readouterr().out
    cached = [p for p in cache.rglob("six.py") if p.stat().st_ino == six.stat().st_ino]
    assert cached, "six.py is not a link into the worker's cache"
    original = cached[0].read_bytes()

    # An sdist among the next requirements: its setup.py (run by the sandboxed
    # installer, which may write the venv) tries to rewrite six.py through the venv.
    setup_py = f"""
from setuptools import setup
with open({str(six)!r}, "a") as f:
    f.write("POISONED = True\\n")
setup()
"""
    sdists = tmp_path / "sdists"
    make_sdist(sdists, "evil", "1.0", {"evil/__init__.py": ""}, setup_py=setup_py)
    index = ["--find-links", str(sdists)]
    farmtool.pip_install(python, ["evil"], "cannot install", index, sandbox=installs)
    out = capsys.readouterr().out
    assert "not from wheels only" in out and "installing in the sandbox" in out
    assert "POISONED" in six.read_text()  # it ran, and wrote the build's own copy
    assert cached[0].read_bytes() == original  # not the worker's cache
    # and no wheel built from an sdist ever lands in the cache
    assert not [p for p in cache.rglob("*") if "evil" in p.name]


@needs_bwrap
def test_the_wheel_under_test_is_never_an_earlier_one_from_the_cache(tmp_path, monkeypatch):
    """The test step's wheel has the same path build after build (and a backend may set
    its mtime): the cache must give the new wheel's files, not the last one's."""
    from sdists import make_wheel

    monkeypatch.setenv(farmtool.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / farmtool.FACTS_DIR).mkdir()
    dist = tmp_path / "dist"
    for build, value in enumerate(("first", "second")):
        made = make_wheel(tmp_path / f"made-{build}", "samepath", "1.0", {"samepath.py": value})
        dist.mkdir(exist_ok=True)
        wheel = dist / made.name
        shutil.copyfile(made, wheel)
        os.utime(wheel, (1_700_000_000, 1_700_000_000))  # the same mtime both times
        venv = tmp_path / f".testenv-{build}"
        python = farmtool.make_venv(venv)
        installs = farmtool.installer(BWRAP, venv)
        farmtool.pip_install(python, [], "install failed", [], installs, wheels=[wheel])
        (module,) = venv.glob("lib/python*/site-packages/samepath.py")
        assert module.read_text() == value


@needs_bwrap
def test_sandboxed_code_writes_bytecode_only_into_fresh_pycache_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / farmtool.FACTS_DIR).mkdir()
    site = tmp_path / ".testenv" / "lib" / "python3.11" / "site-packages"
    (site / "mine").mkdir(parents=True)
    (site / "mine" / "__init__.py").write_text("X = 1\n")
    (site / "shipped" / "__pycache__").mkdir(parents=True)  # a wheel's own bytecode
    (site / "shipped" / "__init__.py").write_text("Y = 2\n")
    (site / "data").mkdir()  # no modules: nothing to compile
    env = {**farmtool.untrusted_env(BWRAP, None), "PYTHONPATH": str(site)}
    run = farmtool.fresh_dir(tmp_path / ".testrun")
    sandbox = farmtool.with_pycache(farmtool.Untrusted(BWRAP, (run,), env), tmp_path / ".testenv")
    assert sandbox.writable == (run, site / "mine" / "__pycache__")
    code = "import mine, shipped; open(mine.__file__, 'a').write('poisoned')"
    argv = [sys.executable, "-c", code]
    done = subprocess.run(sandbox.argv(argv, run), env=env, capture_output=True, text=True)
    assert "Read-only file system" in done.stderr  # the module itself stays read-only
    assert [p.name for p in (site / "mine" / "__pycache__").iterdir()] == [
        f"__init__.{sys.implementation.cache_tag}.pyc"
    ]
    assert list((site / "shipped" / "__pycache__").iterdir()) == []
    assert (site / "mine" / "__init__.py").read_text() == "X = 1\n"
    # unsandboxed, the venv is the build's to write anyway
    plain = farmtool.Untrusted(NONE, (run,), env)
    assert farmtool.with_pycache(plain, tmp_path / ".testenv") is plain


def test_system_packages_are_checked_on_a_workers_own_system():
    parsed = farmtool.system_packages(["apt:libc6", "dnf:glibc", "apt:wheelfarm-no-such-package"])
    assert parsed == {"apt": ["libc6", "wheelfarm-no-such-package"], "dnf": ["glibc"]}
    with pytest.raises(farmtool.Failure, match="not a system package"):
        farmtool.system_packages(["apt:libc6;reboot"])
    if farmtool.this_manager() != "apt":
        pytest.skip("a Debian machine")
    assert farmtool.missing_system_packages(parsed) == ("apt", ["wheelfarm-no-such-package"])
    # not installed, and not allowed to install it here: the build is declined, in one line
    with pytest.raises(farmtool.Failure) as e:
        farmtool.provide_system_packages(["apt:wheelfarm-no-such-package"], may_install=False)
    assert str(e.value) == (
        "declined: needs system packages wheelfarm-no-such-package (apt), "
        "not installed on this worker"
    )
    farmtool.provide_system_packages(["apt:libc6", "brew:libyaml"], may_install=False)


# --- a worker's Rust toolchain --------------------------------------------------------


def fake_rust(root: Path, version: str = "9.9.9") -> Path:
    """A toolchain folder as rustup lays one out: bin/cargo and bin/rustc."""
    (root / "bin").mkdir(parents=True)
    for tool in ("cargo", "rustc"):
        script = root / "bin" / tool
        script.write_text(f"#!/bin/sh\necho '{tool} {version} (fake)'\n")
        script.chmod(0o755)
    return root


def test_a_worker_names_its_rust_toolchain_or_none(tmp_path, monkeypatch):
    root = fake_rust(tmp_path / "rust")
    monkeypatch.setenv("WHEELFARM_RUST", str(root))
    assert farmtool.rust_toolchain() == farmtool.Rust(root, "9.9.9")
    monkeypatch.setenv("WHEELFARM_RUST", "none")  # the volunteer's: builds get no Rust
    assert farmtool.rust_toolchain() is None
    monkeypatch.setenv("WHEELFARM_RUST", str(tmp_path))
    with pytest.raises(farmtool.Failure, match="lacks cargo or rustc"):
        farmtool.rust_toolchain()


def test_without_a_declaration_the_toolchain_is_the_sysroot_of_rustc_on_path(tmp_path, monkeypatch):
    # rustup's proxy answers `rustc --print sysroot` with the toolchain it runs
    proxy = tmp_path / "proxy"
    proxy.mkdir()
    root = fake_rust(tmp_path / "toolchains" / "stable")
    (proxy / "rustc").write_text(f"#!/bin/sh\necho '{root}'\n")
    (proxy / "rustc").chmod(0o755)
    monkeypatch.delenv("WHEELFARM_RUST", raising=False)
    monkeypatch.setenv("PATH", f"{proxy}{os.pathsep}/usr/bin{os.pathsep}/bin")
    assert farmtool.rust_toolchain() == farmtool.Rust(root, "9.9.9")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert farmtool.rust_toolchain() is None


@needs_bwrap
def test_a_sandboxed_build_runs_the_toolchain_read_only_and_only_it(tmp_path, monkeypatch):
    root = fake_rust(tmp_path / "rust")
    (root / "lib").mkdir()
    rust = farmtool.Rust(root, "9.9.9")
    own = tmp_path / "build" / ".buildsrc"
    own.mkdir(parents=True)
    (own.parent / ".facts").mkdir()  # farmtool makes it before any sandbox, which hides it
    monkeypatch.chdir(own.parent)
    env = farmtool.untrusted_env(BWRAP, own.parent / ".buildenv", (), [rust.bin])
    # on PATH after the build venv's bin, before the worker's own
    assert env["PATH"].split(os.pathsep)[:2] == [str(own.parent / ".buildenv/bin"), str(rust.bin)]
    write = f"open({str(root / 'lib' / 'x')!r}, 'w')"
    probe = ["sh", "-c", f'cargo && rustc && {sys.executable} -c "{write}"']
    seen = farmtool.Untrusted(BWRAP, (own,), env, farmtool.rust_mounts(rust))
    done = subprocess.run(seen.argv(probe, own), env=env, capture_output=True, text=True)
    assert "cargo 9.9.9 (fake)" in done.stdout and "rustc 9.9.9 (fake)" in done.stdout
    assert "Read-only file system" in done.stderr and not (root / "lib" / "x").exists()
    # without the mount the sandbox has no Rust: the toolchain is not on its way
    unseen = farmtool.Untrusted(BWRAP, (own,), env)
    done = subprocess.run(unseen.argv(probe, own), env=env, capture_output=True, text=True)
    assert "9.9.9" not in done.stdout and done.returncode != 0
    # a toolchain the system holds (Debian's rustc, in /usr) needs no mount of its own
    assert farmtool.rust_mounts(farmtool.Rust(Path("/usr"), "1.63.0")) == ()


def test_import_check_skips_a_shared_library_that_is_no_module(tmp_path, monkeypatch, capsys):
    """maturin's cffi bindings ship lib<crate>.so beside the package: cffi loads it."""
    if not shutil.which("cc"):
        pytest.skip("needs a C compiler")
    monkeypatch.chdir(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    pkg = next(venv.glob("lib/python3*/site-packages")) / "withlib"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (tmp_path / "lib.c").write_text("int withlib_add(int a, int b) { return a + b; }\n")
    lib = pkg / "libwithlib.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", lib, tmp_path / "lib.c"], check=True)
    run = tmp_path / ".testrun"
    run.mkdir()
    sandbox = farmtool.Untrusted(NONE, (run,), farmtool.untrusted_env(NONE, venv))
    modules = ["withlib", "withlib.libwithlib"]
    imported, skipped, failures = farmtool.import_all(
        venv / "bin" / "python", modules, set(modules), sandbox, run, 60
    )
    assert (imported, skipped, failures) == (["withlib"], ["withlib.libwithlib"], [])
    out = capsys.readouterr().out
    assert "skipped import: withlib.libwithlib (a shared library, not an extension module)" in out


# --- a Rust sdist's crates ---------------------------------------------------------------

RUSTUP_BIN = Path.home() / ".cargo" / "bin"


@pytest.fixture
def rust(monkeypatch) -> farmtool.Rust:
    if not shutil.which("rustc") and (RUSTUP_BIN / "rustc").exists():
        monkeypatch.setenv("PATH", f"{RUSTUP_BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv(farmtool.RUST_ENV, raising=False)
    found = farmtool.rust_toolchain()
    if found is None:
        pytest.skip("needs a Rust toolchain (rustc on PATH, or rustup's in ~/.cargo/bin)")
    return found


def crate_project(src: Path, registry_config: str, dependency: str) -> Path:
    """A library crate in an unpacked sdist whose code calls a registry crate."""
    (src / "src").mkdir(parents=True)
    (src / ".cargo").mkdir()
    (src / ".cargo" / "config.toml").write_text(registry_config)
    (src / "Cargo.toml").write_text(
        '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n'
        f'[dependencies]\n{dependency} = {{ version = "1", registry = "farmtest" }}\n'
    )
    (src / "src" / "lib.rs").write_text(f"pub fn f() -> i32 {{ {dependency}::twice(21) }}\n")
    (src / "tests").mkdir()  # a fixture crate under the top-most one is not fetched alone
    (src / "tests" / "Cargo.toml").write_text("this is not TOML")
    return src


@needs_bwrap
def test_crates_are_fetched_with_the_network_then_built_without(tmp_path, monkeypatch, rust):
    from fakecrates import FakeCrates

    crates = FakeCrates(tmp_path / "registry").start()
    try:
        crates.publish("tinydep", "1.0.0", "pub fn twice(x: i32) -> i32 { x * 2 }\n")
        build = tmp_path / "build"
        (build / farmtool.FACTS_DIR).mkdir(parents=True)
        monkeypatch.chdir(build)
        src = crate_project(build / ".buildsrc" / "app-0.1", crates.cargo_config(), "tinydep")
        env = farmtool.untrusted_env(BWRAP, None, tool_bins=[rust.bin])
        cargo_build = [rust.bin / "cargo", "build", "--offline"]

        # the backend's sandbox has no network: without the fetch, cargo has nothing
        home = farmtool.fresh_dir(build / farmtool.CARGO_HOME)
        plain = {**env, "CARGO_HOME": str(home)}
        offline = farmtool.Untrusted(BWRAP, (src, home), plain, farmtool.rust_mounts(rust))
        done = subprocess.run(offline.argv(cargo_build, src), env=plain, capture_output=True)
        assert done.returncode != 0 and crates.downloads == []

        fetched = farmtool.fetch_crates(BWRAP, rust, src, ["maturin>=1,<2"])
        assert fetched == {"CARGO_HOME": str(home), "CARGO_NET_OFFLINE": "true"}
        assert crates.downloads == ["tinydep-1.0.0.crate"]
        assert (src / "Cargo.lock").exists()  # resolved once, in the fetch's sandbox
        env.update(fetched)
        sandbox = farmtool.Untrusted(BWRAP, (src, home), env, farmtool.rust_mounts(rust))
        done = subprocess.run(
            sandbox.argv(cargo_build, src), env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert "Compiling tinydep v1.0.0" in done.stderr

        # a crate the registry does not have: a Rust backend's build fails, naming it
        other = crate_project(build / ".buildsrc" / "other", crates.cargo_config(), "nosuchdep")
        with pytest.raises(farmtool.Failure, match="cannot fetch crates: .*nosuchdep"):
            farmtool.fetch_crates(BWRAP, rust, other, ["maturin"])
        # ... elsewhere the Cargo.toml may be a fixture: the build goes on
        assert farmtool.fetch_crates(BWRAP, rust, other, ["setuptools"])
    finally:
        crates.stop()


def test_only_the_top_most_cargo_manifests_are_fetched(tmp_path):
    (tmp_path / "rust" / "member" / "target" / "x").mkdir(parents=True)
    for folder in ("rust", "rust/member", "rust/member/target/x", "python"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "Cargo.toml").write_text("")
    assert farmtool.cargo_manifests(tmp_path) == [
        tmp_path / "python" / "Cargo.toml",
        tmp_path / "rust" / "Cargo.toml",
    ]
