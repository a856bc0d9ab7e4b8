"""farmtool's isolation layer: the bubblewrap argv, the environments, and what a real
bubblewrap then lets a phase of untrusted code do (real processes, no network: a
listener on loopback stands for "the host's services").
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

import farmtool.environment
from farmtool.environment import SANDBOX_HOME, tool_env, untrusted_env
from farmtool.facts import Failure
from farmtool.isolation import ISOLATIONS, Phase, resolve_isolation
from farmtool.isolation.bubblewrap import bwrap_argv
from farmtool.isolation.host import HostPlace
from farmtool.isolation.limits import Limits
from farmtoolmod import install
from wheelfarm.pipeline.steps import parse_facts

PY = os.path.realpath(sys.executable)  # the base Python: a sandbox sees no venv's link
BWRAP = ISOLATIONS["bubblewrap"]
NONE = ISOLATIONS["none-i-accept-the-risk"]
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
    argv = bwrap_argv(
        ["python", "-c", "print('hi; rm -rf /')"],
        cwd=src,
        readable=["/opt/python", build],
        writable=[src],
        hidden=[build / ".facts"],
        tmp_size=123456,
    )
    assert argv[0] == "bwrap"
    # the command is passed as its own arguments, after --, never as a shell line
    assert argv[argv.index("--") + 1 :] == ["python", "-c", "print('hi; rm -rf /')"]
    for flag in ("--die-with-parent", "--unshare-all", "--new-session"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "--share-net" not in argv
    # its /tmp is a tmpfs of a bounded size
    assert argv[argv.index("--size") + 1 : argv.index("--size") + 4] == [
        "123456",
        "--tmpfs",
        "/tmp",
    ]
    ro, rw = options(argv, "--ro-bind"), options(argv, "--bind")
    assert (str(build), str(build)) in ro and rw == [(str(src), str(src))]
    # the writable folder is mounted over the read-only build dir, the facts hidden last
    assert argv.index("--bind") > argv.index(str(build))
    assert options(argv, "--tmpfs")[-1] == (str(build / ".facts"),)
    # the way to the build dir is made read-only (mode 0555), outermost first
    made = [argv[i + 3] for i, a in enumerate(argv) if a == "--perms"]
    assert str(tmp_path / "worker") in made and str(build) not in made
    # nothing of the worker's basedir, /root or /home, and never the whole root
    sources = [s for s, _ in ro + rw]
    for path in ("/", "/root", "/home", str(tmp_path / "worker")):
        assert path not in sources
    assert options(argv, "--chdir") == [(str(src),)]


def test_argv_system_dirs_and_masks_follow_the_host():
    argv = bwrap_argv(["true"], cwd="/tmp")
    seen = {dest for _, dest in options(argv, "--ro-bind") + options(argv, "--symlink")}
    for d in ("/usr", "/etc", "/bin", "/lib"):
        if os.path.lexists(d):
            assert d in seen
    if os.path.exists("/etc/shadow"):
        assert ("/dev/null", "/etc/shadow") in options(argv, "--ro-bind")


def test_a_network_phase_gets_its_own_resolver_never_the_hosts_network():
    argv = bwrap_argv(["true"], cwd="/tmp", resolv_conf="/x/resolv", info_fd=5, block_fd=6)
    assert "--share-net" not in argv and "--unshare-all" in argv
    assert ("/x/resolv", "/etc/resolv.conf") in options(argv, "--ro-bind")
    assert argv[argv.index("--info-fd") + 1] == "5" and argv[argv.index("--block-fd") + 1] == "6"


# --- the environment ------------------------------------------------------------------


def test_untrusted_code_never_gets_the_workers_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy:3128")
    monkeypatch.setenv("PIP_INDEX_URL", "https://user:pw@mirror/simple")
    monkeypatch.setenv("UV_INDEX_URL", "https://user:pw@mirror/simple")
    monkeypatch.setenv("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setattr(farmtool.environment, "REGISTRY_ENV", {})
    # the registry's build.env, as the master passes it: arguments, never the environment
    farmtool.environment.registry_env(["CFLAGS=-O2", "CC=/build/.buildsrc/evil-cc"])
    assert "CC" not in tool_env()  # so the trusted side never sees it
    with pytest.raises(Failure, match="not a variable"):
        farmtool.environment.registry_env(["CFLAGS"])
    venv_bin = tmp_path / ".buildenv" / "bin"
    env = untrusted_env(True, tmp_path / ".home", ["CFLAGS", "CC", "NOT_SET"], [venv_bin],
                        tmp_path / ".pycache")  # fmt: skip
    for name in ("AWS_SECRET_ACCESS_KEY", "HTTPS_PROXY", "PIP_INDEX_URL", "UV_INDEX_URL"):
        assert name not in env
    assert "NOT_SET" not in env
    assert env["CFLAGS"] == "-O2" and env["CC"] == "/build/.buildsrc/evil-cc"
    assert env["SSL_CERT_FILE"].endswith(".crt")
    assert env["HOME"] == SANDBOX_HOME and env["TMPDIR"] == "/tmp"
    assert env["PYTHONPYCACHEPREFIX"] == str(tmp_path / ".pycache")
    # the build venv's tools (maturin, cmake) come first
    assert env["PATH"].split(os.pathsep)[0] == str(venv_bin)
    # ... and the farm's own tools keep what they need to reach an index
    assert tool_env()["PIP_INDEX_URL"] == "https://user:pw@mirror/simple"
    assert "AWS_SECRET_ACCESS_KEY" not in tool_env()
    # unsandboxed, $HOME is a folder of the build's own
    assert untrusted_env(False, tmp_path / ".home")["HOME"] == str(tmp_path / ".home")


# --- choosing the isolation ----------------------------------------------------------


def test_auto_refuses_where_nothing_isolates(monkeypatch):
    import farmtool.isolation

    monkeypatch.setattr(farmtool.isolation, "which", lambda tool: None)
    with pytest.raises(Failure) as e:
        resolve_isolation("auto")
    assert str(e.value).startswith("untrusted build refused: nothing isolates it")
    assert "isolation: none-i-accept-the-risk" in str(e.value)
    with pytest.raises(Failure, match="needs bwrap on PATH"):
        resolve_isolation("bubblewrap")
    assert resolve_isolation("none-i-accept-the-risk") is NONE


def test_auto_is_bubblewrap_where_it_is_installed(monkeypatch):
    import farmtool.isolation

    monkeypatch.setattr(farmtool.isolation, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(farmtool.isolation.sys, "platform", "linux")
    assert resolve_isolation("auto") is BWRAP
    monkeypatch.setattr(farmtool.isolation.sys, "platform", "darwin")
    with pytest.raises(Failure, match="nothing isolates it"):
        resolve_isolation("auto")


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
    install(tmp_path)
    argv = [sys.executable, "farmtool.pyz", "fetch", "--url", "file:///nonexistent/x.tar.gz"]
    argv += ["--sha256", "0" * 64, "--filename", "x.tar.gz", "--dest", "sdist"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1
    assert json.loads(facts.read_text())["reason"].startswith("sdist not found")
    assert "summary" not in json.loads(facts.read_text())


# --- what a real bubblewrap lets the package's code do ----------------------------------

HOSTILE = """
import os, socket, subprocess, sys
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
attempt("write-build", lambda: open("../farmtool.pyz", "a").write("x"))
attempt("write-venv", lambda: open("../.buildenv/pyvenv.cfg", "a").write("x"))
attempt("read-facts", lambda: print(os.listdir("../.facts")))
attempt("write-home", lambda: open(os.path.expanduser("~/owned"), "w").write("x"))
attempt("network", lambda: socket.create_connection(("127.0.0.1", port), timeout=2))
attempt("raw-socket", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
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
def test_bubblewrap_keeps_the_code_in_its_folder(tmp_path, capfdbinary):
    worker = tmp_path / "worker"
    build = worker / "build-linux-x86_64" / "build"
    own = build / ".testrun"
    own.mkdir(parents=True)
    (build / ".buildenv").mkdir()
    (build / ".buildenv" / "pyvenv.cfg").write_text("home = /usr\n")
    (build / ".facts").mkdir()
    (build / ".facts" / "build.json").write_text("{}")
    (build / "farmtool.pyz").write_text("# the farm's\n")
    (worker / "buildbot.tac").write_text("passwd = 'the-worker-password'\n")
    home = Path.home()
    before = set(os.listdir(home))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    marker = f"sleeper-{uuid.uuid4().hex}"
    env = untrusted_env(True, own)
    port = str(listener.getsockname()[1])
    # reversed: only the sleeper's command line holds the marker, not bwrap's
    argv = [PY, "-c", HOSTILE, str(worker), port, marker[::-1]]
    place = HostPlace(BWRAP, build)
    place.own([own])  # as farmtool gives the build's user its folders
    done = place.untrusted(Phase("tests", argv, own, env, (own,)), Limits())
    listener.close()
    out = "\n".join(done.lines)
    assert done.rc == 0 and done.reason is None, out
    assert "the-worker-password" not in out
    assert "build.json" not in out  # the facts folder is an empty tmpfs in there
    for name in ("read-tac", "write-build", "write-basedir", "write-venv", "network"):
        assert f"{name} failed" in out, out
    assert "raw-socket failed PermissionError" in out  # no capabilities, no CAP_NET_RAW
    # the way to the build dir exists (bwrap made it), empty and read-only
    assert "['build-linux-x86_64']" in out
    assert "write-own succeeded" in out
    assert "write-home succeeded" in out  # into its own tmpfs HOME, gone with it
    assert (own / "mine").exists() and not (worker / "owned").exists()
    assert (build / "farmtool.pyz").read_text() == "# the farm's\n"
    assert (build / ".buildenv" / "pyvenv.cfg").read_text() == "home = /usr\n"
    assert set(os.listdir(home)) == before
    # the detached sleeper died with the sandbox, and never wrote
    assert _processes_with(marker) == []
    time.sleep(3.5)
    assert not (own / "late").exists()


# The kernel's settings a process of root may write whatever capabilities it lacks (the
# red team made the kernel run its program as root through core_pattern). Each is
# written back with the value it has, so a sandbox that failed would change nothing.
KERNEL_FILES = [
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/modprobe",
    "/proc/sys/kernel/hostname",
    "/proc/sys/fs/binfmt_misc/register",
    "/proc/sys/vm/drop_caches",
    "/sys/kernel/uevent_helper",
    "/sys/fs/cgroup/cgroup.procs",
]
REWRITE = """
import os, sys
print("uid", os.getuid(), os.geteuid())
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as f:
            value = f.read() or b"\\n"
    except OSError:
        value = b"1\\n"
    try:
        with open(path, "wb") as f:
            f.write(value)
        print(path, "written")
    except OSError as e:
        print(path, "refused", type(e).__name__)
"""


@needs_bwrap
def test_the_kernels_settings_are_not_the_sandboxs_to_write(tmp_path):
    """A root worker's sandboxed code runs as an unprivileged user, with /proc/sys
    read-only: no kernel setting of the host is its to write."""
    own = tmp_path / "build" / ".run"
    own.mkdir(parents=True)
    place = HostPlace(BWRAP, tmp_path / "build")
    place.own([own])
    argv = [PY, "-c", REWRITE, *KERNEL_FILES]
    done = place.untrusted(Phase("build backend", argv, own, untrusted_env(True, own), (own,)),
                           Limits())  # fmt: skip
    assert done.rc == 0, done.lines
    uids = next(line for line in done.lines if line.startswith("uid "))
    assert uids != "uid 0 0", done.lines  # a sandbox of root would own root's files
    for path in KERNEL_FILES:
        assert f"{path} written" not in done.lines, done.lines


# What the kernel keeps per user rather than per namespace: keys (a root worker's
# builds all run as one uid), and new user namespaces. Numbers of x86-64's table, on
# purpose not the farm's own (farmtool.isolation.seccomp).
KERNEL_CALLS = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(name, nr, *args):
    ctypes.set_errno(0)
    got = libc.syscall(nr, *args)
    err = ctypes.get_errno()
    if got >= 0 and name.startswith("clone") and got == 0:
        os._exit(0)  # the child of a clone that worked
    print(name, "allowed" if got >= 0 else f"refused {os.strerror(err)}", flush=True)
user_keyring, session_keyring = ctypes.c_long(-4), ctypes.c_long(-3)
call("add_key user", 248, b"user", b"farm-secret", b"planted", 7, user_keyring)
call("add_key session", 248, b"user", b"farm-secret", b"planted", 7, session_keyring)
call("add_key keyring", 248, b"keyring", b"farm-ring", None, 0, user_keyring)
call("keyctl join", 250, 1, b"farm-session")
call("keyctl read user keyring", 250, 0, user_keyring, 0)
call("request_key", 249, b"user", b"farm-secret", None, 0)
call("unshare newuser", 272, 0x10000000)
call("unshare newuser+newns", 272, 0x10000000 | 0x00020000)
call("clone newuser", 56, 0x10000000 | 17, 0, 0, 0, 0)
# what builds do all the time still works: a thread, a process, a namespace-less unshare
import subprocess, threading
t = threading.Thread(target=lambda: None); t.start(); t.join()
print("thread", "ran", flush=True)
child = subprocess.run([sys.executable, "-c", "print(1)"], capture_output=True, text=True)
print("process", child.stdout.strip(), flush=True)
"""


@needs_bwrap
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86-64's system call numbers")
def test_no_key_and_no_user_namespace_in_a_sandbox(tmp_path):
    """A key a build adds to its user's keyring would outlive the build and be the
    next build's (a root worker runs every build as one uid): every way to add, join or
    read a keyring is refused, as is a new user namespace; threads and processes run."""
    own = tmp_path / "build" / ".run"
    own.mkdir(parents=True)
    place = HostPlace(BWRAP, tmp_path / "build")
    place.own([own])
    argv = [PY, "-c", KERNEL_CALLS]
    done = place.untrusted(Phase("build backend", argv, own, untrusted_env(True, own), (own,)),
                           Limits())  # fmt: skip
    assert done.rc == 0, done.lines
    calls = [ln for ln in done.lines if " allowed" in ln or " refused" in ln]
    assert len(calls) == 9, done.lines
    assert [ln for ln in calls if "allowed" in ln] == []
    assert "thread ran" in done.lines and "process 1" in done.lines, done.lines


# --- user-mode networking -------------------------------------------------------------

REACH = """
import socket, sys
for host, port in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        print(host, "reached")
    except OSError as e:
        print(host, "unreachable", type(e).__name__)
"""


@needs_bwrap
def test_a_network_phase_reaches_out_but_never_this_machine(tmp_path):
    """A crates fetch has user-mode networking (slirp4netns): a server outside this
    machine, never what listens on this machine (its loopback, its own address: the
    master's UI, the databases) nor a network it is directly on (a volunteer's LAN)."""
    if not shutil.which("slirp4netns"):
        pytest.skip("needs slirp4netns (make test installs it)")
    from outside import OutsideHost, host_address

    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "hello").write_text("from outside")
    own = tmp_path / "build" / ".run"
    own.mkdir(parents=True)
    place = HostPlace(BWRAP, tmp_path / "build")
    place.own([own])
    env = untrusted_env(True, own)
    listeners = [socket.socket(), socket.socket()]
    listeners[0].bind((host_address(), 0))
    listeners[1].bind(("127.0.0.1", 0))
    for s in listeners:
        s.listen()
    with OutsideHost() as outside:
        url = outside.serve(tmp_path / "www")
        hosts = [(outside.address, 8080), *(s.getsockname()[:2] for s in listeners)]
        hosts.append((outside.link[0], 8080))  # the host's end of the link: its own address
        hosts.append(("10.0.2.2", listeners[1].getsockname()[1]))  # slirp's way to the host
        argv = [PY, "-c", REACH, *(str(part) for host in hosts for part in host)]
        try:
            online = place.untrusted(Phase("crates fetch", argv, own, env, (own,), network=True),
                                     Limits())  # fmt: skip
            offline = place.untrusted(Phase("build backend", argv, own, env, (own,)), Limits())
        finally:
            for s in listeners:
                s.close()
        fetched = place.untrusted(Phase("crates fetch", [PY, "-c", FETCH, url + "/hello"], own,
                                        env, (own,), network=True), Limits())  # fmt: skip
    assert f"{outside.address} reached" in online.lines, online.lines
    for host, _ in hosts[1:]:
        assert f"{host} reached" not in online.lines, (host, online.lines)
    assert not [line for line in offline.lines if " reached" in line], offline.lines
    assert "from outside" in fetched.lines


FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())"


# --- limits ----------------------------------------------------------------------------

FORK = """import os, time
for _ in range(400):
    if os.fork() == 0:
        time.sleep(5); os._exit(0)
"""
LIMITED = {
    "memory": ("x = bytearray(900 << 20); x[::4096] = b'y' * len(x[::4096])", "memory=300M"),
    "processes": (FORK, "processes=64"),
    "time": ("import time; time.sleep(60)", "time=2"),
    "disk": ("open('big', 'wb').write(b'x' * (300 << 20))", "disk=100M"),
    "cpu": ("while True: pass", "cpu=1"),
}


@needs_bwrap
@pytest.mark.parametrize("kind", sorted(LIMITED))
def test_each_limit_trips_with_its_reason(tmp_path, kind):
    code, limit = LIMITED[kind]
    own = tmp_path / "build" / ".run"
    own.mkdir(parents=True)
    place = HostPlace(BWRAP, tmp_path / "build")
    place.own([own])
    phase = Phase("tests", [PY, "-c", code], own, untrusted_env(True, own), (own,))
    started = time.monotonic()
    done = place.untrusted(phase, Limits.parse([limit]))
    assert done.rc != 0
    assert done.reason is not None, (kind, done.lines[-5:])
    words = {"memory": "memory limit", "processes": "process limit", "time": "time limit",
             "disk": "disk limit", "cpu": "CPU time limit"}  # fmt: skip
    assert done.reason.startswith(words[kind]), done.reason
    assert time.monotonic() - started < 60
    # and the same code within the limits it was not given runs (here: the time one)
    if kind == "time":
        quick = place.untrusted(phase._replace(argv=[PY, "-c", "pass"]),
                                Limits.parse([limit]))  # fmt: skip
        assert (quick.rc, quick.reason) == (0, None)


def test_limits_parse_and_say_what_is_wrong():
    limits = Limits.parse(["memory=2G", "time=90", "disk=512M", "processes=10"])
    assert (limits.memory, limits.time, limits.disk, limits.processes) == (
        2 << 30,
        90,
        512 << 20,
        10,
    )
    assert Limits.parse(limits.args()[1::2]) == limits
    for bad in ("memory=lots", "colour=3", "time", "disk=-1"):
        with pytest.raises(Failure, match="not a limit"):
            Limits.parse([bad])


# --- the import check ----------------------------------------------------------------


def _venv_with(tmp_path: Path, files: dict[str, str]) -> Path:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    for name, text in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    return venv


FREE_THREADED_ONLY = """\
import sysconfig
assert sysconfig.get_config_var("Py_GIL_DISABLED"), "needs a free-threaded build"
"""


def test_import_check_skips_other_flavours_and_shows_tracebacks(tmp_path, capfd):
    from farmtool.testing import import_all

    venv = _venv_with(tmp_path, {
        "flav/__init__.py": "", "flav/test_free_threading.py": FREE_THREADED_ONLY,
        "flav/broken.py": "def helper():\n    raise RuntimeError('boom')\n\nhelper()\n",
    })  # fmt: skip
    run = tmp_path / ".testrun"
    run.mkdir()
    place = HostPlace(NONE, tmp_path)
    env = untrusted_env(False, tmp_path / ".home", (), [venv / "bin"])
    modules = ["flav", "flav.broken", "flav.test_free_threading"]
    imported, skipped, failures = import_all(
        place, venv / "bin" / "python", modules, set(modules), env, run, (run,), Limits()
    )
    out = capfd.readouterr().out
    assert imported == ["flav"]
    assert skipped == ["flav.test_free_threading"]
    assert "skipped import: flav.test_free_threading (another interpreter flavour" in out
    assert failures == ["flav.broken: RuntimeError: boom"]
    # the log shows where it broke: the traceback's last lines
    assert 'flav/broken.py", line 4, in <module>' in out
    assert "    RuntimeError: boom" in out


@needs_bwrap
def test_a_planted_link_for_the_result_file_is_not_followed(tmp_path):
    """The import check's results are read from a file its code could replace: a link
    to a secret of the host, or a FIFO, fails the step instead of being read."""
    from farmtool.testing import import_all

    secret = tmp_path / "secret.txt"
    secret.write_text('{"module": "the-hosts-secret", "status": "ok"}\n')
    for kind in ("symlink", "fifo"):
        venv = _venv_with(tmp_path / kind, {"evil.py": (
            "import os\n"
            "os.remove('imports.jsonl')\n"
            + (f"os.symlink({str(secret)!r}, 'imports.jsonl')\n" if kind == "symlink"
               else "os.mkfifo('imports.jsonl')\n")
        )})  # fmt: skip
        run = tmp_path / kind / ".testrun"
        run.mkdir()
        place = HostPlace(BWRAP, tmp_path / kind)
        place.own([run])
        env = untrusted_env(True, run, (), [venv / "bin"])
        with pytest.raises(Failure, match="is not a regular file|cannot read"):
            import_all(place, venv / "bin" / "python", ["evil"], {"evil"}, env, run, (run,),
                       Limits(time=30))  # fmt: skip


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
