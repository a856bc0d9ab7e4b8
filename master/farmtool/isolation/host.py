"""The worker's own system as a place: trusted tools run directly; untrusted phases
run in bubblewrap (or, on a worker that opted out, directly, as the worker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..environment import tool_env
from ..files import UNCOUNTABLE, fresh_dir, tree_size
from ..processes import Result, run, show
from ..tools import require
from . import Isolation, Outcome, Phase, hidden_dirs
from .bubblewrap import REAPER, TMP_SIZE, bwrap_argv
from .limits import Limits, apply_rlimits, limit_reason, make_cgroup, preexec, rlimits
from .network import UserNet
from .seccomp import program


def base_python() -> str:
    """The interpreter itself, not a venv's link to it (a worker may start this program
    with its own venv's Python, which a sandbox has no business seeing)."""
    return os.path.realpath(sys.executable)


def python_prefixes() -> list[str]:
    """Where the base Python lives: the build venvs point at it, a sandbox must see it."""
    found: list[str] = []
    for p in (sys.base_prefix, sys.base_exec_prefix):
        for q in (p, os.path.realpath(p)):
            if q not in found:
                found.append(q)
    prefix = os.path.dirname(os.path.dirname(base_python()))
    if prefix not in found:
        found.append(prefix)
    return found


BUILD_UID_ENV = "WHEELFARM_BUILD_UID"  # whom a root worker's builds run as
BUILD_UID = 65534  # nobody: the worker's caches are reached only through /root (0700)


def build_user() -> tuple[int, int]:
    """The user untrusted code runs as: the worker's own, or, for a root worker, an
    unprivileged one (a sandbox of root is root: root-owned files such as /proc's
    sysctls are its to write whatever capabilities it lacks)."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    chosen = int(os.environ.get(BUILD_UID_ENV, BUILD_UID))
    return chosen, chosen


def own(folders: list[Path], uid: int, gid: int) -> None:
    """Give the build's user what it is to write (the trusted side made it, as root)."""
    if os.geteuid() != 0:
        return
    for folder in folders:
        os.lchown(folder, uid, gid)
        for top, dirs, files in os.walk(folder):
            for name in dirs + files:
                os.lchown(os.path.join(top, name), uid, gid)


class HostPlace:
    def __init__(self, isolation: Isolation, root: Path | None = None) -> None:
        self.kind = isolation
        self.isolation = isolation.name
        self.sandboxed = isolation.sandboxed
        self.python = base_python()
        self.root = (root or Path.cwd()).absolute()
        self._uv: str | None = None
        self.uid, self.gid = build_user()
        if self.sandboxed and self.uid != os.geteuid():
            # the build's user reads the build directory (bound read-only), which a
            # umask of 077 would keep from it
            os.chmod(self.root, os.stat(self.root).st_mode | 0o055)

    @property
    def uv(self) -> str:
        if self._uv is None:
            self._uv = require("uv")
        return self._uv

    def prepare(self, folders: list[Path]) -> None:
        for folder in folders:
            fresh_dir(folder)
        self.own(folders)

    def own(self, folders: list[Path]) -> None:
        if self.sandboxed:
            own(folders, self.uid, self.gid)

    def with_system_packages(self, wanted: dict[str, list[str]]) -> None:
        from ..system import require_system_packages

        require_system_packages(wanted)  # a volunteer's system is theirs: only checked

    def toolchain(self) -> dict:
        from ..toolchain import toolchain

        return toolchain()

    def trusted(
        self,
        argv: list[str],
        *,
        writable: tuple[Path, ...] = (),
        network: bool = True,
        quiet: bool = False,
        cache: bool = False,
    ) -> Result:
        env = tool_env()
        if cache:
            env["UV_CACHE_DIR"] = str(wheel_cache())
        # from the build directory, whose top level only the trusted side writes (the
        # package's files are in folders of it); every path given is absolute anyway
        return run(argv, env=env, cwd=self.root, quiet=quiet)

    def trusted_all(
        self, argvs: list[list[str]], *, writable: tuple[Path, ...] = (), cache: bool = False
    ) -> Result:
        for argv in argvs:
            done = self.trusted(argv, writable=writable, cache=cache)
            if done.rc:
                break
        return done

    def untrusted(self, phase: Phase, limits: Limits) -> Outcome:
        deadline = time.monotonic() + limits.time if limits.time else None
        watch = disk_watch(phase.writable, limits.disk)
        if not self.sandboxed:
            show(phase.shown or phase.argv)
            result = run(
                phase.argv, env=phase.env, cwd=phase.cwd, echo_cmd=False, deadline=deadline,
                watch=watch, kill=_kill_group, start_new_session=True,
                preexec_fn=preexec(rlimits(limits, None)),
            )  # fmt: skip
            return Outcome(result.rc, result.lines, _reason(limits, result, None))
        for hidden in hidden_dirs(self.root):
            hidden.mkdir(exist_ok=True)  # a mount point for the tmpfs that hides it
        net = UserNet(phase.network)
        cgroup = make_cgroup(limits)
        values = rlimits(limits, cgroup)
        argv = bwrap_argv(
            phase.argv,
            cwd=phase.cwd,
            readable=[*python_prefixes(), *phase.readable, self.root],
            writable=phase.writable,
            hidden=hidden_dirs(self.root),
            reaper=[base_python(), "-I", "-S", "-c", REAPER],
            tmp_size=min(limits.disk or TMP_SIZE, TMP_SIZE),
            resolv_conf=net.resolv_conf,
            info_fd=net.child_fds[0],
            block_fd=net.child_fds[1],
            drop_to=(self.uid, self.gid) if self.uid != os.geteuid() else None,
            syscall_filter=program(),
        )

        def started(proc: subprocess.Popen) -> None:
            # before the sandbox runs anything: its cgroup, its rlimits, its network
            child = net.child_pid()
            for pid in (proc.pid, child):
                if cgroup is not None:
                    cgroup.add(pid)
                if values:
                    apply_rlimits(pid, values)
            net.attach(child)
            net.release()

        show(phase.shown or phase.argv)
        try:
            result = run(
                argv, env=phase.env, cwd=phase.cwd, echo_cmd=False, deadline=deadline,
                watch=watch, started=started, pass_fds=net.child_fds,
            )  # fmt: skip
            return Outcome(result.rc, result.lines, _reason(limits, result, cgroup))
        finally:
            if cgroup is not None:
                cgroup.close()
            net.close()

    def close(self) -> None:
        pass


def _reason(limits: Limits, result: Result, cgroup) -> str | None:
    if result.rc == 0 and result.stopped is None:
        return None
    return limit_reason(limits, result.stopped, result.rc, cgroup, result.lines)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (OSError, AttributeError):
        proc.kill()


MAX_FILES = 1_000_000  # entries a phase may leave in its folders (inodes)


def disk_watch(folders: tuple[Path, ...], limit: int | None):
    """A check of what the phase's writable folders hold: every quarter of a second, or
    less often where counting a large tree takes long (at most a tenth of the time)."""
    if limit is None or not folders:
        return None
    base, files = tree_size(list(folders))  # what was there before the phase ran
    if base == UNCOUNTABLE:
        base = 0  # nested too deep to count already: the first check trips
    last = [0.0, 0.0]  # when it last counted, what counting cost

    def check() -> str | None:
        now = time.monotonic()
        if now - last[0] < max(0.25, 10 * last[1]):
            return None
        used, entries = tree_size(list(folders), base + limit)
        last[:] = [time.monotonic(), time.monotonic() - now]
        if used == UNCOUNTABLE or used > base + limit:
            return "disk"
        return "files" if entries > files + MAX_FILES else None

    return check


CACHE_ENV = "WHEELFARM_CACHE"  # the worker's wheel cache (default ~/.cache/wheelfarm)


def wheel_cache() -> Path:
    """The worker's own cache of downloaded wheels: only trusted installs write it, and
    no sandbox sees it (installs copy from it)."""
    base = os.environ.get(CACHE_ENV)
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "wheelfarm")
    return Path(base) / "uv"
