"""The build of one (package, version, platform, Python), as Buildbot steps.

Every builder of the farm runs the same factory; what it builds comes from the
build's properties (package, version_spec, python, platform, ...), so the
registry can grow without adding builders. Worker-side steps run `farmtool.py`
(copied into each build) with argument lists, never a shell line.

    resolve (master) -> fetch -> build -> repair -> check -> test -> upload
    -> metadata (master) -> publish (master)

`resolve` adds the other steps only when there is work: a build whose wheel is
already in the index (same sdist sha256 and toolchain key) ends there and
shows as skipped; `rebuild` forces it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from buildbot.plugins import steps, util
from buildbot.process import build, buildstep, remotecommand, remotetransfer
from buildbot.process.results import FAILURE, SKIPPED, SUCCESS, WARNINGS
from buildbot.steps.transfer import makeStatusRemoteCommand
from buildbot.worker.protocols.base import FileWriterImpl
from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version
from twisted.internet import defer, reactor, threads

from .campaigns import ORCHESTRATE, CampaignStore, cascade_action
from .graph import undeclared_dependencies
from .index import Index, IndexConflict, InvalidWheel, read_metadata
from .pins import PinError, built_against, pin_wheel
from .platforms import PLATFORMS
from .pypi import ResolveError, resolve_sdist
from .registry import Registry
from .toollock import worker_lock
from .verify import record_verification, wheel_differences

FARMTOOL = Path(__file__).parent / "worker_side" / "farmtool.py"
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


def _repeat(option: str, prop: str):
    """`--option value` for each value of a list property."""

    @util.renderer
    def render(props) -> list[str]:
        return [arg for value in props.getProperty(prop) or [] for arg in (option, value)]

    return render


@util.renderer
def _container_args(props) -> list[str]:
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
def _pass_env(props) -> list[str]:
    # names only: the build gets the registry's variables (and only those of the step's
    # environment) by name, so no value is ever on a command line
    return [arg for name in props.getProperty("build_env") or {} for arg in ("--pass-env", name)]


@util.renderer
def _isolation(props) -> list[str]:
    # the worker's declared isolation (workers.yaml); `auto` finds bubblewrap on Linux
    return ["--isolation", props.getProperty("isolation") or "auto"]


@util.renderer
def _platform_args(props) -> list[str]:
    platform = PLATFORMS[props.getProperty("platform")]
    policy = props.getProperty("policy") or platform.policy  # the build image's, if set
    return ["--tool", platform.repair or "none", "--policy", policy]


@util.renderer
def _test_command(props) -> list[str]:
    command = props.getProperty("test_command") or []
    return ["--", *command] if command else []


class OneLineReason:
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

    def __init__(self, subcommand: str, args: list, **kwargs):
        kwargs.setdefault("name", subcommand)
        kwargs.setdefault("haltOnFailure", True)
        kwargs.setdefault("maxTime", STEP_MAX_TIME)
        kwargs["logEnviron"] = False  # the worker's environment is nobody's business
        super().__init__(command=[python_argv, "farmtool.py", subcommand, *args], **kwargs)
        self.subcommand = subcommand

    @defer.inlineCallbacks
    def run(self):
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


class MasterStep(OneLineReason, buildstep.BuildStep):
    """A step that runs on the master, next to the farm's index."""

    def __init__(self, index: Index, **kwargs):
        kwargs.setdefault("haltOnFailure", True)
        super().__init__(**kwargs)
        self.index = index

    def fail(self, reason: str) -> int:
        self.reason = reason
        return FAILURE

    def in_thread(self, function, *args, **kwargs) -> defer.Deferred:
        """`function` in a thread; a defer.TimeoutError if it takes too long."""
        d = threads.deferToThread(function, *args, **kwargs)
        return d.addTimeout(MASTER_STEP_TIMEOUT, reactor)


class ResolveSdist(MasterStep):
    """Pick the newest sdist the version spec admits, with the sha256 PyPI publishes,
    and stop here if the index already has that wheel."""

    name = "resolve"

    def __init__(self, pypi_url: str, index: Index, pipeline: list, **kwargs):
        super().__init__(index, **kwargs)
        self.pypi_url = pypi_url
        self.pipeline = pipeline  # the steps that run only when there is work to do

    @defer.inlineCallbacks
    def run(self):
        package = self.getProperty("package")
        # from Buildbot's build page to the farm's page of the package, and back from there
        page = f"{self.master.config.buildbotURL}farm/packages/{package}"
        yield self.addURL("package page", page)
        raw_spec = self.getProperty("version_spec") or ""
        try:
            spec = _version_spec(raw_spec)
        except InvalidSpecifier:
            return self.fail(f"version {raw_spec!r} is neither a version nor a specifier")
        try:
            sdist = yield self.in_thread(
                resolve_sdist, self.pypi_url, package, spec, bool(self.getProperty("prereleases"))
            )
        except ResolveError as e:
            return self.fail(str(e))
        for key in ("version", "filename", "url", "sha256"):
            prop = key if key == "version" else f"sdist_{key}"
            self.setProperty(prop, getattr(sdist, key), "resolve")
        log = yield self.addLog("resolved")
        yield log.addStdout(json.dumps(sdist.__dict__, indent=2) + "\n")
        self.descriptionDone = [f"{package} {sdist.version}"]
        built = []
        if self.getProperty("verify"):
            self.descriptionDone = [f"{package} {sdist.version}: verify"]
        if not self.getProperty("rebuild"):
            built = yield self.in_thread(
                self.index.find,
                package,
                version=sdist.version,
                python=self.getProperty("python"),
                platform=self.getProperty("platform"),
                sdist_sha256=sdist.sha256,
                toolchain_key=self.getProperty("toolchain_key"),
            )
        if not built:
            self.build.addStepsAfterCurrentStep(self.pipeline)
            return SUCCESS
        # Nothing to do: no other step runs, and the build shows as skipped.
        self.setProperty("already_built", built[0]["filename"], "resolve")
        self.descriptionDone = [f"already built: {built[0]['filename']}"]
        self.build.results = SKIPPED
        return SKIPPED

    def getResultSummary(self):
        if self.results == SKIPPED:
            return {"step": self.descriptionDone[0], "build": self.descriptionDone[0]}
        return super().getResultSummary()


def _version_spec(raw: str) -> SpecifierSet | None:
    """'' or 'latest': any version; '1.2': exactly that; otherwise a PEP 440 specifier."""
    raw = raw.strip()
    if raw in ("", "latest"):
        return None
    if raw[0].isdigit():
        raw = f"=={raw}"
    return SpecifierSet(raw)


def incoming_dir(props, index: Index) -> str:
    """Where this build's upload lands before it is checked: unique per build."""
    return str(index.root / ".incoming" / str(props.getBuild().buildid))


def _incoming_wheels(step, index: Index) -> list[Path]:
    folder = Path(incoming_dir(step.build.getProperties(), index))
    return sorted(folder.glob("*.whl")) if folder.is_dir() else []


class CheckMetadata(MasterStep):
    """The wheel's metadata parses with `packaging`, and names the sdist's project and version.

    It warns when the wheel requires a registry package its entry does not list
    in `depends`.
    """

    name = "metadata"
    warnOnWarnings = True

    def __init__(self, index: Index, registry: Registry | None = None, **kwargs):
        super().__init__(index, **kwargs)
        self.registry = registry

    @defer.inlineCallbacks
    def run(self):
        wheels = _incoming_wheels(self, self.index)
        if len(wheels) != 1:
            return self.fail(f"metadata check failed: expected one wheel, got {len(wheels)}")
        try:
            _, meta = yield self.in_thread(read_metadata, wheels[0])
        except InvalidWheel as e:
            return self.fail(f"metadata check failed: {e}")
        want_name = canonicalize_name(self.getProperty("package"))
        want_version = Version(self.getProperty("version"))
        if canonicalize_name(meta.name) != want_name or meta.version != want_version:
            return self.fail(
                f"metadata check failed: wheel says {meta.name} {meta.version}, "
                f"sdist is {want_name} {want_version}"
            )
        self.descriptionDone = [f"metadata: {meta.name} {meta.version}"]
        if self.registry is None or want_name not in self.registry.packages:
            return SUCCESS
        missing = undeclared_dependencies(
            self.registry,
            want_name,
            [str(r) for r in meta.requires_dist or []],
            self.getProperty("python"),
        )
        if not missing:
            return SUCCESS
        # a warning, not a failure: cascades would miss this edge until `depends` has it
        self.reason = (
            f"requires {', '.join(missing)}: in the registry but not in {want_name}'s depends"
        )
        return WARNINGS


class PublishWheel(MasterStep):
    """Add the checked wheel to the farm's index, with its build record.

    The record lists the registry packages of the build environment (farmtool's
    facts: version, and the farm's wheel with its sha256); a compiled wheel built
    against packages with an ABI is published pinned to it (pins.py).
    """

    name = "publish"
    warnOnWarnings = True

    def __init__(self, index: Index, registry: Registry | None = None, **kwargs):
        super().__init__(index, **kwargs)
        self.registry = registry

    def pinning(self, wheel: Path):
        """Deferred (wheel to publish, what its record says of it): pinned when it must be."""
        packages = self.registry.packages if self.registry is not None else {}
        build_env = (self.getProperty("toolchain") or {}).get("build_env") or {}
        package = self.getProperty("package")
        return threads.deferToThread(_pinned, wheel, build_env, packages, package)

    @defer.inlineCallbacks
    def run(self):
        wheels = _incoming_wheels(self, self.index)
        url = yield self.build.getUrl()
        toolchain = self.getProperty("toolchain") or {}
        record = {
            "sdist_sha256": self.getProperty("sdist_sha256"),
            "sdist_filename": self.getProperty("sdist_filename"),
            "worker": self.build.workername,
            "platform": self.getProperty("platform"),
            "python": self.getProperty("python"),
            "toolchain": toolchain,
            # which lock of the farm's tools, and whether the worker's tools were its own
            "toolchain_lock": worker_lock().compare(toolchain),
            "toolchain_key": self.getProperty("toolchain_key"),
            # how the package's own code was isolated, per step: farmtool's word, not the build's
            "isolation": self.getProperty("isolation_used") or {},
            "build_url": url,
            "cause": self.getProperty("cause"),
            # built and tested in another architecture's image under QEMU
            "emulated": bool(self.getProperty("emulated")),
        }
        if len(wheels) != 1:
            return self.fail(f"publish failed: expected one wheel, got {len(wheels)}")
        try:
            wheel, extra = yield self.pinning(wheels[0])
        except PinError as e:
            return self.fail(f"publish refused: {e}")
        record.update(extra)
        try:
            result = yield self.in_thread(self.index.add, wheel, record)
        except IndexConflict as e:
            if not (self.getProperty("rebuild") or self.getProperty("campaign")):
                return self.fail(f"publish refused: {e}")
            # A rebuild (e.g. against a dependency's new ABI) made other bytes: it
            # is published under the next build number, never over the old file.
            wheel = yield self.in_thread(retag, wheel, self.index)
            result = yield self.in_thread(self.index.add, wheel, record)
        except ValueError as e:
            return self.fail(f"publish refused: {e}")
        except OSError as e:  # a read-only or full index, say
            return self.fail(f"publish failed: cannot write to the index: {os_error(e)}")
        except defer.TimeoutError:
            return self.fail(f"publish failed: the index took over {MASTER_STEP_TIMEOUT} s")
        self.setProperty("wheel", wheel.name, "publish")
        self.setProperty("published", result.record, "publish")
        log = yield self.addLog("record")
        yield log.addStdout(json.dumps(result.record, indent=2) + "\n")
        self.descriptionDone = [f"published {wheel.name} ({result})"]
        elsewhere = [n for n, e in extra.get("built_against", {}).items() if e["from"] != "farm"]
        if elsewhere:  # the farm had no wheel of these yet: the record says so too
            self.descriptionDone.append(f"built against {', '.join(elsewhere)} not from the farm")
        entry = (self.registry.packages if self.registry is not None else {}).get(
            canonicalize_name(self.getProperty("package") or "")
        )
        missing = undeclared_pins(extra.get("pins", []), entry.depends if entry else ())
        if missing:
            # published all the same; but a new ABI of these would not rebuild this package
            self.reason = (
                f"pinned to {', '.join(missing)}: not in its depends, so cascades miss this edge"
            )
            return WARNINGS
        return SUCCESS


class VerifyWheel(PublishWheel):
    """A verify build: the wheel it would publish, compared with the one published.

    Publishes nothing; says `reproducible` (same bytes) or which files differ, in its
    summary, its `verify` log, the build's `verify` property and the project's
    verification records (verify.py), which the package page shows.
    """

    name = "verify"
    warnOnWarnings = True

    @defer.inlineCallbacks
    def run(self):
        wheels = _incoming_wheels(self, self.index)
        if len(wheels) != 1:
            return self.fail(f"verify failed: expected one wheel, got {len(wheels)}")
        try:
            wheel, _ = yield self.pinning(wheels[0])
        except PinError as e:
            return self.fail(f"verify failed: {e}")
        project = canonicalize_name(self.getProperty("package"))
        published = self.index.root / project / wheel.name
        if not published.is_file():
            return self.fail(f"verify failed: the index has no {wheel.name} to compare with")
        differ = yield threads.deferToThread(wheel_differences, published, wheel)
        result = {"wheel": wheel.name, "reproducible": not differ, "differ": differ}
        result["build_url"] = yield self.build.getUrl()
        yield threads.deferToThread(record_verification, self.index.root, project, result)
        self.setProperty("verify", result, "verify")
        log = yield self.addLog("verify")
        yield log.addStdout(json.dumps(result, indent=2) + "\n")
        if not differ:
            self.descriptionDone = [f"reproducible: {wheel.name}"]
            return SUCCESS
        shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
        self.reason = f"not reproducible: {wheel.name}: {shown} differ"
        return WARNINGS


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def undeclared_pins(pins: list[str], depends) -> list[str]:
    """The packages a wheel is pinned to that its registry entry does not `depends` on."""
    names = [canonicalize_name(Requirement(p).name) for p in pins]
    return [n for n in names if n not in {canonicalize_name(d) for d in depends}]


def _pinned(wheel: Path, build_env: dict, packages: dict, package: str) -> tuple[Path, dict]:
    built = built_against(build_env, packages, package)
    if not built:
        return wheel, {}
    extra: dict = {"built_against": built}
    pinned, pins = pin_wheel(wheel, built, packages, wheel.parent / "pinned")
    if pins:
        extra["pins"] = [p.requirement for p in pins]
        extra["backend_wheel"] = {"filename": wheel.name, "sha256": _sha256(wheel)}
    return pinned, extra


def retag(wheel: Path, index: Index) -> Path:
    """The same wheel with the next free build number (PEP 427 build tag)."""
    name, version, _, tags = parse_wheel_filename(wheel.name)
    taken = [
        parse_wheel_filename(other)[2]
        for other in index.wheel_names(name) or ()
        if parse_wheel_filename(other)[1::2] == (version, tags)
    ]
    number = max((b[0] for b in taken if b), default=0) + 1
    done = subprocess.run(
        [sys.executable, "-m", "wheel", "tags", "--remove", "--build", str(number), wheel],
        capture_output=True,
        text=True,
        check=True,
        cwd=wheel.parent,
    )
    return wheel.parent / done.stdout.strip().splitlines()[-1]


class CascadeCheck(MasterStep):
    """Does the new wheel start a cascade downstream, or resume one it held up?"""

    name = "cascade"

    def __init__(self, index: Index, store: CampaignStore, **kwargs):
        kwargs.setdefault("hideStepIf", lambda results, step: results == SKIPPED)
        super().__init__(index, **kwargs)
        self.store = store

    @defer.inlineCallbacks
    def run(self):
        published = self.getProperty("published")
        records = yield self.in_thread(self.index.records, published["project"])
        action = yield self.in_thread(
            cascade_action, records, published, self.getProperty("abi"), self.store
        )
        if action is None:
            self.descriptionDone = ["no ABI change downstream"]
            return SKIPPED
        self.setProperty("campaign_action", action, "cascade")
        self.descriptionDone = [f"{action} downstream"]
        return SUCCESS


def os_error(e: OSError) -> str:
    """One line: `No space left on device: /path` (no errno, no traceback)."""
    where = f": {e.filename}" if e.filename else ""
    return f"{e.strerror or e}{where}"


def free_bytes(path: Path) -> int:
    """Free space for unprivileged writers on the filesystem holding `path`."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class KeepingDirectoryWriter(remotetransfer.DirectoryWriter):
    """Buildbot's writer for a directory upload, except that a failure to write
    (ENOSPC, EROFS, ...) is kept for the step to report instead of being raised at
    the worker, which then never finishes the upload; what was written is removed."""

    error: str | None = None

    def _failed(self, e: Exception) -> None:
        self.error = os_error(e) if isinstance(e, OSError) else f"bad archive: {e}"
        if self.fp is not None:
            self.fp.close()
            self.fp = None
        self.purge()

    def remote_write(self, data):
        if self.error is None:
            try:
                super().remote_write(data)
            except OSError as e:
                self._failed(e)

    def remote_utime(self, accessed_modified):
        if self.error is None:
            try:
                super().remote_utime(accessed_modified)
            except OSError as e:
                self._failed(e)

    def remote_close(self):
        if self.error is None:
            try:
                super().remote_close()
            except OSError as e:
                self._failed(e)

    def remote_unpack(self):
        if self.error is None:
            try:
                super().remote_unpack()
            except (OSError, tarfile.TarError) as e:
                self._failed(e)


class TransferTimeout:
    """A file transfer step interrupted after `timeout` seconds (`timed_out` says so)."""

    timeout: int = UPLOAD_TIMEOUT
    timed_out = False

    @defer.inlineCallbacks
    def runTransferCommand(self, cmd, writer=None):
        timer = reactor.callLater(self.timeout, self._time_out)
        try:
            return (yield super().runTransferCommand(cmd, writer))
        finally:
            if timer.active():
                timer.cancel()

    def _time_out(self) -> None:
        self.timed_out = True
        if self.cmd is not None:
            self.cmd.interrupt(f"timed out after {self.timeout} s")


class TimedFileDownload(TransferTimeout, steps.FileDownload):
    """Buildbot's FileDownload, with a time limit."""


class FarmUpload(TransferTimeout, OneLineReason, steps.DirectoryUpload):
    """The worker's repaired wheel to the build's folder in the index's `.incoming/`.

    Refused before it starts when the index's filesystem has less than
    `min_free_bytes` free; a write error fails it with one line and leaves nothing;
    after `timeout` seconds it is interrupted.
    """

    def __init__(self, index: Index, min_free_bytes: int = 0, timeout: int = UPLOAD_TIMEOUT, **kw):
        kw.setdefault("name", "upload")
        kw.setdefault("haltOnFailure", True)
        super().__init__(**kw)
        self.index, self.min_free_bytes, self.timeout = index, min_free_bytes, timeout

    @defer.inlineCallbacks
    def run(self):
        free = yield threads.deferToThread(free_bytes, self.index.root)
        if free < self.min_free_bytes:
            self.reason = (
                f"upload refused: the index has {megabytes(free)} free, "
                f"under min_free_bytes ({megabytes(self.min_free_bytes)})"
            )
            return FAILURE
        self.checkWorkerHasCommand("uploadDirectory")
        self.stdio_log = yield self.addLog("stdio")
        writer = KeepingDirectoryWriter(self.masterdest, self.maxsize, self.compress, 0o600)
        args = {
            "workdir": self.workdir,
            "writer": writer,
            "maxsize": self.maxsize,
            "blocksize": self.blocksize,
            "compress": self.compress,
            "workersrc": self.workersrc,
        }
        cmd = makeStatusRemoteCommand(self, "uploadDirectory", args)
        result = yield self.runTransferCommand(cmd, writer)
        if writer.error is not None:
            writer.purge()
            self.reason = f"upload failed: cannot write to the index: {writer.error}"
            return FAILURE
        if self.timed_out:
            self.reason = f"upload failed: not finished after {self.timeout} s"
            return FAILURE
        if result >= FAILURE:
            self.reason = "upload failed: the worker could not send the wheel (see its log)"
        return result


class RemoveIncoming(buildstep.BuildStep):
    """Whatever happened, the build's upload folder goes: half-made files never stay."""

    name = "cleanup"
    alwaysRun = True
    hideStepIf = True

    def __init__(self, index: Index, **kwargs):
        super().__init__(**kwargs)
        self.index = index

    @defer.inlineCallbacks
    def run(self):
        folder = incoming_dir(self.build.getProperties(), self.index)
        removing = threads.deferToThread(shutil.rmtree, folder, True)
        try:
            yield removing.addTimeout(MASTER_STEP_TIMEOUT, reactor)
        except defer.TimeoutError:  # a hung filesystem: the sweeper at start removes it
            return WARNINGS
        return SUCCESS


def publishing(step) -> bool:
    """Test builds (a registry pull request's) check everything but publish nothing."""
    return step.getProperty("publish") is not False


def build_factory(
    pypi_url: str,
    index: Index,
    farm_index_url: str,
    store: CampaignStore,
    registry: Registry | None = None,
    min_free_bytes: int = 0,  # the upload is refused when the index has less free
) -> util.BuildFactory:
    pypi_simple = f"{pypi_url.rstrip('/')}/simple/"
    factory = util.BuildFactory()
    factory.buildClass = PackageBuild
    pipeline = [
        TimedFileDownload(
            name="farmtool",
            mastersrc=str(FARMTOOL),
            workerdest="farmtool.py",
            hideStepIf=lambda results, step: results == SUCCESS,
        ),
        FarmCommand(
            "fetch",
            [
                *("--url", util.Property("sdist_url")),
                *("--sha256", util.Property("sdist_sha256")),
                *("--filename", util.Property("sdist_filename")),
                *("--dest", SDIST_DIR),
            ],
        ),
        FarmCommand(
            "build",
            [
                *("--sdist-dir", SDIST_DIR, "--out", BUILT_DIR),
                *("--frontend", worker_lock().requirement("build")),
                _repeat("--requires", "build_requires"),
                _repeat("--system", "build_system"),
                *("--index-url", farm_index_url, "--extra-index-url", pypi_simple),
                _pass_env,
                _isolation,
                _container_args,
            ],
            env=util.Property("build_env", default={}),
        ),
        FarmCommand(
            "repair",
            [_platform_args, "--in", BUILT_DIR, "--out", REPAIRED_DIR, _container_args],
        ),
        FarmCommand("check", ["--wheel-dir", REPAIRED_DIR, _platform_args, _container_args]),
        FarmCommand(
            "test",
            [
                *("--wheel-dir", REPAIRED_DIR),
                *("--index-url", farm_index_url, "--extra-index-url", pypi_simple),
                _repeat("--requires", "test_requires"),
                _repeat("--skip-import", "skip_imports"),
                _isolation,
                _container_args,
                _test_command,
            ],
        ),
        FarmUpload(
            index=index,
            min_free_bytes=min_free_bytes,
            workersrc=REPAIRED_DIR,
            masterdest=util.renderer(lambda props: incoming_dir(props, index)),
        ),
        CheckMetadata(index=index, registry=registry),
        PublishWheel(index=index, registry=registry, doStepIf=publishing),
        VerifyWheel(
            index=index,
            registry=registry,
            doStepIf=lambda step: bool(step.getProperty("verify")),
            hideStepIf=lambda results, step: results == SKIPPED,
        ),
        CascadeCheck(index=index, store=store, doStepIf=publishing),
        steps.Trigger(
            name="start campaign",
            schedulerNames=[ORCHESTRATE],
            waitForFinish=False,  # the campaign runs on the master's own worker
            doStepIf=lambda step: bool(step.getProperty("campaign_action")),
            hideStepIf=lambda results, step: results == SKIPPED,
            set_properties={
                "campaign_action": util.Property("campaign_action"),
                "root": util.Property("package"),
                "version": util.Property("version"),
                "platform": util.Property("platform"),
                "python": util.Property("python"),
            },
        ),
        RemoveIncoming(index=index),
    ]
    factory.addStep(ResolveSdist(pypi_url=pypi_url, index=index, pipeline=pipeline))
    return factory
