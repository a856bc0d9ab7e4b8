"""Worker-side helper of wheelfarm: the master copies this file into every build.

It needs nothing but the standard library of the Python that runs it (3.10+), so
a volunteer's worker needs only buildbot-worker and its Python versions; the
tools it drives (uv, auditwheel, patchelf, abi3audit, check-wheel-contents,
delocate-wheel, delvewheel) are found on PATH, and without uv it falls back to
venv + pip. Every subcommand takes plain arguments (never a shell line), prints
each command it runs prefixed "+ ", and when it fails exits non-zero with exactly
one final line `error: <reason>` on stderr, for whoever reads the log; the build
summary shows the same reason, taken from the facts file (below).

    fetch      download the sdist and verify its sha256
    build      build the wheel in a fresh venv (PEP 517, only declared requirements)
    repair     make the wheel portable (auditwheel / delocate / delvewheel)
    check      the wheel meets the platform policy, abi3 rules and content checks
    test       install the wheel in a fresh venv, import every module, run the tests
    toolchain  print the versions of the toolchain as one JSON object

What the master believes about a step (its reason, summary, toolchain, isolation)
is not read from this output, which the build's own code prints into too: each
subcommand writes it to `.facts/SUBCOMMAND.json`, a folder the sandboxed code
never sees, and the master fetches that file after the step. The package's own
code (build backend, imports, test command) runs through `Untrusted`: in
bubblewrap (`bwrap_argv`) where the worker has it, see ISOLATIONS.
"""

from __future__ import annotations

import argparse
import calendar
import csv
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import posixpath
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import traceback
import urllib.request
import zipfile
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from subprocess import DEVNULL
from typing import Any, NamedTuple, NoReturn

CHUNK = 1 << 20
BUILD_ENV = ".buildenv"  # the build's venv, made anew for every build
BUILD_TOOL = ".buildtool"  # the `build` library, kept out of the build's venv
BUILD_SRC = ".buildsrc"  # the unpacked sdist
TEST_ENV = ".testenv"
TEST_RUN = ".testrun"  # where the imports and tests run
EXTENSION_SUFFIXES = (".so", ".pyd")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# check-wheel-contents codes we do not fail on, because real, working packages of
# the registry trip them (checked on the wheels of its 27 packages) or they are the project's
# packaging choice rather than a broken build:
#   W002 duplicate files: tzdata ships identical zone files under several names.
#   W004 module not at importable path: .py files used as data or templates.
#   W005 common top-level name (tests, docs...): the project's choice; the farm
#        builds what the sdist says.
#   W009 multiple top-level entries: attrs (attr/ + attrs/), wrapt (wrapt-stubs/),
#        any repaired wheel with a vendored-libraries directory.
# W010 (top-level directory without modules) is kept except for the `NAME.libs/`
# directory auditwheel and delvewheel add themselves (pyyaml.libs/). Kept: W001
# .pyc files, W003 non-module at top level, W006 top-level __init__.py, W007/W008
# empty library or wheel: these mean the build picked up the wrong files.
CWC_IGNORE = ("W002", "W004", "W005", "W009")

Arg = str | os.PathLike[str]  # an item of an argument list


class Failure(Exception):
    """A reason to stop: becomes the one `error: ...` line."""


def fail(message: str) -> NoReturn:
    raise Failure(message)


# --- facts for the master -----------------------------------------------------------

FACTS_DIR = ".facts"  # in the build directory; hidden from every sandbox
FACTS: dict = {}  # what this run found: summary, toolchain, isolation (reason on failure)


def facts_path(subcommand: str) -> Path:
    return Path(FACTS_DIR) / f"{subcommand}.json"


def write_facts(subcommand: str) -> None:
    folder = Path(FACTS_DIR)
    folder.mkdir(exist_ok=True)
    partial = folder / f".{subcommand}.json.part"
    partial.write_text(json.dumps(FACTS, sort_keys=True), encoding="utf-8")
    os.replace(partial, facts_path(subcommand))


def read_untrusted(path: Path, limit: int = 64 << 20) -> str:
    """A file sandboxed code wrote: never through a link it may have planted."""
    # O_NONBLOCK: a planted FIFO must not hang us either
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror or e}")
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            fail(f"{path} is not a regular file")
        return f.read(limit).decode("utf-8", "replace")


# --- environments -------------------------------------------------------------------

# What the farm's own tools (uv, pip) keep of the worker's environment: what they need
# to run and to reach an index (the operator's index settings, certificates, proxy).
TOOL_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "TZ",
    "TMPDIR",
    "TEMP",
    "TMP",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "SOURCE_DATE_EPOCH",
    "WHEELFARM_CONTAINER_IMAGE",
)
TOOL_ENV_PREFIXES = ("UV_", "PIP_", "XDG_", "LC_")
# What untrusted code (the build backend, the import check, the test command) gets
# from the worker: what programs need to run and compile, never credentials, proxies
# (they may embed a password) or tool settings. The farm adds HOME, TMPDIR, the
# venv's PATH and SOURCE_DATE_EPOCH; the registry adds its `build.env` by name.
UNTRUSTED_ENV = (
    "PATH",
    "LANG",
    "TZ",
    "TMPDIR",
    "TEMP",
    "TMP",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "MACOSX_DEPLOYMENT_TARGET",
    "SDKROOT",
    "DEVELOPER_DIR",
    # Windows: Python and MSVC do not start without these
    "SYSTEMROOT",
    "SYSTEMDRIVE",
    "WINDIR",
    "COMSPEC",
    "PATHEXT",
    "NUMBER_OF_PROCESSORS",
    "PROCESSOR_ARCHITECTURE",
    "PROGRAMDATA",
    "PROGRAMFILES",
    "PROGRAMFILES(X86)",
    "PROGRAMW6432",
    "COMMONPROGRAMFILES",
    "COMMONPROGRAMFILES(X86)",
)
UNTRUSTED_ENV_PREFIXES = ("LC_",)


def pick_env(names: Iterable[str], prefixes: tuple[str, ...] = ()) -> dict[str, str]:
    wanted = set(names)
    return {k: v for k, v in os.environ.items() if k in wanted or k.startswith(prefixes)}


def tool_env(**extra: str) -> dict[str, str]:
    return {**pick_env(TOOL_ENV, TOOL_ENV_PREFIXES), **extra}


# --- isolation ----------------------------------------------------------------------


class Isolation(NamedTuple):
    """How a worker runs untrusted code: one row of ISOLATIONS."""

    name: str
    platforms: tuple[str, ...]  # sys.platform prefixes it works on
    tool: str | None  # must be on PATH
    sandboxed: bool


ISOLATIONS = {
    i.name: i
    for i in (
        Isolation("bubblewrap", ("linux",), "bwrap", True),
        # The volunteer's informed choice (workers.yaml): the build runs as the worker.
        Isolation("none-i-accept-the-risk", ("linux", "darwin", "win32"), None, False),
    )
}
# `auto`: the first of these the worker can run.
AUTO_ISOLATION = ("bubblewrap",)

# Read-only in every sandbox: the system as found (merged-/usr systems have /bin and
# /lib* as symlinks, recreated as such). /etc holds the loader's and the TLS config.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# ... but not what in /etc only holds the host's secrets (the worker may run as root,
# and root reads these).
MASKED = (
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/ssh",
    "/etc/ssl/private",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/machine-id",
)
SANDBOX_HOME = "/tmp/home"  # on the sandbox's own /tmp


def resolve_isolation(declared: str) -> Isolation:
    """The worker's declared isolation, or the first that works here for `auto`.

    A worker where nothing isolates untrusted code refuses it, unless its entry
    opts out (`none-i-accept-the-risk`).
    """
    here = sys.platform
    if declared == "auto":
        for name in AUTO_ISOLATION:
            kind = ISOLATIONS[name]
            if here.startswith(kind.platforms) and (kind.tool is None or which(kind.tool)):
                return kind
        fail(
            "untrusted build refused: nothing isolates it on this worker (install bubblewrap, "
            "or set `isolation: none-i-accept-the-risk` in its workers.yaml entry)"
        )
    chosen = ISOLATIONS.get(declared)
    if chosen is None:
        fail(f"unknown isolation {declared!r} (known: auto, {', '.join(ISOLATIONS)})")
    kind = chosen
    if not here.startswith(kind.platforms):
        fail(f"untrusted build refused: isolation {declared} does not work on {here}")
    if kind.tool and not which(kind.tool):
        fail(f"untrusted build refused: isolation {declared} needs {kind.tool} on PATH")
    return kind


def python_prefixes() -> list[str]:
    """Where this Python (and a venv's base Python) lives: a sandbox must see it."""
    found = []
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        for q in (p, os.path.realpath(p)):
            if q not in found:
                found.append(q)
    exe = os.path.realpath(sys.executable)
    prefix = os.path.dirname(os.path.dirname(exe))
    if prefix not in found:
        found.append(prefix)
    return found


def bwrap_argv(
    argv: Sequence[str | os.PathLike],
    *,
    cwd: str | os.PathLike,
    readable: Sequence[str | os.PathLike] = (),
    writable: Sequence[str | os.PathLike] = (),
    hidden: Sequence[str | os.PathLike] = (),
    network: bool = False,
    reaper: Sequence[str | os.PathLike] = (),
) -> list[str]:
    """The bubblewrap argv that runs `argv` sandboxed (data in, argv out; no shell).

    It sees the system and `readable` read-only, `writable` read-write (later
    entries mount over earlier ones, so a writable folder may sit in a readable
    one), nothing of `hidden`, its own /tmp and $HOME (tmpfs), and nothing else:
    not the worker's basedir, other builds, /root or /home. It gets its own PID
    namespace (so everything it starts dies with it), no capabilities, no network
    unless `network`, and a new session (no terminal to inject keys into).

    `reaper` (an argv prefix) runs as the namespace's PID 1 in bwrap's stead: bwrap
    returns as soon as the command exits, while the kernel is still killing what the
    command left behind, and for that moment a leftover could still write into the
    build; the reaper kills and reaps everything before it exits, and bwrap waits
    for it.
    """
    out = ["bwrap", "--die-with-parent", "--unshare-all", "--new-session", "--cap-drop", "ALL"]
    if network:
        out.append("--share-net")
    out += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--dir", SANDBOX_HOME]
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            out += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            out += ["--ro-bind", d, d]
    for masked in MASKED:
        if os.path.isdir(masked) and not os.path.islink(masked):
            out += ["--tmpfs", masked]
        elif os.path.lexists(masked):
            out += ["--ro-bind", "/dev/null", masked]
    # The folders on the way to each mount point (e.g. the worker's basedir, which bwrap
    # makes empty) are read-only too, even on the sandbox's own /tmp: nobody writes there.
    made = {"/", "/tmp", SANDBOX_HOME}
    mounted: list[str] = list(SYSTEM_DIRS)
    for option, paths in (("--ro-bind", readable), ("--bind", writable)):
        for path in paths:
            p = os.path.abspath(os.fspath(path))
            for parent in map(str, reversed(Path(p).parents)):
                inside = any(parent == m or parent.startswith(m + "/") for m in mounted)
                if parent not in made and not inside:
                    out += ["--perms", "0555", "--dir", parent]
                    made.add(parent)
            out += [option, p, p]
            mounted.append(p)
    for path in hidden:
        p = os.path.abspath(os.fspath(path))
        out += ["--tmpfs", p, "--remount-ro", p]
    out += ["--remount-ro", "/"]
    out += ["--chdir", os.path.abspath(os.fspath(cwd))]
    if reaper:
        out += ["--as-pid-1", "--", *(os.fspath(a) for a in reaper)]
    else:
        out.append("--")
    return [*out, *(os.fspath(a) for a in argv)]


# PID 1 of a sandbox (see bwrap_argv): runs the command, then kills and reaps every
# process of the namespace (orphans are its children) before it exits with its status.
_REAPER = r"""
import os, signal, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    except OSError as e:
        print(f"cannot run {sys.argv[1]}: {e.strerror}", file=sys.stderr)
        os._exit(127)
while True:
    done, status = os.wait()
    if done == pid:
        code = os.waitstatus_to_exitcode(status)
        break
try:
    os.kill(-1, signal.SIGKILL)
except ProcessLookupError:  # nothing was left behind
    pass
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
sys.exit(code if code >= 0 else 128 - code)
"""


class Untrusted(NamedTuple):
    """How to run one phase of a package's own code (backend, imports, tests)."""

    isolation: Isolation
    writable: tuple[Path, ...]  # besides these, the build directory is read-only
    env: Mapping[str, str]
    readable: tuple[str, ...] = ()  # besides the system, the Pythons and the build dir
    network: bool = False

    def argv(self, argv: Sequence[str | os.PathLike], cwd: str | os.PathLike) -> list[str]:
        if not self.isolation.sandboxed:
            return [os.fspath(a) for a in argv]
        build_dir = Path.cwd()
        return bwrap_argv(
            argv,
            cwd=cwd,
            readable=[*python_prefixes(), *self.readable, build_dir],
            writable=self.writable,
            hidden=[build_dir / FACTS_DIR],
            network=self.network,
            reaper=[sys.executable, "-I", "-S", "-c", _REAPER],
        )


UV_CACHE = ".uvcache"  # the sandboxed installers' cache: this build's only


def installer(isolation: Isolation, venv: Path, rust: Rust | None = None) -> Untrusted:
    """How requirements that need building are installed into `venv`.

    An installer builds the sdists among them, which runs their code: so it runs in
    the sandbox too, the only phase with the network, writing only into the venv and
    a cache of this build's own (a cache shared between builds could be poisoned for
    the next one). An sdist among them may be a Rust one: it gets the toolchain too.
    Requirements that are all wheels skip it (`install_wheels`).
    """
    env = tool_env()
    if rust:
        env["PATH"] = os.pathsep.join(p for p in (str(rust.bin), env.get("PATH")) if p)
    if not isolation.sandboxed:
        return Untrusted(isolation, (), env)
    cache = fresh_dir(Path(UV_CACHE)).absolute()
    # a copy, not a hardlink: cache and venv are two mounts in the sandbox
    env.update(HOME=SANDBOX_HOME, TMPDIR="/tmp", UV_CACHE_DIR=str(cache), UV_LINK_MODE="copy")
    uv = which("uv")
    tools: tuple[str, ...] = (os.path.dirname(os.path.realpath(uv)),) if uv else ()
    tools += rust_mounts(rust)
    return Untrusted(isolation, (venv.absolute(), cache), env, tools, network=True)


CACHE_ENV = "WHEELFARM_CACHE"  # the worker's wheel cache (default ~/.cache/wheelfarm)


def wheel_cache() -> Path:
    """The worker's own cache of downloaded wheels, which no sandbox sees or writes."""
    base = os.environ.get(CACHE_ENV)
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "wheelfarm")
    return Path(base) / "uv"


# What a trusted install takes from a package's own answers (its declared and dynamic
# build requirements): a name, extras, versions, a marker. Never an option, a URL or a
# path, nor a name that reads as an archive: those are installed in the sandbox only.
_PLAIN_REQUIREMENT = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._-]*(\s*\[[A-Za-z0-9._,\s-]*\])?[^@/\\\x00-\x1f\x7f]*"
)
_ARCHIVE = (".whl", ".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz")


def requirement_name(requirement: str) -> str:
    """What a requirement string starts with: its project's name, as written."""
    return re.split(r"[^A-Za-z0-9._-]", requirement.strip(), maxsplit=1)[0]


def plain_requirement(requirement: str) -> bool:
    return bool(_PLAIN_REQUIREMENT.fullmatch(requirement)) and not requirement_name(
        requirement
    ).lower().endswith(_ARCHIVE)


def install_wheels(
    uv: str, python: Path | str, requirements: Sequence[str], wheels: Sequence[Path], index_args
) -> bool:
    """Install the requirements from wheels only, outside the sandbox; False if that
    cannot be done (an sdist among them, or a requirement that is not plain).

    Installing a wheel runs none of its code, so it needs no sandbox, and it can use
    the worker's shared cache (`wheel_cache`): only these installs ever write it
    (`--no-build`: never a wheel built from an sdist), so no build can poison it, and
    what a sandboxed worker downloads once it reuses, as an unsandboxed worker does.
    The venv's files are hard links into the cache: no sandbox may write the venv
    while they are (see `own_files`). `wheels` are local files farmtool chose (the
    wheel under test; uv unpacks one again when the file changed, even when its mtime
    did not, tests/test_sandbox.py shows).
    """
    if not all(map(plain_requirement, requirements)):
        return False
    argv: list[Arg] = [uv, "pip", "install", "--no-build", "--no-config", "--link-mode"]
    argv += ["hardlink", "--python", python, *index_args, *requirements, *wheels]
    env = tool_env(UV_CACHE_DIR=str(wheel_cache()))
    show(argv)
    # from an empty folder: a bare name there is never a file of the build's
    with tempfile.TemporaryDirectory(prefix="wheelfarm-install-") as empty:
        try:
            done = subprocess.run(
                [str(a) for a in argv],
                env=env,
                cwd=empty,
                stdin=DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
            )
        except OSError as e:
            fail(f"cannot run {uv}: {e.strerror or e}")
    if done.returncode == 0:
        sys.stdout.write(done.stdout + done.stderr)
        return True
    lines = (done.stdout + done.stderr).splitlines()
    print(f"not from wheels only ({error_line(lines, 200)}): installing in the sandbox")
    return False


def own_files(folder: Path) -> None:
    """Replace each file of `folder` that has other hard links with a copy of its own,
    so that a sandbox writing the folder cannot change the worker's cache through it."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                copy = path + ".wheelfarm-copy"
                shutil.copy2(path, copy)
                os.replace(copy, path)


def with_pycache(sandbox: Untrusted, venv: Path, limit: int = 500) -> Untrusted:
    """`sandbox`, also writing a fresh `__pycache__` in each folder of the venv's
    site-packages that holds modules.

    The venv is read-only in there, so without these every process of the phase
    compiles what it imports again (a backend's hooks each run in a process of their
    own: setuptools, twice). The folders are made here, empty: what the sandbox writes
    into them is its own files (a hard link into the venv's linked files cannot cross
    the mounts), read only by this build's later processes. A `__pycache__` a wheel
    shipped (its files may be links into the cache) stays read-only.
    """
    if not sandbox.isolation.sandboxed:
        return sandbox
    made: list[Path] = []
    for site in sorted(Path(venv).absolute().glob("lib/python*/site-packages")):
        for root, dirs, files in os.walk(site):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            pycache = Path(root) / "__pycache__"
            if any(f.endswith(".py") for f in files) and not pycache.exists():
                pycache.mkdir()
                made.append(pycache)
            if len(made) == limit:
                break
    return sandbox._replace(writable=(*sandbox.writable, *made))


def rust_mounts(rust: Rust | None) -> tuple[str, ...]:
    """The toolchain, read-only in a sandbox, where the system does not show it already."""
    return (str(rust.root),) if rust and not system_path(rust.root) else ()


def untrusted_env(
    isolation: Isolation,
    venv: Path | None,
    pass_names: Iterable[str] = (),
    tool_bins: Sequence[Path] = (),
) -> dict[str, str]:
    """The whole environment of untrusted code: never the worker's. `tool_bins` go on
    PATH after the venv's bin (the Rust toolchain's, for cargo)."""
    env = pick_env(UNTRUSTED_ENV, UNTRUSTED_ENV_PREFIXES)
    env.update({n: os.environ[n] for n in pass_names if ENV_NAME.fullmatch(n) and n in os.environ})
    if isolation.sandboxed:
        env.update(HOME=SANDBOX_HOME, TMPDIR="/tmp", TEMP="/tmp", TMP="/tmp")
    else:
        home = fresh_dir(Path(".home")).absolute()  # at least not the worker's own
        env.update(HOME=str(home))
    bins = [str(b) for b in tool_bins]
    if venv is not None:
        # backends run their own tools (maturin, cmake, ninja) from the venv's bin
        bins.insert(0, str(venv_python(venv).parent.absolute()))
        env["VIRTUAL_ENV"] = str(venv.absolute())
    if bins:
        env["PATH"] = os.pathsep.join(p for p in (*bins, env.get("PATH")) if p)
    return env


# --- Rust ---------------------------------------------------------------------------

RUST_ENV = "WHEELFARM_RUST"  # a Rust toolchain's folder (bin/cargo, bin/rustc), or `none`
# What rustup reads to pick the toolchain the worker's `rustc` runs.
RUSTUP_ENV = ("RUSTUP_HOME", "CARGO_HOME", "RUSTUP_TOOLCHAIN")


class Rust(NamedTuple):
    """The worker's Rust toolchain, which a build sees read-only (maturin, setuptools-rust)."""

    root: Path  # the sysroot: its bin/ has cargo and rustc, its lib/ the standard library
    version: str | None

    @property
    def bin(self) -> Path:
        return self.root / "bin"


def rust_toolchain() -> Rust | None:
    """The folder WHEELFARM_RUST names, else the sysroot of the `rustc` on the worker's
    PATH (rustup's proxy answers with the toolchain it runs: the build calls that
    toolchain's own cargo and rustc, not the proxy, which reads ~/.rustup, a folder the
    sandbox does not see, and would follow an sdist's rust-toolchain.toml). None where
    the worker has none, or says `none`."""
    named = os.environ.get(RUST_ENV, "")
    if named.lower() == "none":
        return None
    if named:
        root = Path(named).resolve()  # bwrap mounts it where it really is
    else:
        rustc = shutil.which("rustc")
        if not rustc:
            return None
        # from `/`, so that no rust-toolchain.toml of the build directory's parents counts
        env = {**tool_env(), **pick_env(RUSTUP_ENV)}
        try:
            done = subprocess.run(
                [rustc, "--print", "sysroot"], capture_output=True, text=True,
                env=env, cwd="/", stdin=DEVNULL, timeout=60,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode or not done.stdout.strip():
            return None
        root = Path(done.stdout.strip()).resolve()
    rustc_path = shutil.which("rustc", path=str(root / "bin"))
    if not (rustc_path and shutil.which("cargo", path=str(root / "bin"))):
        if named:
            fail(f"{RUST_ENV}={named} is not a Rust toolchain: its bin/ lacks cargo or rustc")
        return None
    return Rust(root, _version_number(_first_line([rustc_path, "--version"])))


CARGO_HOME = ".cargohome"  # the build's own: crates fetched with the network, built without
RUST_BACKENDS = ("maturin", "setuptools-rust", "setuptools_rust")
PROXY_ENV = tuple(n for n in TOOL_ENV if n.lower().endswith("_proxy"))


def cargo_manifests(src: Path, limit: int = 8) -> list[Path]:
    """The sdist's top-most Cargo.toml files: fetching a workspace's root fetches its
    members' crates too."""
    found: list[Path] = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d not in ("target", ".git"))
        if "Cargo.toml" in files:
            found.append(Path(root) / "Cargo.toml")
            dirs[:] = []
            if len(found) == limit:
                break
    return found


def fetch_crates(
    isolation: Isolation, rust: Rust, src: Path, requirements: Sequence[str]
) -> dict[str, str]:
    """Download the crates the sdist's Rust code needs (`cargo fetch`), in a sandbox with
    the network, into a cargo home of this build's own; returns what the backend's
    environment needs to build with them, offline. `cargo fetch` runs none of the
    crates' code (build scripts run only in the build), but it reads the sdist's
    Cargo.toml and may write its Cargo.lock: it is the package's word, so sandboxed.
    A failed fetch fails the build where the backend is a Rust one; elsewhere a
    Cargo.toml may be a test fixture, and the build goes on."""
    if not isolation.sandboxed:
        return {}  # unsandboxed (or in its container), the backend has the network itself
    home = fresh_dir(Path(CARGO_HOME)).absolute()  # never an earlier build's crates
    manifests = cargo_manifests(src)
    if not manifests:
        return {}
    env = untrusted_env(isolation, None, tool_bins=[rust.bin])
    env.update(pick_env(PROXY_ENV), CARGO_HOME=str(home))
    sandbox = Untrusted(isolation, (src, home), env, rust_mounts(rust), network=True)
    names = {requirement_name(r).lower() for r in requirements}
    rust_backend = bool(names & set(RUST_BACKENDS))
    for manifest in manifests:
        argv: list[Arg] = [rust.bin / "cargo", "fetch", "--manifest-path", manifest]
        show(argv)
        rc, lines = run(sandbox.argv(argv, manifest.parent), env=env, echo_cmd=False)
        if rc and rust_backend:
            fail(f"cannot fetch crates: {error_line(lines) or f'cargo fetch exited {rc}'}")
        if rc:
            print(f"cargo fetch of {manifest.relative_to(src)} failed: the build goes on")
    return {"CARGO_HOME": str(home), "CARGO_NET_OFFLINE": "true"}


def system_path(path: Path) -> bool:
    """Inside a folder every sandbox sees anyway (Debian's rustc is in /usr)."""
    return any(str(path) == d or str(path).startswith(d + "/") for d in SYSTEM_DIRS)


# --- running commands ---------------------------------------------------------------


def show(argv: Sequence[str | os.PathLike]) -> None:
    print("+", shlex.join(str(a) for a in argv), flush=True)


def run(
    argv: Sequence[str | os.PathLike],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    keep: int = 2000,
    echo_cmd: bool = True,
) -> tuple[int, list[str]]:
    """Run argv, echoing its output (stdout and stderr merged) to our stdout.

    Returns the exit status and the last `keep` lines of output, so the caller can
    name the error that matters.
    """
    if echo_cmd:
        show(argv)
    program = resolve(argv[0])
    try:
        proc = subprocess.Popen(
            [program, *(str(a) for a in argv[1:])],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            text=True,
            errors="replace",
        )
    except FileNotFoundError:
        fail(missing(program) if os.sep not in program else f"cannot run {program}: not found")
    except OSError as e:
        fail(f"cannot run {argv[0]}: {e.strerror or e}")
    tail: deque[str] = deque(maxlen=keep)
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        tail.append(ANSI.sub("", line.rstrip("\r\n")))
    sys.stdout.flush()
    return proc.wait(), list(tail)


def check_run(argv: Sequence[str | os.PathLike], what: str, **kwargs) -> list[str]:
    """run() that fails with `what: <the error line of the output>` on a non-zero exit."""
    rc, lines = run(argv, **kwargs)
    if rc:
        fail(f"{what}: {error_line(lines) or f'{Path(str(argv[0])).name} exited {rc}'}")
    return lines


# Lines that only say "something above failed".
_GENERIC = re.compile(
    r"^error: command .* failed with exit (code|status)"
    r"|^error: Command .* returned non-zero exit status"
    r"|^error: subprocess-exited-with-error"
    r"|^ERROR Backend subprocess exited"
    r"|^(\w+\.)*(CalledProcessError|BuildBackendException|SystemExit)\b"
    r"|^(\w+\.)*\w*(CompileError|LinkError|ExecError)\b"
    r"|collect2: error: ld returned"
    r"|^error: (legacy-install-failure|metadata-generation-failed)"
    r"|^ninja: build stopped"
    r"|^make(\[\d+\])?: \*\*\*"
    r"|^note: This (error|is an issue)"
    r"|^hint: "
)
# A compiler's error diagnostic (gcc/clang `f.c:3:5: error:`, MSVC `f.c(3): error C1234:`).
_COMPILER_ERROR = re.compile(r"^\S.*?(:\d+(:\d+)?|\(\d+\)): (fatal )?error\b")
# Lines a compiler prints around its diagnostics (context, source excerpt, caret).
_COMPILER_CONTEXT = re.compile(
    r"^(\S.*?(:\d+(:\d+)?|\(\d+\)): |In file included from |from \S+:\d+|\S+: In |\d+ \||\|)"
)
_MEANINGFUL = re.compile(
    r"\bld(\.\w+)?: .*(cannot find|undefined reference|not found)"  # the linker
    r"|undefined reference to "
    r"|^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)(: |$)"  # a Python exception
    r"|^(fatal )?error: "  # setuptools, distutils, uv
    r"|^ERROR: "  # pip, build
    r"|^cause: "  # uv's explanation (not on a terminal)
    r"|^(╰─▶|×) "  # the same, on a terminal
)


def error_line(lines: Sequence[str], limit: int = 300) -> str:
    """The line of tool output that says what went wrong, shortened.

    That is the last meaningful line that is not a generic "command failed" one;
    for a compiler's error, the first error of the failing compile (later ones
    often follow from it).
    """
    stripped = [ANSI.sub("", line).strip() for line in lines if line.strip()]
    found = None
    for i in range(len(stripped) - 1, -1, -1):
        line = stripped[i]
        if _GENERIC.search(line):
            continue
        if _COMPILER_ERROR.search(line) or _MEANINGFUL.search(line):
            found = i
            break
    if found is None:
        rest = [line for line in stripped if not line.startswith(("+ ", "hint:"))]
        line = rest[-1] if rest else ""
    else:
        line = stripped[found]
        if _COMPILER_ERROR.search(line):
            start = found
            while start > 0 and _COMPILER_CONTEXT.search(stripped[start - 1]):
                start -= 1
            line = next(ln for ln in stripped[start:] if _COMPILER_ERROR.search(ln))
    line = re.sub(r"^(ERROR|error|cause):\s*", "", line)
    line = re.sub(r"^(╰─▶|×)\s*", "", line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


TOOLS_ENV = "WHEELFARM_TOOLS"  # folders (os.pathsep-separated) of the farm's tools
WORKER_PROGRAMS = {"buildbot-worker", "twistd", "buildbot_worker"}


def which(tool: str) -> str | None:
    """A tool on PATH, else in WHEELFARM_TOOLS, else beside the worker's Python: a
    worker started without its venv's bin on PATH still finds the venv's tools."""
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
    """The Python that runs buildbot-worker (this script's parent), when the command
    line says so with a path (the shebang of a venv's buildbot-worker makes one):
    `/srv/venv/bin/python /srv/venv/bin/buildbot-worker start ...`."""
    try:  # Linux
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
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


def venv_python(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def fresh_dir(path: Path) -> Path:
    """An empty folder at `path`. Its contents go, not the folder itself: in a container
    it may be a mount point (the only writable places of the build directory)."""
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        return path
    if path.exists() or path.is_symlink():
        path.unlink()
    path.mkdir(parents=True)
    return path


def make_venv(venv: Path) -> Path:
    """A new, empty venv for the Python running this script."""
    if venv.exists():
        fresh_dir(venv)
    if which("uv"):
        argv: list[Arg] = ["uv", "venv", "--quiet", venv, "--python", sys.executable]
        check_run(argv, "venv failed", env=tool_env())
    else:
        # pip runs from the target Python and installs into the venv with --python.
        argv = [sys.executable, "-m", "venv", "--without-pip", venv]
        check_run(argv, "venv failed", env=tool_env())
    return venv_python(venv).absolute()  # absolute: the backend runs in the source dir


def pip_install(
    python: Path | str,
    requirements: Sequence[str],
    what: str,
    index_args: Sequence[str] = (),
    sandbox: Untrusted | None = None,
    wheels: Sequence[Path] = (),
) -> None:
    """Install into the environment of `python` (a venv's interpreter), in `sandbox`
    where something must be built; `wheels` are local wheel files farmtool chose."""
    if not requirements and not wheels:
        return
    uv = which("uv")
    sandboxed = sandbox is not None and sandbox.isolation.sandboxed
    if sandboxed and uv and install_wheels(uv, python, requirements, wheels, index_args):
        return
    requirements = [*requirements, *map(str, wheels)]
    if uv:
        # by its path: in the sandbox, the worker's PATH is not (a worker started
        # without its venv on PATH finds uv beside its Python)
        argv = [uv, "pip", "install", "--python", python, *index_args, *requirements]
    else:
        argv = [sys.executable, "-m", "pip", "--python", python, "install"]
        argv += ["--disable-pip-version-check", *index_args, *requirements]
    if sandbox is None or not sandbox.isolation.sandboxed:
        # the tools' environment, not the worker's whole one
        check_run(argv, what, env=tool_env())
        return
    own_files(Path(python).parent.parent)  # an earlier install may have linked the cache
    # local files among the requirements (a wheel, a registry's path) must be seen
    files = tuple(r for r in requirements if os.path.isabs(r) and os.path.exists(r))
    sandbox = sandbox._replace(readable=sandbox.readable + files)
    show(argv)
    check_run(sandbox.argv(argv, Path.cwd()), what, env=sandbox.env, echo_cmd=False)


def one_file(folder: Path, pattern: str, what: str) -> Path:
    found = sorted(folder.glob(pattern)) if folder.is_dir() else []
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        fail(f"expected one {what} in {folder}, found {len(found)} ({names})")
    return found[0]


# --- fetch --------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cmd_fetch(args: argparse.Namespace) -> None:
    """Download the sdist and check its sha256 against the one PyPI published."""
    if os.sep in args.filename or (os.altsep and os.altsep in args.filename):
        fail(f"sdist file name {args.filename!r} contains a path separator")
    dest = fresh_dir(Path(args.dest))
    target = dest / args.filename
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(args.url, timeout=120) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
    except OSError as e:
        fail(f"sdist not found: {args.url}: {e}")
    got = sha256_of(partial)
    if got != args.sha256:
        partial.unlink()
        fail(f"hash mismatch for {args.filename}: expected sha256 {args.sha256}, got {got}")
    partial.rename(target)
    print(f"fetched {target} ({target.stat().st_size} bytes, sha256 {got})")


# --- unpacking an sdist safely -------------------------------------------------------


def _unsafe_name(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", name)) or ".." in parts


def unpack_sdist(sdist: Path, dest: Path) -> tuple[Path, int]:
    """Unpack into dest; return the project directory and the newest member mtime.

    Refuses members that would land outside dest (absolute paths, `..`, links
    pointing out, devices) rather than silently skipping them: such an sdist is
    broken or hostile, and the build says so.
    """
    fresh_dir(dest)
    newest = 0
    if sdist.name.endswith(".zip"):
        with zipfile.ZipFile(sdist) as zf:
            for info in zf.infolist():
                if _unsafe_name(info.filename):
                    fail(f"unsafe sdist: member {info.filename!r} is outside the source tree")
                newest = max(newest, calendar.timegm((*info.date_time, 0, 0, -1)))
            zf.extractall(dest)
    else:
        try:
            tar = tarfile.open(sdist)
        except (tarfile.TarError, OSError) as e:
            fail(f"cannot open sdist {sdist.name}: {e}")
        with tar:
            for member in tar.getmembers():
                name = member.name
                if _unsafe_name(name):
                    fail(f"unsafe sdist: member {name!r} is outside the source tree")
                if member.issym() or member.islnk():
                    base = posixpath.dirname(name) if member.issym() else ""
                    target = posixpath.normpath(posixpath.join(base, member.linkname))
                    if member.linkname.startswith("/") or target.split("/")[0] == "..":
                        fail(f"unsafe sdist: link {name!r} points outside the source tree")
                elif not (member.isfile() or member.isdir()):
                    fail(f"unsafe sdist: member {name!r} is not a file or directory")
                newest = max(newest, int(member.mtime))
            if hasattr(tarfile, "data_filter"):  # 3.10.12+, 3.11.4+: belt and braces
                tar.extractall(dest, filter="data")
            else:
                tar.extractall(dest)  # noqa: S202 -- every member was checked above
    entries = list(dest.iterdir())
    project = entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
    if not (project / "pyproject.toml").is_file() and not (project / "setup.py").is_file():
        fail(f"sdist {sdist.name} has neither pyproject.toml nor setup.py")
    return project, newest


# --- build --------------------------------------------------------------------------

# Runs with the build venv's Python and the `build` library from BUILD_TOOL on
# sys.path while it is imported (not PYTHONPATH: the backend, which runs in its own
# process, never sees it, and neither does the check of what is installed).
_BUILD_HELPER = r"""
import json, subprocess, sys
tool, src, step, result = sys.argv[1:5]
sys.path.insert(0, tool)
import build, build._util, packaging.markers, packaging.requirements, packaging.specifiers
builder = build.ProjectBuilder(src, python_executable=sys.executable)
sys.path.remove(tool)
try:
    if step == "system":
        out = {"requires": sorted(builder.build_system_requires)}
    else:
        dynamic = sorted(builder.get_requires_for_build("wheel"))
        missing = [r for r in dynamic if any(build.check_dependency(r))]
        if missing:  # farmtool installs these and asks again
            out = {"missing": missing}
        else:
            out = {"wheel": builder.build("wheel", sys.argv[5])}
except build.BuildBackendException as e:
    # The backend printed why (that is the line to report), unless it never ran.
    print(f"BuildBackendException: {e}", file=sys.stderr)
    if not isinstance(e.exception, subprocess.CalledProcessError):
        print(f"{type(e.exception).__name__}: {e.exception}", file=sys.stderr)
    sys.exit(3)
except build.BuildException as e:
    print(f"BuildException: {e}", file=sys.stderr)
    sys.exit(3)
with open(result, "w") as f:
    json.dump(out, f)
"""
DEFAULT_BUILD_REQUIRES = ["setuptools >= 40.8.0"]  # PEP 517's fallback, as `build` has it


def declared_build_requires(src: Path) -> list[str] | None:
    """[build-system] requires, read here when this Python has tomllib (else None)."""
    try:
        import tomllib  # 3.11+; on 3.10 the build helper reads it
    except ImportError:
        return None
    pyproject = src / "pyproject.toml"
    if not pyproject.is_file():
        return list(DEFAULT_BUILD_REQUIRES)
    try:
        table = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        fail(f"build failed: pyproject.toml: {e}")
    system = table.get("build-system")
    if system is None:
        return list(DEFAULT_BUILD_REQUIRES)
    requires = system.get("requires") if isinstance(system, dict) else None
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        return None  # let `build` explain what is wrong with it
    return requires


class Background:
    """A command started now and waited for later (its output is shown when it ends)."""

    def __init__(self, argv: Sequence[str | os.PathLike], what: str):
        self.argv, self.what = [resolve(argv[0]), *(str(a) for a in argv[1:])], what
        self.proc = subprocess.Popen(
            self.argv,
            env=tool_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=DEVNULL,
            text=True,
            errors="replace",
        )

    def wait(self) -> None:
        output, _ = self.proc.communicate()
        show(self.argv)
        sys.stdout.write(output)
        if self.proc.returncode:
            lines = [ANSI.sub("", line) for line in output.splitlines()]
            fail(f"{self.what}: {error_line(lines) or f'exited {self.proc.returncode}'}")


def python_version() -> str:
    """This Python as X.Y, with a `t` for a free-threaded build."""
    free = "t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
    return f"{sys.version_info.major}.{sys.version_info.minor}{free}"


def container_argv(
    engine: str,
    image: str,
    python_version: str,
    cwd: str | os.PathLike,
    args: Sequence[str],
    env_names: Iterable[str],
    *,
    user: str | None = None,
    arch: str | None = None,
    network: str | None = None,
    writable: Sequence[str] = (),
    readonly: Sequence[str] = (),
) -> list[str]:
    """The argv that runs `farmtool.py ARGS` in IMAGE with the image's Python X.Y.

    The build directory is mounted at /work; environment variables are passed by
    name only (the engine copies their values from its own environment), so no
    value is ever part of a command line. `user` (uid:gid, for docker) makes the
    files the container writes belong to the worker's user. `arch` runs an image of
    another architecture (QEMU, through binfmt_misc); `network` is the engine's
    network mode (`host` where the farm's index is on this machine's loopback).
    The build directory is read-only but for the `writable` folders in it: the
    package's code in the container cannot touch farmtool.py, which later steps run on
    the host. `readonly` host folders are mounted read-only at their own paths (the
    worker's Rust toolchain).
    """
    match = re.fullmatch(r"3\.(\d+)(t?)", python_version)
    if not match:
        raise ValueError(f"not a Python version: {python_version!r}")
    minor, free = match.groups()
    names = list(env_names)
    for name in names:
        if not ENV_NAME.fullmatch(name):
            raise ValueError(f"not an environment variable name: {name!r}")
    argv = [engine, "run", "--rm", "-v", f"{os.fspath(cwd)}:/work:ro", "-w", "/work"]
    for folder in writable:
        if Path(folder).is_absolute() or ".." in Path(folder).parts:
            raise ValueError(f"not a folder of the build directory: {folder!r}")
        argv += ["-v", f"{os.path.join(os.fspath(cwd), folder)}:/work/{folder}"]
    for folder in readonly:
        if not Path(folder).is_absolute() or ":" in folder or "," in folder:
            raise ValueError(f"not an absolute host folder: {folder!r}")
        argv += ["-v", f"{folder}:{folder}:ro"]
    if arch:
        argv += ["--arch", arch]
    if network:
        argv += ["--network", network]
    if user:
        argv += ["--user", user, "-e", "HOME=/tmp"]
    for name in names:
        argv += ["-e", name]
    # manylinux images keep each CPython in /opt/python/cp3XY-cp3XY[t]/
    interpreter = f"/opt/python/cp3{minor}-cp3{minor}{free}/bin/python"
    return [*argv, image, interpreter, "farmtool.py", *args]


def in_container(
    args: argparse.Namespace,
    farm_args: list[str],
    env_names: list[str],
    network: str | None = None,
    writable: Sequence[str] = (),
    readonly: Sequence[str] = (),
) -> None:
    """Run this subcommand again inside the container; relay its one error line."""
    engine = which(args.container_engine)
    if not engine:
        fail(f"container engine {args.container_engine} not found on PATH")
    if not Path("farmtool.py").is_file():
        fail("farmtool.py is not in the build directory, cannot run it in a container")
    user = None
    if Path(engine).name == "docker" and hasattr(os, "getuid"):
        user = f"{os.getuid()}:{os.getgid()}"
    env = dict(os.environ, WHEELFARM_CONTAINER_IMAGE=args.image)
    names = [*env_names, "WHEELFARM_CONTAINER_IMAGE"]
    argv = container_argv(
        engine,
        args.image,
        python_version(),
        os.getcwd(),
        farm_args,
        names,
        user=user,
        arch=args.container_arch,
        network=network,
        writable=[FACTS_DIR, *writable],  # the inner farmtool's facts are not ours
        readonly=readonly,
    )
    for folder in [FACTS_DIR, *writable]:
        Path(folder).mkdir(parents=True, exist_ok=True)  # mount points
    show(argv)
    # The container's last line of stderr becomes our reason when it is the inner
    # farmtool's `error: ...`: the inner farmtool is the container's PID 1 and kills
    # what the package's code left running before it writes that line (last_words). An
    # `error:` line the package printed earlier (a test command's stderr reaches this
    # stream too) is shown like any output, never believed.
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True, errors="replace")
    last = None
    assert proc.stderr is not None
    for line in proc.stderr:
        if last is not None:
            sys.stdout.write(last)
        last = line
    rc = proc.wait()
    if rc:
        reason = ""
        if last is not None and last.startswith("error: "):
            reason = last[len("error: ") :].strip()
        fail(reason or f"container run failed ({Path(engine).name} exited {rc})")
    if last is not None:
        sys.stdout.write(last)
    sys.stdout.flush()


def image_toolchain(args: argparse.Namespace) -> dict:
    """The image's toolchain, from a fresh container in which no package code ever ran
    (the build directory read-only): what the build ran with, as the farm says it."""
    engine = which(args.container_engine) or args.container_engine
    argv = container_argv(
        engine, args.image, python_version(), os.getcwd(), ["toolchain"],
        ["WHEELFARM_CONTAINER_IMAGE"], arch=args.container_arch,
        writable=[FACTS_DIR],  # where it leaves its own facts file, as every run does
    )  # fmt: skip
    env = dict(os.environ, WHEELFARM_CONTAINER_IMAGE=args.image)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=DEVNULL)
    if done.returncode:
        fail(f"cannot read the image's toolchain ({Path(engine).name} exited {done.returncode})")
    try:
        info = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        fail(f"cannot read the image's toolchain ({Path(engine).name} exited {done.returncode})")
    return info if isinstance(info, dict) else {}


def relative_to_cwd(path: str) -> str:
    """Paths given to a containerised farmtool must be inside the mounted build dir."""
    p = Path(path)
    if not p.is_absolute():
        return path
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        fail(f"{path} is outside the build directory, cannot use it in a container")


# How each package manager installs, and asks whether a package is installed. Names
# come from the registry, where they are checked (package names only); here they are
# still only ever argv items, never part of a shell line.
SYSTEM_MANAGERS: dict[str, dict[str, Any]] = {
    "apt": {
        "installed": ["dpkg-query", "-W", "-f=${Status}"],
        "says": "install ok installed",
        "update": ["apt-get", "update", "-qq"],
        "install": ["apt-get", "install", "-y", "-qq", "--no-install-recommends"],
    },
    "dnf": {
        "installed": ["rpm", "-q"],
        "says": "",
        "update": None,
        "install": ["dnf", "install", "-y", "-q"],
    },
    "brew": {
        "installed": ["brew", "list", "--versions"],
        "says": "",
        "update": None,
        "install": ["brew", "install"],
    },
}
SYSTEM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9@+._-]{0,99}")


def system_packages(specs: Sequence[str]) -> dict[str, list[str]]:
    """`apt:libyaml-dev` ... -> {"apt": ["libyaml-dev"], ...} (a bad item fails)."""
    found: dict[str, list[str]] = {}
    for spec in specs:
        manager, _, name = spec.partition(":")
        if manager not in SYSTEM_MANAGERS or not SYSTEM_NAME.fullmatch(name):
            fail(f"not a system package: {spec!r} (MANAGER:NAME, MANAGER one of apt, dnf, brew)")
        found.setdefault(manager, []).append(name)
    return found


def this_manager() -> str | None:
    """The package manager of this machine (or image), by the tool that asks it."""
    for manager, how in SYSTEM_MANAGERS.items():
        if which(how["installed"][0]):
            return manager
    return None


def missing_system_packages(wanted: dict[str, list[str]]) -> tuple[str | None, list[str]]:
    """This machine's manager, and which of the packages listed for it are not installed."""
    manager = this_manager()
    if manager is None or manager not in wanted:
        return manager, []
    how = SYSTEM_MANAGERS[manager]
    missing = []
    for name in wanted[manager]:
        done = subprocess.run(
            [*how["installed"], name], capture_output=True, text=True, stdin=DEVNULL
        )
        if done.returncode or how["says"] not in done.stdout:
            missing.append(name)
    return manager, missing


def provide_system_packages(specs: Sequence[str], may_install: bool) -> None:
    """Install the build's system packages (in a container, as its root), or, on a
    worker's own system, check that they are there and decline the build if not."""
    wanted = system_packages(specs)
    manager, missing = missing_system_packages(wanted)
    if not missing:
        if wanted and manager not in wanted:
            print(f"system packages: none listed for {manager or 'this system'}")
        return
    if not may_install:
        fail(
            f"declined: needs system packages {', '.join(missing)} ({manager}), "
            "not installed on this worker"
        )
    assert manager is not None  # something is missing, so this system has a manager
    how = SYSTEM_MANAGERS[manager]
    if how["update"]:
        check_run(how["update"], "cannot install system packages")
    check_run([*how["install"], *missing], "cannot install system packages")
    print(f"installed system packages: {', '.join(missing)} ({manager})")


def cmd_build(args: argparse.Namespace) -> None:
    """Build a wheel from the one sdist in --sdist-dir into --out, in a fresh venv."""
    sdist_dir = Path(args.sdist_dir)
    sdists = sorted(sdist_dir.iterdir()) if sdist_dir.is_dir() else []
    if len(sdists) != 1:
        fail(f"expected one sdist in {args.sdist_dir}, found {len(sdists)}")
    if args.container_engine:
        system_packages(args.system)  # a bad item fails here, not in the container
        farm_args = ["build", "--sdist-dir", relative_to_cwd(args.sdist_dir)]
        farm_args += [a for s in args.system for a in ("--system", s)]
        farm_args += ["--install-system"] if args.system else []
        farm_args += ["--out", relative_to_cwd(args.out)]
        farm_args += [a for r in args.requires for a in ("--requires", r)]
        farm_args += index_args(args, "--index-url", "--extra-index-url")
        names = [n for n in (*args.pass_env, "SOURCE_DATE_EPOCH") if n in os.environ]
        FACTS["isolation"] = f"container ({args.container_engine})"
        writable = [BUILD_ENV, BUILD_TOOL, BUILD_SRC, relative_to_cwd(args.out), ".home"]
        # the host's network: the farm's index may be on this machine's loopback
        farm_args += ["--frontend", args.frontend]
        # the worker's Rust toolchain, read-only at its own path, named for the inner
        # farmtool (not for another architecture's image: this toolchain runs here only)
        rust = None if args.container_arch else rust_toolchain()
        mounts = rust_mounts(rust)
        if rust and mounts:
            os.environ[RUST_ENV] = str(rust.root)
            names.append(RUST_ENV)
        in_container(args, farm_args, names, network="host", writable=writable, readonly=mounts)
        info = image_toolchain(args)
        if rust and mounts:
            info["rustc"] = rust.version  # the worker's, which the container saw
        info["build"] = installed_versions(Path(BUILD_TOOL)).get("build")
        info["build_deps"] = installed_versions(Path(BUILD_ENV))
        info["build_env"] = build_env_facts(Path(BUILD_ENV), args.index_url)
        FACTS["toolchain"] = info
        FACTS["summary"] = (
            f"built {one_file(Path(args.out), '*.whl', 'wheel').name} in {args.image}"
        )
        return
    isolation = resolve_isolation(args.isolation)
    FACTS["isolation"] = isolation.name
    # in the build's own container (the outer farmtool passes --install-system), as its
    # root; on a worker's own system, only checked: a volunteer's system is theirs
    contained = bool(os.environ.get("WHEELFARM_CONTAINER_IMAGE"))
    provide_system_packages(args.system, args.install_system and contained)

    out = fresh_dir(Path(args.out))
    tool = fresh_dir(Path(BUILD_TOOL).absolute())
    # The frontend installs (network) while the sdist unpacks and the venv is made.
    argv: list[Arg]
    if which("uv"):
        argv = ["uv", "pip", "install", "--quiet", "--python", sys.executable, "--target", tool]
    else:
        argv = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]
        argv += ["--target", tool]
    frontend = Background([*argv, args.frontend], "cannot install the build frontend")
    try:
        src, newest = unpack_sdist(sdists[0], Path(BUILD_SRC))
        python = make_venv(Path(BUILD_ENV))
    except Failure:
        frontend.proc.kill()
        raise
    frontend.wait()
    # Rust backends (maturin, setuptools-rust) run the worker's toolchain: read-only, on
    # PATH after the venv's bin. Their crates are fetched before (fetch_crates, with the
    # network); cargo then builds offline, writing only that cargo home and target/.
    rust = rust_toolchain()
    if rust:
        print(f"rust: {rust.version} in {rust.root}")
    passed = [*args.pass_env, "SOURCE_DATE_EPOCH"]
    env = untrusted_env(isolation, Path(BUILD_ENV), passed, [rust.bin] if rust else [])
    if "SOURCE_DATE_EPOCH" not in env and newest:
        # Builds that honour it (setuptools, hatchling, flit...) then give the same bytes.
        env["SOURCE_DATE_EPOCH"] = str(newest)
        print(f"SOURCE_DATE_EPOCH={newest} (the newest file of the sdist)")
    # The backend writes only into its source tree, the output folder and the frontend's
    # folder (its answers); without network: the requirements are installed before.
    sandbox_rw: tuple[Path, ...] = (Path(BUILD_SRC).absolute(), out.absolute(), tool)
    sandbox = Untrusted(isolation, sandbox_rw, env, rust_mounts(rust))

    def helper(step: str, *extra: str) -> dict:
        result = tool / f"{step}.json"
        argv: list[Arg] = [tool, src.absolute(), step, result, *extra]
        show([python, "-I", "-c", f"<build helper: {step}>", *argv])
        backend = with_pycache(sandbox, Path(BUILD_ENV))  # what is installed by now
        sandboxed = backend.argv([python, "-I", "-c", _BUILD_HELPER, *argv], src.absolute())
        rc, lines = run(sandboxed, env=env, echo_cmd=False)
        if rc:
            fail(f"build failed: {error_line(lines) or f'{step} step exited {rc}'}")
        try:
            answer = json.loads(read_untrusted(result))
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            fail(f"build failed: the build helper's {step} answer is not a JSON object")
        return answer

    # One resolution for the declared requirements and the registry's extras; the
    # backend's own (get_requires_for_build_wheel) are installed only if missing.
    system = declared_build_requires(src)
    if system is None:
        system = _strings(helper("system").get("requires"), "requires")
    # The farm's own wheels first (what a cascade rebuilds against), then PyPI.
    index = build_index_args(args)
    installs = installer(isolation, Path(BUILD_ENV), rust)
    what = "cannot install build requirements"
    pip_install(python, [*system, *args.requires], what, index, sandbox=installs)
    if rust:
        cargo = fetch_crates(isolation, rust, src.absolute(), [*system, *args.requires])
        if cargo:  # cargo writes its home (a lock, the unpacked crates) while it builds
            env.update(cargo)
            sandbox = sandbox._replace(writable=(*sandbox_rw, Path(cargo["CARGO_HOME"])))
    for _ in range(3):
        done = helper("wheel", str(out.absolute()))
        if "wheel" in done:
            break
        missing = _strings(done.get("missing"), "missing")
        pip_install(python, missing, what, index, sandbox=installs)
    else:
        fail(f"build failed: backend requirements stay missing: {', '.join(done['missing'])}")
    wheel = one_file(out, "*.whl", "wheel")
    if wheel.is_symlink() or not wheel.is_file():
        fail(f"build failed: {wheel.name} is not a regular file")
    info = toolchain()
    if rust:
        info["rustc"] = rust.version  # the backend could run it; the farm found it
    info["build"] = installed_versions(tool).get("build")  # the frontend, not the backend
    info["build_deps"] = installed_versions(Path(BUILD_ENV))
    info["build_env"] = build_env_facts(Path(BUILD_ENV), args.index_url)
    FACTS["toolchain"] = info
    print("toolchain:", json.dumps(info, sort_keys=True))
    print(f"built {wheel.name}")
    FACTS["summary"] = f"built {wheel.name}"


def _strings(value: object, what: str) -> list[str]:
    """A list of requirement strings the (sandboxed) build helper answered."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        fail(f"build failed: the build helper's {what} is not a list of strings")
    return value


def index_args(args: argparse.Namespace, farm: str, pypi: str) -> list[str]:
    """The index options of this command again (to pass them on), when given."""
    found = []
    if getattr(args, "index_url", None):
        found += [farm, args.index_url]
    if getattr(args, "extra_index_url", None):
        found += [pypi, args.extra_index_url]
    return found


def build_index_args(args: argparse.Namespace) -> list[str]:
    """Installer options: the farm's index first, then PyPI's, then the installer's default.

    uv takes a package from the first index that has it, so a registry package the
    farm has built comes from the farm; one it has not (yet) comes from PyPI (a
    wheel, or its sdist built in this environment), and the build record says so.
    The installer's default index stays last: where `--extra-index-url` is a test's
    PyPI with only a few sdists, the build tools still come from the real one.
    """
    if not args.index_url:
        return []
    if which("uv"):
        found = ["--index", args.index_url]
        if args.extra_index_url:
            found += ["--index", args.extra_index_url]
        return found
    # pip merges its indexes and takes the best version from any of them.
    found = ["--extra-index-url", args.index_url]
    if args.extra_index_url:
        found += ["--extra-index-url", args.extra_index_url]
    return found


def _wheel_tags(filename: str) -> set[str]:
    """`a-1.0-cp311-cp311-linux_x86_64.whl` -> {"cp311-cp311-linux_x86_64"}, expanded."""
    parts = filename[: -len(".whl")].split("-")[-3:]
    pythons, abis, platforms = (p.split(".") for p in parts)
    return {f"{x}-{y}-{z}" for x in pythons for y in abis for z in platforms}


def farm_wheel(index_url: str, name: str, metadata_sha256: str, tags: set[str]) -> dict | None:
    """The farm's wheel whose METADATA is the installed one, with its sha256; None if none.

    The installed METADATA is the wheel's byte for byte (installers copy it), and the
    index publishes each wheel's METADATA sha256 (PEP 658) and tags (its name), so this
    names the exact file that was installed without trusting any tool's output.
    """
    url = f"{index_url.rstrip('/')}/{name}/"
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            page = json.load(response)
    except OSError:  # 404: the farm has no wheel of it (HTTPError is an OSError)
        return None
    except ValueError:
        return None
    for entry in page.get("files", []):
        filename = entry.get("filename", "")
        meta = entry.get("core-metadata") or entry.get("dist-info-metadata") or {}
        if not filename.endswith(".whl") or not isinstance(meta, dict):
            continue
        if meta.get("sha256") == metadata_sha256 and _wheel_tags(filename) == tags:
            return {"wheel": filename, "sha256": entry.get("hashes", {}).get("sha256")}
    return None


def build_env_facts(venv: Path, index_url: str | None) -> dict[str, dict]:
    """Each distribution in the build venv: version, wheel tags, and the farm's wheel it is.

    `from: farm` with the wheel's name and sha256 when the farm's index has the wheel
    that was installed; `from: elsewhere` otherwise (PyPI, or built from an sdist here).
    """
    import email.parser

    facts: dict[str, dict] = {}
    for info in sorted(venv.glob("**/site-packages/*.dist-info")):
        try:
            data = (info / "METADATA").read_bytes()
            wheel_info = (info / "WHEEL").read_text(encoding="utf-8")
        except OSError:
            continue
        headers = email.parser.BytesParser().parsebytes(data, headersonly=True)
        if not headers["Name"] or not headers["Version"]:
            continue
        name = re.sub(r"[-_.]+", "-", str(headers["Name"])).lower()
        tags = set(re.findall(r"(?m)^Tag:\s*(\S+)\s*$", wheel_info))
        digest = hashlib.sha256(data).hexdigest()
        entry: dict = {"version": str(headers["Version"]), "tags": sorted(tags)}
        entry["metadata_sha256"] = digest
        found = farm_wheel(index_url, name, digest, tags) if index_url else None
        entry.update(found or {})
        entry["from"] = "farm" if found else "elsewhere"
        facts[name] = entry
    return facts


def installed_versions(prefix: Path) -> dict[str, str]:
    """name -> version of what a venv (or a --target folder) holds, for the build record."""
    found = {}
    metas = [*prefix.glob("**/site-packages/*.dist-info"), *prefix.glob("*.dist-info")]
    for meta in metas:
        name, _, version = meta.name[: -len(".dist-info")].partition("-")
        found[name.lower().replace("_", "-")] = version
    return dict(sorted(found.items()))


# --- toolchain ----------------------------------------------------------------------


# The distribution behind each tool, to read its version without running it
# (`abi3audit --version` alone takes most of a second).
TOOL_DISTS = {
    "uv": "uv",
    "auditwheel": "auditwheel",
    "patchelf": "patchelf",
    "abi3audit": "abi3audit",
    "check-wheel-contents": "check_wheel_contents",
    "delocate-wheel": "delocate",
    "delvewheel": "delvewheel",
}


def tool_version(tool: str) -> str | None:
    """The version of a tool on PATH: from the dist-info beside it, else `--version`."""
    found = which(tool)
    if not found:
        return None
    prefix = Path(found).resolve().parent.parent  # a venv's (or prefix's) bin/ or Scripts/
    dist = TOOL_DISTS.get(tool, tool).replace("-", "_")
    for site in ("lib/python3*/site-packages", "Lib/site-packages"):
        metas = sorted(prefix.glob(f"{site}/{dist}-*.dist-info"))
        if len(metas) == 1:
            return metas[0].name[len(dist) + 1 : -len(".dist-info")]
    return _version_number(_first_line([found, "--version"]))


def _first_line(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, errors="replace", timeout=30, stdin=DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0].strip() if text else None


def _version_number(line: str | None) -> str | None:
    match = re.search(r"\d+(\.\d+)+\S*", line or "")
    return match.group(0) if match else None


def compiler_version() -> str | None:
    """First line of `$CC --version` (or the C compiler Python was built with)."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or ""
    parts = shlex.split(cc) if cc else []
    found = which(parts[0]) if parts else None
    return _first_line([found, "--version"]) if found else None


def toolchain() -> dict:
    """What builds and checks wheels on this worker (stored in the build record)."""
    libc, libc_version = platform.libc_ver()
    info: dict = {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": sysconfig.get_platform(),
        "os": platform.platform(),
        "libc": f"{libc} {libc_version}".strip() or None,
        "manylinux": None,
        "macos": platform.mac_ver()[0] or None,
        "compiler": compiler_version(),
        "container_image": os.environ.get("WHEELFARM_CONTAINER_IMAGE"),
    }
    if libc == "glibc" and libc_version:
        glibc = libc_version.replace(".", "_")
        info["manylinux"] = f"manylinux_{glibc}_{platform.machine()}"
    try:
        info["pip"] = importlib.metadata.version("pip")
    except importlib.metadata.PackageNotFoundError:
        info["pip"] = None
    tools = ["uv", "check-wheel-contents", "abi3audit"]
    repair = {"linux": ["auditwheel", "patchelf"], "darwin": ["delocate-wheel"]}
    tools += repair.get(sys.platform, [])
    tools += ["delvewheel"] if os.name == "nt" else []
    for tool in tools:
        info[tool] = tool_version(tool)
    return info


def cmd_toolchain(args: argparse.Namespace) -> None:
    """Print the toolchain of this worker as one JSON object."""
    print(json.dumps(toolchain(), sort_keys=True))


# --- wheels and platform tags -------------------------------------------------------


def wheel_platform_tags(wheel: Path) -> list[str]:
    return wheel.name[: -len(".whl")].split("-")[-1].split(".")


def is_pure(wheel: Path) -> bool:
    """A wheel with no compiled code: nothing to repair or audit."""
    if wheel.name.endswith("-none-any.whl"):
        return True
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metas = [n for n in names if re.fullmatch(r"[^/]+\.dist-info/WHEEL", n)]
        purelib = bool(metas) and re.search(
            rb"(?mi)^Root-Is-Purelib:\s*true\s*$", zf.read(metas[0])
        )
    binary = (".so", ".pyd", ".dylib", ".dll")
    return bool(purelib) and not any(n.endswith(binary) or ".so." in n for n in names)


_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def parse_tag(tag: str) -> tuple[str, tuple[int, ...], str] | None:
    """manylinux_2_17_x86_64 -> ("manylinux", (2, 17), "x86_64"); also musllinux, macosx."""
    for legacy, version in _LEGACY_MANYLINUX.items():
        if tag.startswith(legacy + "_"):
            return "manylinux", version, tag[len(legacy) + 1 :]
    match = re.fullmatch(r"(manylinux|musllinux|macosx)_(\d+)_(\d+)_(.+)", tag)
    if not match:
        return None
    family, major, minor, arch = match.groups()
    return family, (int(major), int(minor)), arch


def tag_satisfies(tag: str, policy: str) -> bool:
    """Whether a wheel tagged `tag` is acceptable under `policy` (same or older base)."""
    if tag == policy:
        return True
    got, want = parse_tag(tag), parse_tag(policy)
    if not got or not want or got[0] != want[0]:
        return False
    arch_ok = got[2] == want[2] or (
        got[0] == "macosx" and got[2] == "universal2" and want[2] in ("arm64", "x86_64")
    )
    return arch_ok and got[1] <= want[1]


def auditwheel_env() -> dict[str, str]:
    """auditwheel finds patchelf only on PATH: put both tools' directories first."""
    dirs: list[str] = []
    for tool in ("auditwheel", "patchelf"):
        found = which(tool)
        if found:
            for d in (str(Path(found).parent), str(Path(found).resolve().parent)):
                if d not in dirs:
                    dirs.append(d)
    path = os.pathsep.join([*dirs, os.environ.get("PATH", "")])
    return dict(os.environ, PATH=path)


def auditwheel_show(wheel: Path) -> tuple[str | None, list[str]]:
    """The platform tag `auditwheel show` finds the wheel consistent with, and its output."""
    rc, lines = run(["auditwheel", "show", wheel], env=auditwheel_env())
    text = " ".join(" ".join(lines).split())  # it wraps its lines
    match = re.search(r'consistent with the following platform tag: "([^"]+)"', text)
    if rc or not match:
        return None, lines
    return match.group(1), lines


def violation(needed: str, show_lines: list[str], policy: str) -> str:
    """`policy violation: wheel needs manylinux_2_34 (symbol versions GLIBC_2.34), ...`."""
    parsed, want = parse_tag(needed), parse_tag(policy)
    base = f"{parsed[0]}_{parsed[1][0]}_{parsed[1][1]}" if parsed else needed
    text = " ".join(" ".join(show_lines).split())
    versions: set[str] = set()
    for group in re.findall(r"with versions \{([^}]*)\}", text):
        versions.update(v.strip(" '\"") for v in group.split(","))
    too_new = []
    for v in versions:
        m = re.fullmatch(r"GLIBC_(\d+)\.(\d+)", v)
        if m and want and (int(m[1]), int(m[2])) > want[1]:
            too_new.append(v)
    detail = ""
    if too_new:
        key = sorted(too_new, key=lambda v: tuple(int(x) for x in v[6:].split(".")))
        detail = f" (symbol versions {', '.join(key)})"
    return f"policy violation: wheel needs {base}{detail}, policy is {policy}"


# --- repair -------------------------------------------------------------------------


def cmd_repair(args: argparse.Namespace) -> None:
    """Make the wheel portable for the platform policy (or pass a pure wheel through).

    Not sandboxed, by decision: repair (and check) run only the farm's own tools
    (auditwheel, patchelf, delocate, delvewheel), never the package's code; they read
    the wheel as data, and must see the system's libraries to vendor them.
    """
    wheel = one_file(Path(args.in_dir), "*.whl", "wheel")
    out = Path(args.out)
    if is_pure(wheel) or args.tool == "none":
        fresh_dir(out)
        shutil.copy2(wheel, out / wheel.name)
        if is_pure(wheel):
            print(f"pure wheel: no repair needed: {wheel.name}")
        else:
            print(f"no repair tool for this platform: {wheel.name} copied as is")
        return
    if args.container_engine and args.tool == "auditwheel":
        farm_args = ["repair", "--tool", args.tool, "--policy", args.policy]
        farm_args += ["--in", relative_to_cwd(args.in_dir), "--out", relative_to_cwd(args.out)]
        in_container(args, farm_args, [], writable=[relative_to_cwd(args.out)])
        FACTS["summary"] = f"repaired to {one_file(out, '*.whl', 'repaired wheel').name}"
        return
    fresh_dir(out)
    if args.tool == "auditwheel":
        repair_auditwheel(wheel, out, args.policy)
    elif args.tool == "delocate":
        check_run(["delocate-wheel", "-w", out, "-v", wheel], "repair failed")
    elif args.tool == "delvewheel":
        check_run(["delvewheel", "repair", "-w", out, wheel], "repair failed")
    if not any(out.glob("*.whl")):  # some tools write nothing when there is nothing to do
        shutil.copy2(wheel, out / wheel.name)
    repaired = one_file(out, "*.whl", "repaired wheel")
    if not any(tag_satisfies(t, args.policy) for t in wheel_platform_tags(repaired)):
        tags = ".".join(wheel_platform_tags(repaired))
        fail(f"policy violation: wheel needs {tags}, policy is {args.policy}")
    epoch = normalise_wheel(repaired, wheel)
    print(f"repaired {repaired.name} (zip normalised, timestamps {epoch})")


def source_date_epoch(backend_wheel: Path) -> int:
    """SOURCE_DATE_EPOCH, else the newest timestamp of the backend's wheel (which the
    build made with the sdist's SOURCE_DATE_EPOCH): the same for every build of one sdist."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    if value.isdigit():
        return int(value)
    with zipfile.ZipFile(backend_wheel) as zf:
        stamps = [calendar.timegm((*i.date_time, 0, 0, -1)) for i in zf.infolist()]
    return max(stamps, default=ZIP_EPOCH_MIN)


ZIP_EPOCH_MIN = 315532800  # 1980-01-01, the earliest time a zip entry can say


def normalise_wheel(wheel: Path, backend_wheel: Path) -> int:
    """Rewrite a repaired wheel so that the same contents always give the same bytes.

    Repair tools write a new zip with the current time: here every entry gets the
    timestamp source_date_epoch() gives, permissions 0644 (0755 where any execute
    bit was set), deflate, in sorted order with the .dist-info last and its RECORD
    at the very end (as the wheel spec recommends). Contents and RECORD are unchanged.
    """
    import time

    epoch = max(source_date_epoch(backend_wheel), ZIP_EPOCH_MIN)
    stamp = time.gmtime(epoch)[:6]
    with zipfile.ZipFile(wheel) as zf:
        entries = [(i, zf.read(i)) for i in zf.infolist() if not i.is_dir()]

    def order(name: str) -> tuple:
        top = name.split("/")[0]
        return (top.endswith(".dist-info"), name.endswith(".dist-info/RECORD"), name)

    entries.sort(key=lambda e: order(e[0].filename))
    tmp = wheel.with_name(wheel.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as out:
        for info, data in entries:
            new = zipfile.ZipInfo(info.filename, stamp)
            mode = (info.external_attr >> 16) & 0o777
            new.external_attr = (0o100755 if mode & 0o111 else 0o100644) << 16
            new.compress_type = zipfile.ZIP_DEFLATED
            new.create_system = 3  # unix, whatever machine did it
            out.writestr(new, data)
    tmp.replace(wheel)
    return epoch


def repair_auditwheel(wheel: Path, out: Path, policy: str) -> None:
    argv: list[Arg] = ["auditwheel", "repair", "--plat", policy, "-w", out, wheel]
    rc, lines = run(argv, env=auditwheel_env())
    if not rc:
        return
    # Tell "needs a newer policy" (the package's toolchain problem) from other failures.
    needed, show_lines = auditwheel_show(wheel)
    if needed and parse_tag(needed) and not tag_satisfies(needed, policy):
        fail(violation(needed, show_lines, policy))
    reason = error_line(lines) or f"auditwheel exited {rc}"
    fail(f"repair failed: {re.sub(r'^auditwheel: error: ', '', reason)}")


# --- check --------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> None:
    """The wheels meet the platform policy, the abi3 rules and check-wheel-contents."""
    if args.container_engine:  # the image's tools, for the image's architecture
        farm_args = ["check", "--wheel-dir", relative_to_cwd(args.wheel_dir)]
        in_container(args, [*farm_args, "--policy", args.policy, "--tool", args.tool], [])
        return
    wheels = sorted(Path(args.wheel_dir).glob("*.whl"))
    if not wheels:
        fail(f"no wheel in {args.wheel_dir}")
    for wheel in wheels:
        if not is_pure(wheel):
            check_policy(wheel, args.policy, args.tool)
            if "-abi3-" in wheel.name:
                check_abi3(wheel)
        elif wheel_platform_tags(wheel) != ["any"]:
            check_tags(wheel, args.policy)  # no compiled code, yet a platform tag
        check_contents(wheel)
    print("checked", *(w.name for w in wheels))


def check_tags(wheel: Path, policy: str) -> None:
    """The wheel's name carries the policy's platform tag or an older compatible one."""
    tags = wheel_platform_tags(wheel)
    if not any(tag_satisfies(t, policy) for t in tags):
        fail(f"policy violation: wheel is tagged {'.'.join(tags)}, policy is {policy}")


def check_policy(wheel: Path, policy: str, tool: str) -> None:
    """Name and contents (as auditwheel sees them) meet the policy."""
    check_tags(wheel, policy)
    if tool == "auditwheel" and sys.platform.startswith("linux"):
        needed, lines = auditwheel_show(wheel)
        if not needed:
            fail(f"policy violation: auditwheel show: {error_line(lines) or 'no platform tag'}")
        if not tag_satisfies(needed, policy):
            fail(violation(needed, lines, policy))
        print(f"policy ok: contents are {needed}, policy is {policy}")


def check_abi3(wheel: Path) -> None:
    """An abi3 wheel's extensions use only the limited API of the Python it claims."""
    if not which("abi3audit"):
        fail(missing("abi3audit"))
    with tempfile.TemporaryDirectory(prefix="farmtool-abi3-") as tmp:
        report_path = Path(tmp) / "report.json"
        argv: list[Arg] = ["abi3audit", "--strict", "--report", "--output", report_path, wheel]
        rc, lines = run(argv)
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            report = {}
    problems = []
    for spec in report.get("specs", {}).values():
        for ext in spec.get("wheel", []):
            result = ext.get("result") or {}
            bad = sorted(result.get("non_abi3_symbols") or [])
            future = result.get("future_abi3_objects") or {}
            if bad:
                problems.append(f"{ext['name']} uses non-abi3 symbols {', '.join(bad[:5])}")
            if future or result.get("is_abi3_baseline_compatible") is False:
                problems.append(
                    f"{ext['name']} needs abi3 {result.get('computed')}, "
                    f"wheel says {result.get('baseline')}"
                )
    if problems:
        fail(f"abi3 violation: {'; '.join(problems)}")
    if rc:
        fail(f"abi3 violation: {error_line(lines) or f'abi3audit exited {rc}'}")
    print(f"abi3 ok: {wheel.name}")


def cwc_problems(lines: list[str]) -> list[tuple[str, str, list[str]]]:
    """check-wheel-contents output as (code, message, entries) per failed check."""
    problems: list[tuple[str, str, list[str]]] = []
    for line in lines:
        match = re.match(r"^.*?: (W\d{3}): (.*?):?$", line)
        if match:
            problems.append((match[1], match[2], []))
        elif line.startswith("  ") and problems:
            problems[-1][2].append(line.strip())
    return problems


def check_contents(wheel: Path) -> None:
    argv: list[Arg] = [
        "check-wheel-contents",
        "--no-config",
        "--ignore",
        ",".join(CWC_IGNORE),
        wheel,
    ]
    if not which("check-wheel-contents"):
        fail(missing("check-wheel-contents"))
    rc, lines = run(argv)
    if not rc:
        return
    problems = cwc_problems(lines)
    # A repair tool's vendored-libraries directory has no modules by design.
    real = [
        (code, message, entries)
        for code, message, entries in problems
        if not (code == "W010" and all(e.endswith(".libs/") for e in entries))
    ]
    if problems and not real:
        print("check-wheel-contents: only the repair tool's .libs/ directory (fine)")
        return
    shown = [
        f"{code} {message}: {' '.join(entries[:3])}".strip(": ") for code, message, entries in real
    ]
    fail(f"wheel contents: {'; '.join(shown[:3]) or error_line(lines)}")


# --- test ---------------------------------------------------------------------------


def wheel_modules(wheel: Path) -> list[str]:
    """Every importable module the wheel ships, from its RECORD."""
    with zipfile.ZipFile(wheel) as zf:
        records = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/RECORD", n)]
        if len(records) != 1:
            fail(f"{wheel.name} has {len(records)} RECORD files")
        text = zf.read(records[0]).decode("utf-8")
    modules = set()
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        parts = row[0].split("/")
        if parts[0].endswith((".dist-info", ".data")):
            continue
        name = parts[-1]
        if name.endswith(".py"):
            stem = name[:-3]
        elif name.endswith(EXTENSION_SUFFIXES):
            stem = name.split(".")[0]  # _speedups.cpython-311-x86_64-linux-gnu.so
        else:
            continue
        dotted = parts[:-1] if stem == "__init__" else [*parts[:-1], stem]
        if dotted and all(p.isidentifier() for p in dotted):
            modules.add(".".join(dotted))
    return sorted(modules)


# Runs in the test venv from an empty directory: imports each module in turn and
# appends one JSON line per step to the result file, so a crash names its module.
_IMPORT_HELPER = r"""
import importlib, json, re, sys, traceback
PLATFORM = re.compile(r"assert\s*\(?\s*(sys\.platform|os\.name|platform\.system\(\))")
# what only another build of CPython has: free-threading, a debug build
FLAVOUR = re.compile(r"Py_GIL_DISABLED|_is_gil_enabled|Py_DEBUG|gettotalrefcount")
result, modules = sys.argv[1], json.load(open(sys.argv[2]))
with open(result, "a") as out:
    for module in modules:
        out.write(json.dumps({"module": module, "status": "start"}) + "\n")
        out.flush()
        try:
            importlib.import_module(module)
            rec = {"module": module, "status": "ok"}
        except BaseException as e:
            lines = [l for l in str(e).splitlines() if l.strip()]
            rec = {"module": module, "status": "error", "type": type(e).__name__,
                   "message": lines[-1].strip() if lines else ""}
            if isinstance(e, ModuleNotFoundError):
                rec["missing"] = e.name
            elif isinstance(e, ImportError) and e.name:
                # `from pkg import _ext_of_another_platform`: Python tried pkg._ext as a
                # submodule first; if pkg never mentions the name, it was a module.
                m = re.match(r"cannot import name '(\w+)' from '([\w.]+)'", str(e))
                pkg = sys.modules.get(e.name)
                if m and m[2] == e.name and hasattr(pkg, "__path__"):
                    try:
                        with open(pkg.__file__, encoding="utf-8") as f:
                            source = f.read()
                    except (OSError, TypeError, ValueError):
                        source = ""
                    if not re.search(r"\b%s\b" % re.escape(m[1]), source):
                        rec["missing"] = e.name + "." + m[1]
            if isinstance(e, ImportError) and "does not define module export function" in str(e):
                # a shared library the package loads itself (maturin's cffi bindings
                # ship lib<crate>.so), not an extension module: CPython says so
                rec["library"] = True
            frames = traceback.extract_tb(e.__traceback__)
            if isinstance(e, AssertionError) and frames and PLATFORM.match(frames[-1].line or ""):
                rec["platform"] = frames[-1].line
            else:
                flavour = FLAVOUR.search((frames[-1].line or "" if frames else "") + " " + str(e))
                if flavour:
                    rec["flavour"] = flavour[0]
                elif type(e).__name__ == "SkipTest":  # a test module that says "not here"
                    rec["flavour"] = f"SkipTest: {rec['message']}"
            text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            rec["traceback"] = text.rstrip().splitlines()[-12:]
        out.write(json.dumps(rec) + "\n")
        out.flush()
"""


def skipped_by(module: str, skips: Sequence[str]) -> bool:
    return any(module == s or module.startswith(s + ".") for s in skips)


def import_all(
    python: Path,
    modules: list[str],
    shipped: set[str],
    sandbox: Untrusted,
    cwd: Path,
    timeout: float,
) -> tuple[list[str], list[str], list[str]]:
    """Import each module in the test venv; return (imported, skipped, failures)."""
    work = Path(cwd)
    (work / "modules.json").write_text(json.dumps(modules), encoding="utf-8")
    result = work / "imports.jsonl"
    argv: list[Arg] = [python, "-I", "-c", _IMPORT_HELPER, result, work / "modules.json"]
    show([python, "-I", "-c", "<import each module>", result, work / "modules.json"])
    crashed = None
    try:
        rc = subprocess.call(
            sandbox.argv(argv, cwd), cwd=cwd, env=sandbox.env, stdin=DEVNULL, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        rc, crashed = None, f"timed out after {timeout:g} s"
    records = []
    text = read_untrusted(result) if result.exists() or result.is_symlink() else ""
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:  # half a line, from an interpreter that died writing it
            continue
        if isinstance(rec, dict) and isinstance(rec.get("module"), str):
            records.append(rec)
    imported, skipped, failures = [], [], []
    done = {r["module"] for r in records if r.get("status") != "start"}
    for rec in records:
        module = rec["module"]
        if rec.get("status") == "ok":
            imported.append(module)
        elif rec.get("status") == "error":
            missing, plat = rec.get("missing"), rec.get("platform")
            flavour = rec.get("flavour")
            if missing and missing not in shipped:
                # An optional dependency, or another platform's module: not this wheel's fault.
                print(f"skipped import: {module} (needs {missing})")
                skipped.append(module)
            elif plat:
                print(f"skipped import: {module} (needs {plat.removeprefix('assert').strip()})")
                skipped.append(module)
            elif rec.get("library") is True:
                print(f"skipped import: {module} (a shared library, not an extension module)")
                skipped.append(module)
            elif flavour:
                # e.g. a test module of the free-threaded build, asserting Py_GIL_DISABLED
                print(f"skipped import: {module} (another interpreter flavour: {flavour})")
                skipped.append(module)
            else:
                message = re.sub(r"^(/\S+|[A-Za-z]:\\\S+): ", "", str(rec.get("message", "")))
                message = re.sub(r" \((/|[A-Za-z]:\\)[^()]*\)$", "", message)
                failures.append(f"{module}: {rec.get('type')}: {message}".rstrip(": "))
                print(f"import of {module} failed:")
                for line in rec.get("traceback") or []:
                    print(f"    {line}")
    started = [r["module"] for r in records if r.get("status") == "start"]
    if started and started[-1] not in done:  # the interpreter died in this import
        why = crashed or (f"signal {-rc}" if rc and rc < 0 else f"exit {rc}")
        failures.append(f"{started[-1]}: interpreter died ({why})")
    elif rc and not failures:
        failures.append(f"import run failed (exit {rc})")
    return imported, skipped, failures


def cmd_test(args: argparse.Namespace) -> None:
    """Install the wheel with its dependencies in a fresh venv, import all, run the tests."""
    if args.container_engine:
        # A wheel of another architecture is only tested in its image (under QEMU); the
        # host's network, so that the farm's index on this machine's loopback answers.
        farm_args = ["test", "--wheel-dir", relative_to_cwd(args.wheel_dir)]
        farm_args += ["--index-url", args.index_url, "--extra-index-url", args.extra_index_url]
        farm_args += [a for r in args.requires for a in ("--requires", r)]
        farm_args += [a for s in args.skip_import for a in ("--skip-import", s)]
        farm_args += ["--import-timeout", str(args.import_timeout)]
        farm_args += ["--", *args.command] if args.command else []
        FACTS["isolation"] = f"container ({args.container_engine})"
        writable = [TEST_ENV, TEST_RUN, ".home"]
        in_container(args, farm_args, [], network="host", writable=writable)
        FACTS["summary"] = f"imported and tested in {args.image}"
        return
    isolation = resolve_isolation(args.isolation)
    FACTS["isolation"] = isolation.name
    wheel = one_file(Path(args.wheel_dir), "*.whl", "wheel").absolute()
    python = make_venv(Path(TEST_ENV)).absolute()
    if which("uv"):
        # uv takes a package from the first index that has it: the farm's, then PyPI.
        index = ["--index", args.index_url, "--default-index", args.extra_index_url]
    else:
        # pip merges its indexes and takes the best version from any.
        index = ["--index-url", args.extra_index_url, "--extra-index-url", args.index_url]
    installs = installer(isolation, Path(TEST_ENV))
    pip_install(python, args.requires, "install failed", index, installs, wheels=[wheel])

    modules = wheel_modules(wheel)
    shipped: set[str] = set()
    for m in modules:
        parts = m.split(".")
        shipped.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    to_import, skipped = [], []
    for m in modules:
        if m.split(".")[-1] == "__main__":
            continue  # importing it runs the package's command line
        if skipped_by(m, args.skip_import):
            print(f"skipped import: {m} (--skip-import)")
            skipped.append(m)
        else:
            to_import.append(m)

    # The imports and the tests run from a folder of their own, the only one they may
    # write to, without network (what they need is installed above).
    neutral = fresh_dir(Path(TEST_RUN)).absolute()
    sandbox = Untrusted(isolation, (neutral,), untrusted_env(isolation, Path(TEST_ENV)))
    sandbox = with_pycache(sandbox, Path(TEST_ENV))
    imported, not_needed, failures = import_all(
        python, to_import, shipped, sandbox, neutral, args.import_timeout
    )
    skipped += not_needed
    if failures:
        shown = failures[:8] + ([f"... {len(failures) - 8} more"] if len(failures) > 8 else [])
        fail(f"import failed: {'; '.join(shown)}")
    summary = f"imported {len(imported)} modules"
    if skipped:
        summary += f" ({len(skipped)} skipped: {', '.join(skipped)})"
    print(summary)
    FACTS["summary"] = summary
    if args.command:
        run_tests(python, args.command, sandbox, neutral)
        FACTS["summary"] = f"{summary}; tests passed"


def run_tests(python: Path, command: list[str], sandbox: Untrusted, cwd: Path) -> None:
    """The registry's test command, in the test venv, from a directory of its own."""
    bindir = python.parent
    argv = list(command)
    if argv[0] == "python":
        argv[0] = str(python)
    elif (bindir / argv[0]).exists():
        argv[0] = str(bindir / argv[0])
    show(argv)
    try:
        rc = subprocess.call(sandbox.argv(argv, cwd), cwd=cwd, env=sandbox.env, stdin=DEVNULL)
    except OSError as e:
        fail(f"cannot run tests: {command[0]}: {e.strerror or e}")
    if rc:
        fail(f"tests failed (exit {rc})")
    print("tests passed")


# --- command line -------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad arguments end like any failure: with one `error: ...` line."""
        self.print_usage(sys.stdout)
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="farmtool", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="subcommand", required=True)

    fetch = sub.add_parser("fetch", help=cmd_fetch.__doc__)
    fetch.add_argument("--url", required=True)
    fetch.add_argument("--sha256", required=True)
    fetch.add_argument("--filename", required=True)
    fetch.add_argument("--dest", required=True)
    fetch.set_defaults(func=cmd_fetch)

    def container(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--container-engine", help="docker or podman: run inside --image")
        cmd.add_argument("--image", help="a manylinux image with /opt/python/cp3XY-cp3XY")
        cmd.add_argument("--container-arch", help="the image's architecture, if not this one's")

    def isolation(cmd: argparse.ArgumentParser) -> None:
        # The master always passes the worker's declared kind; run by hand, it is yours.
        choices = ["auto", *ISOLATIONS]
        cmd.add_argument("--isolation", choices=choices, default="none-i-accept-the-risk")

    build = sub.add_parser("build", help=cmd_build.__doc__)
    build.add_argument("--sdist-dir", required=True)
    build.add_argument("--out", required=True)
    build.add_argument("--requires", action="append", default=[], help="extra build requirement")
    build.add_argument(
        "--frontend", default="build", help="the PEP 517 frontend to install (the lock's pin)"
    )
    build.add_argument(
        "--system", action="append", default=[], help="MANAGER:NAME, a system package it needs"
    )
    build.add_argument(
        "--install-system", action="store_true", help="install them (inside a container only)"
    )
    build.add_argument(
        "--pass-env", action="append", default=[], help="variable to pass into the container"
    )
    build.add_argument("--index-url", help="the farm's simple index (preferred)")
    build.add_argument("--extra-index-url", help="PyPI's simple index")
    container(build)
    isolation(build)
    build.set_defaults(func=cmd_build)

    tools = ["auditwheel", "delocate", "delvewheel", "none"]
    repair = sub.add_parser("repair", help=cmd_repair.__doc__)
    repair.add_argument("--tool", required=True, choices=tools)
    repair.add_argument("--policy", required=True)
    repair.add_argument("--in", dest="in_dir", required=True)
    repair.add_argument("--out", required=True)
    container(repair)
    repair.set_defaults(func=cmd_repair)

    check = sub.add_parser("check", help=cmd_check.__doc__)
    check.add_argument("--wheel-dir", required=True)
    check.add_argument("--policy", required=True)
    check.add_argument("--tool", choices=tools, default="none")
    container(check)
    check.set_defaults(func=cmd_check)

    usage = "%(prog)s [options] [-- COMMAND ARGS...]"
    test = sub.add_parser("test", help=cmd_test.__doc__, usage=usage)
    test.add_argument("--wheel-dir", required=True)
    test.add_argument("--index-url", required=True, help="the farm's simple index (preferred)")
    test.add_argument("--extra-index-url", required=True, help="PyPI's simple index")
    test.add_argument("--requires", action="append", default=[], help="test requirement")
    test.add_argument(
        "--skip-import", action="append", default=[], help="module (or package) not to import"
    )
    test.add_argument("--import-timeout", type=float, default=600)
    container(test)
    isolation(test)
    test.set_defaults(func=cmd_test, command=[])

    sub.add_parser("toolchain", help=cmd_toolchain.__doc__).set_defaults(func=cmd_toolchain)
    return p


def last_words() -> None:
    """Before the final `error:` line, in a build's container (where this process is
    PID 1: no init runs there), kill every other process of it: nothing the package's
    code left running may write after that line (in_container takes it as the reason)."""
    if os.getpid() == 1 and os.environ.get("WHEELFARM_CONTAINER_IMAGE"):
        try:
            os.kill(-1, signal.SIGKILL)  # from PID 1: all others of its namespace
        except ProcessLookupError:  # nothing was left running
            pass


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:  # `test ... -- COMMAND ARGS`: everything after -- is the command
        at = argv.index("--")
        argv, command = argv[:at], argv[at + 1 :]
    args = parser().parse_args(argv)
    if command:
        if args.subcommand != "test":
            print("error: only `test` takes a command after --", file=sys.stderr)
            return 2
        args.command = command
    facts = facts_path(args.subcommand)
    facts.parent.mkdir(exist_ok=True)  # before any sandbox starts: it hides the folder
    if facts.exists():
        facts.unlink()  # a previous build's, never to be taken for this one's
    try:
        args.func(args)
    except Failure as e:
        last_words()
        sys.stdout.flush()
        print(f"error: {e}", file=sys.stderr, flush=True)
        FACTS["reason"] = str(e)
        write_facts(args.subcommand)
        return 1
    except Exception as e:  # a bug here must still end with one clear line
        last_words()
        traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
        print(f"error: farmtool crashed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        FACTS["reason"] = f"farmtool crashed: {type(e).__name__}: {e}"
        write_facts(args.subcommand)
        return 1
    write_facts(args.subcommand)
    return 0


if __name__ == "__main__":
    sys.exit(main())
