"""The bubblewrap sandbox: an argument list built from tables (data in, argv out).

What it sees: the system read-only (`SYSTEM_DIRS`, but not `MASKED`), the folders
the phase may read, the folders it may write, its own /tmp (a tmpfs of bounded
size) and nothing else: not the worker's basedir, other builds, /root or /home.
It gets its own PID namespace, no capabilities, a new session and, unless the phase
has user-mode networking (network.py), no network at all.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..environment import SANDBOX_HOME, SANDBOX_TMP
from .seccomp import INSTALL

# Read-only in every sandbox: the system as found (merged-/usr systems have /bin and
# /lib* as symlinks, recreated as such). /etc holds the loader's and the TLS config.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# ... but not what in /etc only holds the host's secrets (the worker may run as root,
# and root reads these).
MASKED = (
    "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/ssh",
    "/etc/ssl/private", "/etc/sudoers", "/etc/sudoers.d", "/etc/machine-id",
    "/etc/wheelfarm",
)  # fmt: skip
TMP_SIZE = 1 << 30  # the sandbox's /tmp when no disk limit says otherwise


def system_path(path: Path | str) -> bool:
    """Inside a folder every sandbox sees anyway (Debian's rustc is in /usr)."""
    p = str(path)
    return any(p == d or p.startswith(d + "/") for d in SYSTEM_DIRS)


def bwrap_argv(
    argv: Sequence[str | os.PathLike],
    *,
    cwd: str | os.PathLike,
    readable: Sequence[str | os.PathLike] = (),
    writable: Sequence[str | os.PathLike] = (),
    hidden: Sequence[str | os.PathLike] = (),
    reaper: Sequence[str | os.PathLike] = (),
    tmp_size: int = TMP_SIZE,
    resolv_conf: str | None = None,
    info_fd: int | None = None,
    block_fd: int | None = None,
    drop_to: tuple[int, int] | None = None,
    syscall_filter: bytes = b"",
) -> list[str]:
    """The bubblewrap argv that runs `argv` sandboxed.

    Later binds mount over earlier ones, so a writable folder may sit in a readable
    one; `hidden` folders are an empty read-only tmpfs. `reaper` (an argv prefix)
    runs as the namespace's PID 1 in bwrap's stead: bwrap returns as soon as the
    command exits, while the kernel is still killing what it left behind; the reaper
    kills and reaps everything first. `info_fd` and `block_fd` let farmtool put the
    sandbox in its cgroup and give it a network before it runs anything; with
    `resolv_conf`, that network's resolver replaces the host's.

    `drop_to` (uid, gid), for a worker running as root: bubblewrap mounts as root, without
    a user namespace (which would map the sandbox to real root: root-owned files would be
    its to write, whatever capabilities it lacks), and the reaper, given only the
    capabilities to change its user, becomes that user before it starts anything.
    The reaper then installs `syscall_filter` (seccomp.program()) on itself and so on
    everything the sandbox runs.
    """
    out = ["bwrap", "--die-with-parent", "--new-session"]
    if drop_to is None:
        out += ["--unshare-all", "--cap-drop", "ALL"]
    else:
        out += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
        out += ["--unshare-cgroup-try", "--cap-drop", "ALL"]
        out += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    if info_fd is not None:
        out += ["--info-fd", str(info_fd)]
    if block_fd is not None:
        out += ["--block-fd", str(block_fd)]
    # its own /proc, but the sysctls of the host's, read-only whoever it runs as
    out += ["--dev", "/dev", "--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys"]
    out += ["--perms", "01777", "--size", str(tmp_size), "--tmpfs", SANDBOX_TMP]
    out += ["--perms", "01777", "--dir", SANDBOX_HOME]
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
    if resolv_conf is not None:
        out += ["--ro-bind", resolv_conf, "/etc/resolv.conf"]
    # The folders on the way to each mount point (e.g. the worker's basedir, which bwrap
    # makes empty) are read-only too, even on the sandbox's own /tmp: nobody writes there.
    made = {"/", SANDBOX_TMP, SANDBOX_HOME}
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
        user = [str(drop_to[0]), str(drop_to[1])] if drop_to else ["", ""]
        out += ["--as-pid-1", "--", *(os.fspath(a) for a in reaper), *user, syscall_filter.hex()]
    else:
        if drop_to or syscall_filter:
            raise ValueError("dropping to another user or filtering calls needs the reaper")
        out.append("--")
    return [*out, *(os.fspath(a) for a in argv)]


# PID 1 of a sandbox (see bwrap_argv): becomes the build's user if told (uid, gid: its
# first two arguments, or empty), installs the system call filter (the third, in hex, or
# empty), runs the command, then kills and reaps every process of the namespace
# (orphans are its children) before it exits with its status.
REAPER = (
    INSTALL
    + r"""
import os, signal, sys
uid, gid, prog, argv = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
if uid:
    os.setgroups([])
    os.setgid(int(gid))
    os.setuid(int(uid))  # from root to another: every capability goes
if prog:
    try:
        install_filter(bytes.fromhex(prog))
    except Exception as e:  # no sandbox without its filter
        print(f"cannot filter the sandbox's system calls: {e}", file=sys.stderr)
        sys.exit(126)
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        print(f"cannot run {argv[0]}: {e.strerror}", file=sys.stderr)
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
)
