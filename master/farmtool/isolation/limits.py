"""Limits on untrusted code: memory, processes, CPU time, wall time, disk, output.

Each limit that trips fails the step with a one-line reason (`limit_reason`). What
enforces them depends on the worker (docs/volunteers/isolation.md):

- memory and processes: a cgroup of the phase's own where the worker may make one
  (cgroup v2 where the worker's cgroup is delegated to it, cgroup v1 as root); else
  RLIMIT_DATA, and RLIMIT_NPROC over what the user already runs (not for root, whom
  the kernel exempts from it);
- CPU time: RLIMIT_CPU, per process;
- wall time: farmtool ends the phase (the whole sandbox, and its cgroup);
- disk: farmtool sums what the phase's writable folders hold (and how many files),
  four times a second where that is cheap, and ends the phase past the limit;
  RLIMIT_FSIZE caps any one file at a quarter of it; a sandbox's /tmp is a tmpfs of
  bounded size;
- output: farmtool's reader (processes.py), and the master's bound on a step's log.

Containers get the engine's own flags for memory, processes and CPU (container.py).
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ..facts import fail

UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class Limits:
    """What one step's untrusted phases may use (None: no limit)."""

    memory: int | None = None  # bytes, the whole phase
    processes: int | None = None  # at once, the whole phase
    cpu: int | None = None  # CPU seconds, per process
    time: float | None = None  # wall seconds, per phase
    disk: int | None = None  # bytes a phase may leave in its writable folders and /tmp
    output: int | None = None  # bytes of log per step
    wheel: int | None = None  # bytes of the wheel file
    unpacked: int | None = None  # bytes of a wheel's or an sdist's members, unpacked
    members: int | None = None  # files in a wheel or an sdist

    @classmethod
    def parse(cls, items: list[str]) -> Limits:
        """`--limit memory=2G --limit time=3600 ...` (K, M, G, T suffixes for bytes)."""
        known = {f.name for f in fields(cls)}
        values: dict[str, float | int] = {}
        for item in items:
            key, _, raw = item.partition("=")
            match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", raw.strip().upper())
            if key not in known or not match:
                fail(f"not a limit: {item!r} (KEY=NUMBER[K|M|G], KEY one of {', '.join(known)})")
            number = float(match[1]) * UNITS[match[2]]
            values[key] = number if key == "time" else int(number)
        return cls(**values)  # type: ignore[arg-type]

    def args(self) -> list[str]:
        """These limits as command-line options again."""
        found = [(f.name, getattr(self, f.name)) for f in fields(self)]
        text = {k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in found if v is not None}
        return [a for k, v in text.items() for a in ("--limit", f"{k}={v}")]

    def with_(self, **changes) -> Limits:
        return replace(self, **changes)


def size(n: int | float | None) -> str:
    """1073741824 -> '1 GiB'."""
    if n is None:
        return "none"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} bytes"


# --- cgroups ----------------------------------------------------------------------


@dataclass
class Cgroup:
    """A cgroup made for one phase: processes are moved in before they run anything."""

    kind: str  # "cgroup2" or "cgroup1"
    dirs: dict[str, Path]  # controller -> folder (cgroup2: one folder for all)
    limits: Limits
    relative: str = ""  # its path under each hierarchy's root, when the same everywhere
    moved: list[int] = field(default_factory=list)
    peak: int = 0  # the most processes seen in it at once (`sample`)

    def add(self, pid: int) -> None:
        for folder in dict.fromkeys(self.dirs.values()):
            (folder / "cgroup.procs").write_text(str(pid))
        self.moved.append(pid)

    def pids(self) -> set[int]:
        found: set[int] = set()
        for folder in dict.fromkeys(self.dirs.values()):
            try:
                found |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
            except (OSError, ValueError):
                pass
        return found

    def sample(self) -> None:
        """Note the most processes it held (a container's failed forks are counted in the
        container's own cgroup, which its engine removes; this one stays): pids.peak
        where the kernel keeps it, else what it holds now."""
        pids = self.dirs.get("pids")
        for name in ("pids.peak", "pids.current"):
            try:
                self.peak = max(self.peak, int((pids / name).read_text()))  # type: ignore[operator]
                return
            except (OSError, ValueError, TypeError):
                continue

    def peak_memory(self) -> int:
        """The most memory the cgroup (and those below it) used at once, in bytes."""
        memory = self.dirs.get("memory")
        for name in ("memory.peak", "memory.max_usage_in_bytes"):
            try:
                return int((memory / name).read_text())  # type: ignore[operator]
            except (OSError, ValueError, TypeError):
                continue
        return 0

    def tripped(self) -> str | None:
        """Which limit the kernel enforced, if any (its counters say so)."""
        self.sample()
        memory, pids = self.dirs.get("memory"), self.dirs.get("pids")
        if memory is not None:
            if self.kind == "cgroup2":
                events = _counters(memory / "memory.events")
                if events.get("oom_kill") or events.get("oom"):
                    return f"memory limit ({size(self.limits.memory)}) exceeded"
            else:
                # not memory.failcnt: the page cache of a build's own files reaches it
                if _counters(memory / "memory.oom_control").get("oom_kill"):
                    return f"memory limit ({size(self.limits.memory)}) exceeded"
        reached = self.limits.processes and self.peak >= self.limits.processes
        if pids is not None and (_counters(pids / "pids.events").get("max") or reached):
            return f"process limit ({self.limits.processes}) reached"
        return None

    def close(self) -> None:
        """Kill what is left in it and remove it."""
        for _ in range(50):
            left = self.pids()
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        for folder in dict.fromkeys(self.dirs.values()):
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _counters(path: Path) -> dict[str, int]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            found[key] = int(value)
    return found


CGROUP_ROOT = Path("/sys/fs/cgroup")
_made = [0]


def own_cgroups(proc_cgroup: str) -> dict[str, str]:
    """controller (or "" for cgroup v2) -> this process's cgroup path."""
    found = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            found[controller] = path
    return found


def make_cgroup(limits: Limits, root: Path = CGROUP_ROOT, aligned: bool = False) -> Cgroup | None:
    """A new cgroup for one phase with its memory and process limits, or None where
    this worker cannot make one (then rlimits stand in: `rlimits`). `aligned`: at the
    same path in every hierarchy, so that a container engine can be given it as the
    parent of its container's cgroup."""
    if limits.memory is None and limits.processes is None:
        return None
    try:
        mine = own_cgroups(Path("/proc/self/cgroup").read_text())
    except OSError:
        return None
    _made[0] += 1
    name = f"wheelfarm-{os.getpid()}-{_made[0]}"
    for make in (_cgroup2, _cgroup1):
        try:
            group = make(limits, root, mine, name, aligned)
        except OSError:
            group = None
        if group is not None:
            return group
    return None


def _cgroup2(
    limits: Limits, root: Path, mine: dict[str, str], name: str, aligned: bool
) -> Cgroup | None:
    """Beside our own cgroup, in the parent the worker was delegated (a systemd unit
    with Delegate=yes that runs the worker in a leaf), when it has both controllers."""
    if "" not in mine or not (root / "cgroup.controllers").exists():
        return None
    parent = root / mine[""].lstrip("/") / ".."
    parent = parent.resolve()
    enabled = (parent / "cgroup.subtree_control").read_text().split()
    if not {"memory", "pids"} <= set(enabled) or not os.access(parent, os.W_OK):
        return None
    folder = parent / name
    folder.mkdir()
    if limits.memory is not None:
        (folder / "memory.max").write_text(str(limits.memory))
        if (folder / "memory.swap.max").exists():
            (folder / "memory.swap.max").write_text("0")
    if limits.processes is not None:
        (folder / "pids.max").write_text(str(limits.processes))
    relative = "/" + str(folder.relative_to(root))
    return Cgroup("cgroup2", {"memory": folder, "pids": folder}, limits, relative)


def _cgroup1(
    limits: Limits, root: Path, mine: dict[str, str], name: str, aligned: bool
) -> Cgroup | None:
    """Under our own memory and pids cgroups of a cgroup v1 hierarchy (as root);
    `aligned`: both under our memory cgroup's path."""
    if os.geteuid() != 0 or "memory" not in mine or "pids" not in mine:
        return None
    dirs = {}
    relative = f"{mine['memory'].rstrip('/')}/{name}"
    for controller in ("memory", "pids"):
        base = root / controller
        if not (base / "cgroup.procs").exists():
            return None
        own = mine["memory"] if aligned else mine[controller]
        folder = base / own.lstrip("/") / name
        folder.mkdir(parents=aligned)
        dirs[controller] = folder
    if limits.memory is not None:
        (dirs["memory"] / "memory.limit_in_bytes").write_text(str(limits.memory))
        swap = dirs["memory"] / "memory.memsw.limit_in_bytes"
        if swap.exists():
            swap.write_text(str(limits.memory))
    if limits.processes is not None:
        (dirs["pids"] / "pids.max").write_text(str(limits.processes))
    return Cgroup("cgroup1", dirs, limits, relative if aligned else "")


# --- rlimits ----------------------------------------------------------------------


def rlimits(limits: Limits, cgroup: Cgroup | None) -> dict[int, int]:
    """resource.RLIMIT_* -> value for a phase's processes (where the OS has them)."""
    try:
        import resource
    except ImportError:  # Windows
        return {}
    found: dict[int, int] = {}
    if limits.cpu is not None:
        found[resource.RLIMIT_CPU] = limits.cpu
    if limits.disk is not None:
        found[resource.RLIMIT_FSIZE] = file_size(limits)
    if cgroup is None and limits.memory is not None:
        found[getattr(resource, "RLIMIT_DATA", resource.RLIMIT_AS)] = limits.memory
    nproc = getattr(resource, "RLIMIT_NPROC", None)
    if cgroup is None and limits.processes is not None and nproc is not None and os.geteuid():
        # it counts every process of the user: allow this many more than run now
        found[nproc] = _user_processes() + limits.processes
    return found


def _user_processes() -> int:
    uid = os.getuid()
    count = 0
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                count += 1
        except OSError:
            pass
    return count


def apply_rlimits(pid: int, values: dict[int, int]) -> None:
    """Set them on a running (still blocked) process, which its children inherit."""
    import resource

    for which, value in values.items():
        _, hard = resource.prlimit(pid, which)
        resource.prlimit(pid, which, _pair(which, value, hard))


def preexec(values: dict[int, int]):
    """The same, in the child before it runs anything (where nothing blocks it)."""
    if not values:
        return None

    def set_limits() -> None:
        import resource

        for which, value in values.items():
            _, hard = resource.getrlimit(which)
            resource.setrlimit(which, _pair(which, value, hard))

    return set_limits


def _pair(which: int, value: int, hard: int) -> tuple[int, int]:
    """(soft, hard) within the hard limit the worker already has. CPU time gets 5 s
    of grace above the soft limit: SIGXCPU comes first, so the reason can say it."""
    import resource

    grace = 5 if which == resource.RLIMIT_CPU else 0
    top = value + grace if hard == resource.RLIM_INFINITY else min(value + grace, hard)
    return min(value, top), top


# Sets rlimits (RLIMIT_NAME=VALUE,...), then runs the command: for a container, whose
# engine's own --ulimit options bring defaults some hosts refuse (podman 4.3 sets
# NOFILE and NPROC as soon as one is given).
EXEC_LIMITED = r"""
import os, resource, sys
for item in filter(None, sys.argv[1].split(",")):
    name, value = item.split("=")
    which, value = getattr(resource, "RLIMIT_" + name), int(value)
    hard = resource.getrlimit(which)[1]
    top = value + (5 if name == "CPU" else 0)
    top = top if hard == resource.RLIM_INFINITY else min(top, hard)
    resource.setrlimit(which, (min(value, top), top))
os.execvp(sys.argv[2], sys.argv[2:])
"""


def file_size(limits: Limits) -> int:
    """The largest file a phase may write (RLIMIT_FSIZE): a quarter of the disk limit, so
    that files made at once (preallocated, say) exceed it by little before the next count
    of the folders notices."""
    return max((limits.disk or 0) // 4, 64 << 20)


def rlimit_spec(limits: Limits) -> str:
    """The CPU and file-size limits for EXEC_LIMITED."""
    found = {"CPU": limits.cpu, "FSIZE": file_size(limits) if limits.disk else None}
    return ",".join(f"{k}={v}" for k, v in found.items() if v is not None)


KILLED = re.compile(r"killed by signal 9\b|\bSIGKILL\b|\bKilled\b")


def killed_near_memory_limit(limits: Limits, rc: int, lines: list[str], peak: int) -> bool:
    """A phase killed (SIGKILL: the OOM killer's signal) after its memory use reached
    the limit: where no counter of the kernel's says more (a container's OOM kill is
    counted in its own cgroup, which its engine removes)."""
    if not limits.memory or peak < 0.97 * limits.memory:
        return False
    return rc in (137, -9) or bool(KILLED.search("\n".join(lines[-50:])))


def limit_reason(
    limits: Limits, stopped: str | None, rc: int, cgroup: Cgroup | None, lines: list[str]
) -> str | None:
    """Why a phase that ended badly ended, when a limit did it."""
    if stopped == "time":
        return f"time limit ({limits.time:g} s) exceeded"
    if stopped == "disk":
        return f"disk limit ({size(limits.disk)}) exceeded"
    if stopped == "files":
        return "disk limit exceeded: over a million files"
    if cgroup is not None and (tripped := cgroup.tripped()):
        return tripped
    signals = {getattr(signal, "SIGXCPU", 24): "cpu", getattr(signal, "SIGXFSZ", 25): "file"}
    text = "\n".join(lines[-50:])
    said = re.search(r"killed by signal (\d+)", text)  # the frontend says its backend's
    kind = signals.get(-rc) or signals.get(rc - 128) or signals.get(int(said[1]) if said else 0)
    if kind == "cpu" or (limits.cpu and "SIGXCPU" in text):
        return f"CPU time limit ({limits.cpu} s per process) exceeded"
    if kind == "file" or re.search(r"File too large|EFBIG", text):
        return f"disk limit ({size(limits.disk)}) exceeded: a file over {size(file_size(limits))}"
    if cgroup is None:  # rlimits: the kernel counted nothing we can read, the code says it
        if limits.memory and re.search(r"MemoryError|Cannot allocate memory|ENOMEM", text):
            return f"memory limit ({size(limits.memory)}) exceeded"
        if limits.processes and re.search(
            r"Resource temporarily unavailable|BlockingIOError|can't start new thread", text
        ):
            return f"process limit ({limits.processes}) reached"
    return None
