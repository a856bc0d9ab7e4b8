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

import json
import shutil
import subprocess
import sys
from pathlib import Path

from buildbot.plugins import steps, util
from buildbot.process import build, buildstep, logobserver
from buildbot.process.results import FAILURE, SKIPPED, SUCCESS, WARNINGS
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version
from twisted.internet import defer, threads

from .campaigns import ORCHESTRATE, CampaignStore, cascade_action
from .graph import undeclared_dependencies
from .index import Index, IndexConflict, InvalidWheel, read_metadata
from .platforms import PLATFORMS
from .pypi import ResolveError, resolve_sdist
from .registry import Registry
from .toollock import worker_lock

FARMTOOL = Path(__file__).parent / "worker_side" / "farmtool.py"
SDIST_DIR = "sdist"
BUILT_DIR = "dist/built"
REPAIRED_DIR = "dist/repaired"


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
    engine = props.getProperty("container_engine")
    image = PLATFORMS[props.getProperty("platform")].manylinux_image
    return ["--container-engine", engine, "--image", image] if engine and image else []


@util.renderer
def _pass_env(props) -> list[str]:
    # names only: a container build gets the registry's build variables by name
    return [arg for name in props.getProperty("build_env") or {} for arg in ("--pass-env", name)]


@util.renderer
def _platform_args(props) -> list[str]:
    platform = PLATFORMS[props.getProperty("platform")]
    return ["--tool", platform.repair or "none", "--policy", platform.policy]


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


class FarmCommand(OneLineReason, steps.ShellCommand):
    """A farmtool subcommand on the worker; its last `error: ...` line is the reason."""

    def __init__(self, subcommand: str, args: list, **kwargs):
        kwargs.setdefault("name", subcommand)
        kwargs.setdefault("haltOnFailure", True)
        super().__init__(command=[python_argv, "farmtool.py", subcommand, *args], **kwargs)
        self.addLogObserver("stdio", logobserver.LineConsumerLogObserver(self._lines))

    def _lines(self):
        while True:
            _, line = yield
            if line.startswith("error: "):
                self.reason = line[len("error: ") :].strip()
            elif line.startswith("toolchain: "):
                self.setProperty("toolchain", json.loads(line[len("toolchain: ") :]), "farmtool")


class MasterStep(OneLineReason, buildstep.BuildStep):
    """A step that runs on the master, next to the farm's index."""

    def __init__(self, index: Index, **kwargs):
        kwargs.setdefault("haltOnFailure", True)
        super().__init__(**kwargs)
        self.index = index

    def fail(self, reason: str) -> int:
        self.reason = reason
        return FAILURE


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
            sdist = yield threads.deferToThread(
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
        if not self.getProperty("rebuild"):
            built = yield threads.deferToThread(
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
            _, meta = yield threads.deferToThread(read_metadata, wheels[0])
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
    """Add the checked wheel to the farm's index, with its build record."""

    name = "publish"

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
            "build_url": url,
            "cause": self.getProperty("cause"),
        }
        if len(wheels) != 1:
            return self.fail(f"publish failed: expected one wheel, got {len(wheels)}")
        wheel = wheels[0]
        try:
            result = yield threads.deferToThread(self.index.add, wheel, record)
        except IndexConflict as e:
            if not (self.getProperty("rebuild") or self.getProperty("campaign")):
                return self.fail(f"publish refused: {e}")
            # A rebuild (e.g. against a dependency's new ABI) made other bytes: it
            # is published under the next build number, never over the old file.
            wheel = yield threads.deferToThread(retag, wheel, self.index)
            result = yield threads.deferToThread(self.index.add, wheel, record)
        except ValueError as e:
            return self.fail(f"publish refused: {e}")
        self.setProperty("wheel", wheel.name, "publish")
        self.setProperty("published", result.record, "publish")
        log = yield self.addLog("record")
        yield log.addStdout(json.dumps(result.record, indent=2) + "\n")
        self.descriptionDone = [f"published {wheel.name} ({result})"]
        return SUCCESS


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
        records = yield threads.deferToThread(self.index.records, published["project"])
        action = yield threads.deferToThread(
            cascade_action, records, published, self.getProperty("abi"), self.store
        )
        if action is None:
            self.descriptionDone = ["no ABI change downstream"]
            return SKIPPED
        self.setProperty("campaign_action", action, "cascade")
        self.descriptionDone = [f"{action} downstream"]
        return SUCCESS


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
        yield threads.deferToThread(shutil.rmtree, folder, True)
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
) -> util.BuildFactory:
    pypi_simple = f"{pypi_url.rstrip('/')}/simple/"
    factory = util.BuildFactory()
    factory.buildClass = PackageBuild
    pipeline = [
        steps.FileDownload(
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
                _pass_env,
                _container_args,
            ],
            env=util.Property("build_env", default={}),
        ),
        FarmCommand(
            "repair",
            [_platform_args, "--in", BUILT_DIR, "--out", REPAIRED_DIR, _container_args],
        ),
        FarmCommand("check", ["--wheel-dir", REPAIRED_DIR, _platform_args]),
        FarmCommand(
            "test",
            [
                *("--wheel-dir", REPAIRED_DIR),
                *("--index-url", farm_index_url, "--extra-index-url", pypi_simple),
                _repeat("--requires", "test_requires"),
                _repeat("--skip-import", "skip_imports"),
                _test_command,
            ],
        ),
        steps.DirectoryUpload(
            name="upload",
            workersrc=REPAIRED_DIR,
            masterdest=util.renderer(lambda props: incoming_dir(props, index)),
            haltOnFailure=True,
        ),
        CheckMetadata(index=index, registry=registry),
        PublishWheel(index=index, doStepIf=publishing),
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
