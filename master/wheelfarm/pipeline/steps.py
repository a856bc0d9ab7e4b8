"""The build of one (package, version, platform, Python): the steps that run on the worker.

Every builder of the farm runs the same factory (factory.py); what it builds comes
from the build's properties (package, version_spec, python, platform, ...), so the
registry can grow without adding builders. Worker-side steps run `farmtool.pyz`
(the zipapp of the `farmtool` package, shipped into each build: workerapp.py) with
argument lists, never a shell line, and report the farm's facts through a file the
build's own code cannot write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from buildbot.plugins import steps, util
from buildbot.process import build, remotecommand
from buildbot.process.results import SKIPPED, SUCCESS
from buildbot.worker.protocols.base import FileWriterImpl
from twisted.internet import defer

from ..index.store import Index
from ..registry.platforms import PLATFORMS

FARMTOOL = "farmtool.pyz"  # where the worker keeps it, in the build directory
SDIST_DIR = "sdist"
BUILT_DIR = "dist/built"
REPAIRED_DIR = "dist/repaired"
# Every step ends: worker commands after this long (or 20 minutes without output),
# the upload and the master's own steps sooner.
STEP_MAX_TIME = 3 * 3600
UPLOAD_TIMEOUT = 900
MASTER_STEP_TIMEOUT = 600


class PackageBuild(build.Build):
    """A build of one (package, version, platform, Python) on its platform's builder.

    There is no builder per package (75,000 of them at PyPI scale made every
    view of Buildbot's UI fetch them all): the package shows in the build's
    summary, `six 1.16.0 py3.11: build successful`, which Buildbot's build
    lists, home page and waterfall show, and on the farm's package pages.
    Set here, it covers forced, triggered and any later kind of request alike.
    """

    def buildFinished(self, text, results):
        return super().buildFinished([*target_label(self), *text], results)


def target_label(build) -> list[str]:
    """`six 1.16.0 py3.11:` for a wheel build, nothing for other builds."""
    package = build.getProperty("package")
    python = build.getProperty("python")
    if not package or not python or not build.getProperty("platform"):
        return []
    version = build.getProperty("version") or build.getProperty("version_spec") or ""
    return [" ".join(str(p) for p in (package, version, f"py{python}") if p) + ":"]


@util.renderer
def python_argv(props) -> list[str]:
    """How this worker starts the requested Python (per the platform table)."""
    return PLATFORMS[props.getProperty("platform")].python_argv(props.getProperty("python"))


def repeat_option(option: str, prop: str):
    """`--option value` for each value of a list property."""

    @util.renderer
    def render(props) -> list[str]:
        return [arg for value in props.getProperty(prop) or [] for arg in (option, value)]

    return render


@util.renderer
def container_args(props) -> list[str]:
    # the worker's engine, the builder's image (settings build_images, else manylinux)
    engine = props.getProperty("container_engine")
    image = props.getProperty("container_image")
    if not (engine and image):
        return []
    args = ["--container-engine", engine, "--image", image]
    arch = PLATFORMS[props.getProperty("platform")].image_arch
    if props.getProperty("emulated") and arch:
        args += ["--container-arch", arch]  # another architecture's image, under QEMU
    return args


@util.renderer
def env_args(props) -> list[str]:
    # the registry's build.env as arguments (each `NAME=VALUE` one item of the list, never
    # an option): never in the step's environment, which farmtool's own interpreter and
    # the farm's tools would start with; farmtool gives them to the build's code only
    env = props.getProperty("build_env") or {}
    return [arg for name, value in env.items() for arg in ("--env", f"{name}={value}")]


@util.renderer
def isolation_args(props) -> list[str]:
    # the worker's declared isolation (workers.yaml); `auto` finds bubblewrap on Linux
    return ["--isolation", props.getProperty("isolation") or "auto"]


@dataclass(frozen=True)
class StepLimits:
    """What a build's untrusted code may use (settings; farmtool/isolation/limits.py):
    `--limit KEY=VALUE` options for the build step and the test step, and the master's
    own bounds on a step's log and an upload."""

    build: dict[str, int]  # memory, processes, cpu, time of the backend's phases
    test: dict[str, int]  # the same, for the import check and the test command
    shared: dict[str, int]  # disk, output, wheel, unpacked: every step
    log_bytes: int  # of one step's log, on the master
    upload_bytes: int

    def args(self, step: str) -> list[str]:
        values = {**self.shared, **getattr(self, step, {})}
        return [arg for key, value in values.items() for arg in ("--limit", f"{key}={value}")]


def bound_log(log, limit: int) -> None:
    """At most `limit` characters of output reach this log; then one notice.

    Buildbot 4.3 reads `logMaxSize` but enforces it nowhere, and a build's output is
    the package's: a worker's farmtool bounds it too, but the master does not trust
    that a worker did.
    """
    left = [limit]

    def bounded(original):
        def add(data, *args, **kwargs):
            if left[0] <= 0:
                return defer.succeed(None)
            if len(data) > left[0]:
                data = data[: left[0]] + f"\n[log truncated: over {limit} characters]\n"
                left[0] = 0
            else:
                left[0] -= len(data)
            return original(data, *args, **kwargs)

        return add

    for name in ("addStdout", "addStderr", "add_stdout_lines", "add_stderr_lines"):
        setattr(log, name, bounded(getattr(log, name)))


@util.renderer
def platform_args(props) -> list[str]:
    platform = PLATFORMS[props.getProperty("platform")]
    policy = props.getProperty("policy") or platform.policy  # the build image's, if set
    return ["--tool", platform.repair or "none", "--policy", policy]


@util.renderer
def test_command_args(props) -> list[str]:
    command = props.getProperty("test_command") or []
    return ["--", *command] if command else []


if TYPE_CHECKING:  # to the checker, a mixin extends what it is mixed into
    from buildbot.process.buildstep import BuildStep as _Step
else:
    _Step = object


class OneLineReason(_Step):
    """Steps whose failure summary is one precise line (the build's summary too)."""

    reason: str | None = None

    def getResultSummary(self):
        if self.results not in (SUCCESS, SKIPPED) and self.reason:
            return {"step": self.reason, "build": self.reason}
        return super().getResultSummary()


OPTED_OUT = "none-i-accept-the-risk"  # a worker's `isolation` when it runs code unsandboxed
FACTS_MAX = 1 << 20  # a facts file is a few kB; more is not farmtool's
# What the master takes from a facts file, and what each must be.
FACT_KINDS = {"reason": str, "summary": str, "toolchain": dict, "isolation": str}


class _BytesWriter(FileWriterImpl):
    """Receives a file the worker process sends (Buildbot's `uploadFile` command)."""

    def __init__(self) -> None:
        self.data = b""

    def remote_write(self, data) -> None:
        self.data += data if isinstance(data, bytes) else data.encode()
        if len(self.data) > FACTS_MAX:
            raise ValueError("facts file too large")

    def remote_utime(self, accessed_modified) -> None:
        pass

    def remote_close(self) -> None:
        pass


def parse_facts(data: bytes) -> dict:
    """The facts farmtool wrote, keeping only well-formed ones: never raises."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except ValueError:
        return {}
    if not isinstance(doc, dict):
        return {}
    facts = {k: doc[k] for k, kind in FACT_KINDS.items() if isinstance(doc.get(k), kind)}
    for key in ("reason", "summary", "isolation"):
        if key in facts:
            facts[key] = " ".join(facts[key].split())[:500]
    return facts


class FarmCommand(OneLineReason, steps.ShellCommand):
    """A farmtool subcommand on the worker.

    Its output is shown, never believed: the build's own code prints into it too. What
    the master records (the reason of a failure, the summary, the toolchain and how
    the code was isolated) comes from the facts file farmtool writes where no sandbox
    can see it, fetched by the worker process itself after the step.
    """

    def __init__(self, subcommand: str, args: list, log_bytes: int = 32 << 20, **kwargs):
        kwargs.setdefault("name", subcommand)
        kwargs.setdefault("haltOnFailure", True)
        kwargs.setdefault("maxTime", STEP_MAX_TIME)
        kwargs["logEnviron"] = False  # the worker's environment is nobody's business
        # -I: no PYTHON* variable, user site or current folder changes farmtool's interpreter
        super().__init__(command=[python_argv, "-I", FARMTOOL, subcommand, *args], **kwargs)
        self.subcommand = subcommand
        self.log_bytes = log_bytes

    @defer.inlineCallbacks
    def run(self):
        stdio = yield self.addLog("stdio")  # ShellCommand writes into this one
        bound_log(stdio, self.log_bytes)
        results = yield super().run()
        facts = yield self._facts()
        if facts.get("toolchain") is not None:
            self.setProperty("toolchain", facts["toolchain"], "farmtool")
        used = facts.get("isolation")
        if used and self.getProperty("isolation") == OPTED_OUT:
            used = OPTED_OUT  # its code could write any facts: the declaration is the truth
        if used:
            isolation = dict(self.getProperty("isolation_used") or {})
            isolation[self.subcommand] = used
            self.setProperty("isolation_used", isolation, "farmtool")
        if results not in (SUCCESS, SKIPPED):
            self.reason = (
                facts.get("reason") or f"{self.subcommand} failed (farmtool gave no reason)"
            )
        elif facts.get("summary"):
            self.descriptionDone = [facts["summary"]]
        return results

    @defer.inlineCallbacks
    def _facts(self):
        writer = _BytesWriter()
        args = {
            "workdir": self.workdir,
            "workersrc": f".facts/{self.subcommand}.json",
            "writer": writer,
            "maxsize": FACTS_MAX,
            "blocksize": 16 * 1024,
            "keepstamp": False,
        }
        cmd = remotecommand.RemoteCommand("uploadFile", args)
        try:
            yield self.runCommand(cmd)
        except Exception:  # a lost worker: the step's own result says what happened
            return {}
        if cmd.didFail():
            return {}
        return parse_facts(writer.data)


def incoming_dir(props, index: Index) -> str:
    """Where this build's upload lands before it is checked: unique per build."""
    return str(index.root / ".incoming" / str(props.getBuild().buildid))


def os_error(e: OSError) -> str:
    """One line: `No space left on device: /path` (no errno, no traceback)."""
    where = f": {e.filename}" if e.filename else ""
    return f"{e.strerror or e}{where}"
