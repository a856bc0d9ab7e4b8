"""A fresh container of the platform's build image per phase, as a place.

Every run is its own container: the build directory mounted read-only at its own
path (so paths are the same inside and out) but for the folders the run writes, a
read-only root filesystem with a bounded /tmp, all capabilities dropped,
no-new-privileges, and a non-root user (`container_user`). Untrusted phases have
no network (`--network none`; user-mode `slirp4netns` without the host's loopback
where a phase needs one), the step's memory, process and CPU limits, and never see
the facts folder. Trusted runs (uv installing wheels, auditwheel, the toolchain
query) have the host's network, since the farm's index may be on its loopback.

System packages a build needs are installed once into a derived image (`derived`),
as that container's root, by the image's own package manager and nothing else; every
phase of the build, repair and test then runs in it.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from functools import cache
from pathlib import Path

from ..environment import ENV_NAME, PROXY_ENV, tool_env
from ..facts import Failure, fail
from ..files import fresh_dir, read_bounded
from ..processes import Result, capture, check_run, error_line, run, say, show
from ..tools import require, zipapp_path
from . import Outcome, Phase, hidden_dirs
from .bubblewrap import TMP_SIZE
from .host import build_user, disk_watch, own, wheel_cache
from .limits import (
    EXEC_LIMITED,
    Cgroup,
    Limits,
    killed_near_memory_limit,
    limit_reason,
    make_cgroup,
    rlimit_spec,
    size,
)  # fmt: skip
from .seccomp import ENGINE_PROFILES, container_profile

# Runs argument lists one after the other in a container, until one fails (no shell).
SEQUENCE = r"""
import json, subprocess, sys
for argv in json.loads(sys.argv[1]):
    code = subprocess.call(argv)
    if code:
        sys.exit(code)
"""
CACHE_MOUNT = "/wheelfarm-cache"
_count = [0]


@cache
def syscall_profile() -> str:
    """A file holding the engine's default seccomp profile with the farm's rules added
    (seccomp.container_profile), for the untrusted phases; written once per run."""
    for path in ENGINE_PROFILES:
        try:
            default = json.loads(read_bounded(Path(path), 1 << 20))
        except (OSError, Failure, ValueError):
            continue
        handle, name = tempfile.mkstemp(prefix="wheelfarm-seccomp-", suffix=".json")
        with os.fdopen(handle, "w") as f:
            json.dump(container_profile(default), f)
        atexit.register(os.unlink, name)
        return name
    fail(
        f"no default seccomp profile of the engine's to add the farm's rules to "
        f"(looked for {', '.join(ENGINE_PROFILES)}: Debian's containers-common has it)"
    )


def python_in_image(version: str) -> str:
    """manylinux images keep each CPython in /opt/python/cp3XY-cp3XY[t]/."""
    match = re.fullmatch(r"3\.(\d+)(t?)", version)
    if not match:
        fail(f"not a Python version: {version!r}")
    minor, free = match.groups()
    return f"/opt/python/cp3{minor}-cp3{minor}{free}/bin/python"


def container_user(engine: str) -> tuple[int, int, list[str]]:
    """(uid, gid, options): the worker's own user where it is not root (podman
    rootless maps it to itself), else a dedicated one."""
    uid, gid = build_user()
    if os.geteuid() == 0:
        return uid, gid, ["--user", f"{uid}:{gid}"]
    keep = ["--userns=keep-id"] if Path(engine).name == "podman" else []
    return uid, gid, [*keep, "--user", f"{uid}:{gid}"]


class ContainerPlace:
    def __init__(
        self, engine: str, image: str, python_version: str, arch: str | None = None
    ) -> None:
        self.engine = require(engine)
        self.base_image = self.image = image
        self.arch = arch
        self.python = python_in_image(python_version)
        self.root = Path.cwd().absolute()
        self.isolation = f"container ({Path(self.engine).name})"
        self.sandboxed = True
        self.uid, self.gid, self.user_args = container_user(self.engine)
        self.removals: list[subprocess.Popen] = []
        self._manager: str | None = None
        if self.uid != os.geteuid():
            # the container's user reads the build directory (mounted read-only), which
            # a umask of 077 would keep from it
            mode = os.stat(self.root).st_mode
            os.chmod(self.root, mode | 0o055)

    @property
    def uv(self) -> str:
        return "uv"  # the image's, on its PATH

    # -- setting up ---------------------------------------------------------------

    def prepare(self, folders: list[Path]) -> None:
        for folder in folders:
            fresh_dir(folder)
        self.own(folders)

    def own(self, folders: list[Path]) -> None:
        own(folders, self.uid, self.gid)

    def with_system_packages(self, wanted: dict[str, list[str]]) -> None:
        """Build in the image with these system packages installed (see the module)."""
        if wanted:
            self.image = derived(self, wanted)

    def run_self(
        self, subcommand: str, args: list[str], writable: tuple[Path, ...] = (),
        quiet: bool = False,
    ) -> tuple[Result, dict]:  # fmt: skip
        """This program's `subcommand` in a container of the image (trusted: the farm's
        own code and tools, offline), and the facts it wrote."""
        from ..facts import INNER

        inner = self.root / INNER
        self.prepare([inner])
        self.own(list(writable))
        argv = [self.python, "-I", str(zipapp_path()), "--facts-dir", str(inner), subcommand]
        done = self.trusted([*argv, *args], writable=(*writable, inner), network=False,
                            quiet=quiet)  # fmt: skip
        try:
            facts = json.loads(read_bounded(inner / f"{subcommand}.json", 1 << 20))
        except (ValueError, Failure):
            facts = {}
        return done, facts if isinstance(facts, dict) else {}

    def toolchain(self) -> dict:
        """The image's toolchain, from a trusted run of this program in it."""
        done, _ = self.run_self("toolchain", [], quiet=True)
        try:
            info = json.loads(done.lines[-1]) if done.rc == 0 and done.lines else None
        except ValueError:
            info = None
        if not isinstance(info, dict):
            fail(f"cannot read the image's toolchain: {error_line(done.lines) or done.rc}")
        info["container_image"] = self.image
        return info

    # -- running ------------------------------------------------------------------

    def _argv(
        self,
        name: str,
        argv: list[str],
        *,
        cwd: Path,
        writable: tuple[Path, ...],
        network: str,
        env_file: str,
        untrusted: bool,
        readable: tuple[str, ...] = (),
        limits: Limits | None = None,
        cache: bool = False,
        rm: bool = True,
        cgroup: Cgroup | None = None,
        shown: bool = False,
    ) -> list[str]:
        out = [self.engine, "run", "--name", name, *(["--rm"] if rm else [])]
        out += ["--network", network, "--cap-drop", "all"]
        out += ["--security-opt", "no-new-privileges", *self.user_args]
        tmp_size = min((limits.disk if limits else None) or TMP_SIZE, TMP_SIZE)
        out += ["--read-only", "--tmpfs", f"/tmp:rw,size={tmp_size},mode=1777"]
        out += ["-v", f"{_mount_path(self.root)}:{_mount_path(self.root)}:ro"]
        for folder in writable:
            out += ["-v", f"{_mount_path(folder)}:{_mount_path(folder)}:rw"]
        for host in readable:  # the worker's Rust toolchain (see `inside`)
            out += ["-v", f"{_mount_path(Path(host))}:{inside(host)}:ro"]
        if untrusted:
            out += ["--security-opt", f"seccomp={syscall_profile()}"]
            for hidden in hidden_dirs(self.root):
                out += ["--tmpfs", f"{_mount_path(hidden)}:ro,size=4k,notmpcopyup"]
        if cache:
            cache_dir = wheel_cache().parent / "container"
            cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if os.geteuid() == 0:
                os.chown(cache_dir, self.uid, self.gid)
            out += ["-v", f"{_mount_path(cache_dir)}:{CACHE_MOUNT}:rw"]
        if cgroup is not None:  # its limit, and its counters say when it tripped
            out += ["--cgroup-parent", cgroup.relative]
        if limits is not None:
            if limits.memory:
                out += ["--memory", str(limits.memory), "--memory-swap", str(limits.memory)]
            if limits.processes and cgroup is None:
                out += ["--pids-limit", str(limits.processes)]
            if spec := rlimit_spec(limits):  # CPU and file size: set inside (limits.py)
                script = "<set rlimits>" if shown else EXEC_LIMITED
                argv = [self.python, "-I", "-S", "-c", script, spec, *argv]
        if self.arch:
            out += ["--arch", self.arch]
        out += ["--env-file", env_file, "-w", str(cwd), self.image, *argv]
        return out

    def _name(self) -> str:
        _count[0] += 1
        return f"wheelfarm-{os.getpid()}-{_count[0]}-{os.urandom(3).hex()}"

    def trusted(
        self,
        argv: list[str],
        *,
        writable: tuple[Path, ...] = (),
        network: bool = True,
        quiet: bool = False,
        cache: bool = False,
        shown: bool = True,
    ) -> Result:
        # the proxy and the operator's index settings (a mirror), as the host's uv has them
        passed = {k: v for k, v in tool_env().items() if k in PROXY_ENV or k.startswith("UV_")}
        env = {**passed, "HOME": "/tmp"}
        for name in ("UV_CACHE_DIR", "UV_LINK_MODE", "UV_PYTHON", "UV_PYTHON_INSTALL_DIR"):
            env.pop(name, None)
        if cache:
            env["UV_CACHE_DIR"] = CACHE_MOUNT
        with _env_file(env) as env_file:
            full = self._argv(
                self._name(), argv, cwd=self.root, writable=writable,
                network="host" if network else "none", env_file=env_file, untrusted=False,
                cache=cache,
            )  # fmt: skip
            return run(full, env=tool_env(), quiet=quiet, echo_cmd=shown)

    def trusted_all(
        self, argvs: list[list[str]], *, writable: tuple[Path, ...] = (), cache: bool = False
    ) -> Result:
        """One container for them all (each container costs most of a second)."""
        for argv in argvs:
            show(argv)
        script = [self.python, "-I", "-S", "-c", SEQUENCE, json.dumps(argvs)]
        return self.trusted(script, writable=writable, cache=cache, shown=False)

    def untrusted(self, phase: Phase, limits: Limits) -> Outcome:
        name = self._name()
        phase = moved(phase)
        network = "slirp4netns:allow_host_loopback=false" if phase.network else "none"
        deadline = time.monotonic() + limits.time if limits.time else None
        # processes in a cgroup of the phase's own (its pids.peak stays after the container
        # goes), memory by the engine (its OOM flag says when that limit killed)
        cgroup = None
        if self._cgroupfs() and limits.processes:
            cgroup = make_cgroup(limits.with_(memory=None), aligned=True)
        try:
            with _env_file(phase.env) as env_file:
                options = dict(
                    cwd=phase.cwd, writable=phase.writable, network=network, env_file=env_file,
                    untrusted=True, readable=phase.readable, limits=limits, rm=False,
                    cgroup=cgroup,
                )  # fmt: skip
                full = self._argv(name, phase.argv, **options)  # type: ignore[arg-type]
                shown = list(phase.shown or phase.argv)
                show(self._argv(name, shown, shown=True, **options))  # type: ignore[arg-type]
                disk = disk_watch(phase.writable, limits.disk)

                def watch() -> str | None:
                    if cgroup is not None:
                        cgroup.sample()
                    return disk() if disk else None

                result = run(
                    full, env=tool_env(), echo_cmd=False, deadline=deadline, watch=watch,
                    kill=lambda _: self._kill(name),
                )  # fmt: skip
            reason = None
            if result.rc or result.stopped:
                reason = limit_reason(limits, result.stopped, result.rc, cgroup, result.lines)
                peak = cgroup.peak_memory() if cgroup is not None else 0
                if (
                    reason is None
                    and limits.memory
                    and (
                        killed_near_memory_limit(limits, result.rc, result.lines, peak)
                        or self._oom_killed(name)
                    )
                ):
                    reason = f"memory limit ({size(limits.memory)}) exceeded"
        finally:
            self._remove(name, wait=cgroup is not None)  # its cgroup goes before ours
            if cgroup is not None:
                cgroup.close()
        return Outcome(result.rc, result.lines, reason)

    def _cgroupfs(self) -> bool:
        """Whether the engine makes containers' cgroups itself (cgroupfs, not systemd),
        under a parent we give it: then a phase's cgroup is ours (as root)."""
        if os.geteuid() != 0 or Path(self.engine).name != "podman":
            return False
        if self._manager is None:
            done = capture([self.engine, "info", "--format", "{{.Host.CgroupManager}}"],
                           env=tool_env())  # fmt: skip
            self._manager = done.stdout.decode(errors="replace").strip()
        return self._manager == "cgroupfs"

    def _kill(self, name: str) -> None:
        capture([self.engine, "kill", "--signal", "KILL", name], env=tool_env(), timeout=60)

    def _oom_killed(self, name: str) -> bool:
        done = capture(
            [self.engine, "inspect", "--format", "{{.State.OOMKilled}}", name], env=tool_env()
        )
        return done.stdout.decode(errors="replace").strip() == "true"

    def _remove(self, name: str, wait: bool = False) -> None:
        if wait:
            capture([self.engine, "rm", "--force", name], env=tool_env(), timeout=120)
            return
        # in the background: the step goes on while the engine tidies up
        self.removals.append(
            subprocess.Popen(
                [self.engine, "rm", "--force", name],
                env=tool_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        )

    def close(self) -> None:
        for proc in self.removals:
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()


def inside(host: str) -> str:
    """Where a read-only host folder (the worker's Rust toolchain) is in a container: not
    at its own path, which may be under the image's /root, closed to the build's user."""
    return f"/wheelfarm-ro/{hashlib.sha256(host.encode()).hexdigest()[:12]}"


def moved(phase: Phase) -> Phase:
    """The phase with its read-only folders' paths as the container sees them."""
    hosts = sorted(phase.readable, key=len, reverse=True)

    def at(text: str) -> str:
        for host in hosts:
            if text == host or text.startswith(host + "/"):
                return inside(host) + text[len(host) :]
        return text

    if not hosts:
        return phase
    env = {k: os.pathsep.join(at(p) for p in v.split(os.pathsep)) for k, v in phase.env.items()}
    return phase._replace(argv=[at(a) for a in phase.argv], env=env,
                          shown=tuple(at(a) for a in phase.shown))  # fmt: skip


def _mount_path(path: Path) -> str:
    """A host path as an engine's -v option takes it: never one that could be read as
    more options (the build directory's path is the worker's, but say so)."""
    text = str(path)
    if not os.path.isabs(text) or ":" in text or "," in text or "\n" in text:
        fail(f"cannot mount {text!r} into a container")
    return text


class _env_file:
    """The environment of one container run, by file: no value is ever on a command line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __enter__(self) -> str:
        lines = []
        for name, value in sorted(self.env.items()):
            if not ENV_NAME.fullmatch(name) or "\n" in value or "\0" in value:
                fail(f"cannot pass the variable {name!r} into a container")
            lines.append(f"{name}={value}\n")
        fd, self.path = tempfile.mkstemp(prefix="wheelfarm-env-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(lines)
        return self.path

    def __exit__(self, *exc) -> None:
        os.unlink(self.path)


# -- system packages: a derived image --------------------------------------------------

MANAGER_PROBE = "command -v apt-get || command -v dnf || command -v yum || true"
INSTALL = {
    "apt": 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"',
    "dnf": 'dnf install -y -q "$@"',
}


def derived(place: ContainerPlace, wanted: dict[str, list[str]]) -> str:
    """The base image with the packages of its manager installed, made once and cached by
    its recipe (the base image's id and the packages)."""
    engine = place.engine
    arch = ["--arch", place.arch] if place.arch else []
    done = capture([engine, "image", "inspect", "--format", "{{.Id}}", place.base_image],
                   env=tool_env())  # fmt: skip
    base_id = done.stdout.decode(errors="replace").strip() or place.base_image
    probe = capture([engine, "run", "--rm", "--network", "none", *arch, place.base_image,
                     "sh", "-c", MANAGER_PROBE], env=tool_env(), timeout=300)  # fmt: skip
    tool = Path(probe.stdout.decode(errors="replace").strip() or "none").name
    manager = {"apt-get": "apt", "dnf": "dnf", "yum": "dnf"}.get(tool)
    names = sorted(set(wanted.get(manager or "", [])))
    if not names:
        return place.base_image
    key = hashlib.sha256(repr((base_id, manager, names)).encode()).hexdigest()[:16]
    image = f"localhost/wheelfarm-derived:{key}"
    if capture([engine, "image", "exists", image], env=tool_env()).returncode == 0:
        return image
    name = f"wheelfarm-derive-{key}-{os.urandom(3).hex()}"
    # as the image's root, with the network: the image's own manager and nothing else runs
    argv = [engine, "run", "--name", name, "--network", "host", *arch, place.base_image]
    argv += ["sh", "-c", INSTALL[manager or "apt"], "sh", *names]
    try:
        check_run(argv, "cannot install system packages", env=tool_env())
        check_run([engine, "commit", "--quiet", name, image], "cannot keep the system packages",
                  env=tool_env(), quiet=True)  # fmt: skip
    finally:
        capture([engine, "rm", "--force", name], env=tool_env())
    say(f"system packages {', '.join(names)} ({manager}): image {image}")
    return image
