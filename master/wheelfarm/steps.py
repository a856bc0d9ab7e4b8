"""The build of one (package, version, platform, Python), as Buildbot steps.

Every builder of the farm runs the same factory; what it builds comes from the
build's properties (package, version_spec, python, platform), so the registry
can grow without adding builders. Worker-side steps run `farmtool.py` (copied
into each build) with argument lists, never a shell line.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from buildbot.plugins import steps, util
from buildbot.process import build, buildstep, logobserver
from buildbot.process.results import FAILURE, SUCCESS
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from twisted.internet import defer, threads

from .platforms import PLATFORMS
from .pypi import ResolveError, resolve_sdist

FARMTOOL = Path(__file__).parent / "worker_side" / "farmtool.py"
SDIST_DIR = "sdist"
DIST_DIR = "dist"


class PackageBuild(build.Build):
    """A build that shows in the UI under its package's virtual builder.

    Setting the virtual builder here, rather than in each scheduler, covers
    forced, triggered and any later kind of request alike.
    """

    def getBuilderId(self):
        package = self.getProperty("package")
        if package and not self.hasProperty(self.VIRTUAL_BUILDERNAME_PROP):
            platform = self.getProperty("platform")
            self.setProperty(self.VIRTUAL_BUILDERNAME_PROP, f"{package} · {platform}", "wheelfarm")
            tags = [package, platform]
            self.setProperty(self.VIRTUAL_BUILDERTAGS_PROP, tags, "wheelfarm")
        return super().getBuilderId()


@util.renderer
def python_argv(props) -> list[str]:
    """How this worker starts the requested Python (per the platform table)."""
    return PLATFORMS[props.getProperty("platform")].python_argv(props.getProperty("python"))


class FarmCommand(steps.ShellCommand):
    """A farmtool command whose failure summary is its last `error: ...` line."""

    def __init__(self, subcommand: str, args: list, **kwargs):
        kwargs.setdefault("name", subcommand)
        kwargs.setdefault("haltOnFailure", True)
        super().__init__(command=[python_argv, "farmtool.py", subcommand, *args], **kwargs)
        self.error_line: str | None = None
        self.addLogObserver("stdio", logobserver.LineConsumerLogObserver(self._lines))

    def _lines(self):
        while True:
            _, line = yield
            if line.startswith("error: "):
                self.error_line = line[len("error: ") :].strip()

    def getResultSummary(self):
        if self.results != SUCCESS and self.error_line:
            return {"step": self.error_line, "build": self.error_line}
        return super().getResultSummary()


class ResolveSdist(buildstep.BuildStep):
    """On the master: pick the newest sdist the version spec admits, with PyPI's sha256."""

    name = "resolve"

    def __init__(self, index_url: str, **kwargs):
        kwargs.setdefault("haltOnFailure", True)
        super().__init__(**kwargs)
        self.index_url = index_url
        self.reason: str | None = None

    @defer.inlineCallbacks
    def run(self):
        package = self.getProperty("package")
        raw_spec = self.getProperty("version_spec") or ""
        try:
            spec = _version_spec(raw_spec)
        except InvalidSpecifier:
            return self._fail(f"version {raw_spec!r} is neither a version nor a specifier")
        try:
            sdist = yield threads.deferToThread(
                resolve_sdist,
                self.index_url,
                package,
                spec,
                bool(self.getProperty("prereleases")),
            )
        except ResolveError as e:
            return self._fail(str(e))
        for key in ("version", "filename", "url", "sha256"):
            prop = key if key == "version" else f"sdist_{key}"
            self.setProperty(prop, getattr(sdist, key), "resolve")
        log = yield self.addLog("resolved")
        yield log.addStdout(json.dumps(sdist.__dict__, indent=2) + "\n")
        self.descriptionDone = [f"{package} {sdist.version}"]
        return SUCCESS

    def _fail(self, reason: str):
        self.reason = reason
        return FAILURE

    def getResultSummary(self):
        if self.reason:
            return {"step": self.reason, "build": self.reason}
        return super().getResultSummary()


def _version_spec(raw: str) -> SpecifierSet | None:
    """'' or 'latest': any version; '1.2': exactly that; otherwise a PEP 440 specifier."""
    raw = raw.strip()
    if raw in ("", "latest"):
        return None
    if raw[0].isdigit():
        raw = f"=={raw}"
    return SpecifierSet(raw)


class PublishWheels(buildstep.BuildStep):
    """On the master: move the uploaded wheels into the farm's index.

    Names are checked (no path separators, must parse as a wheel of this
    package); a file already in the index is never replaced by other bytes.
    """

    name = "publish"

    def __init__(self, index_dir: Path, **kwargs):
        kwargs.setdefault("haltOnFailure", True)
        super().__init__(**kwargs)
        self.index_dir = Path(index_dir)
        self.reason: str | None = None

    @defer.inlineCallbacks
    def run(self):
        incoming = Path(incoming_dir(self.build.getProperties(), self.index_dir))
        package = canonicalize_name(self.getProperty("package"))
        try:
            published = yield threads.deferToThread(self._publish, incoming, package)
        finally:
            yield threads.deferToThread(shutil.rmtree, incoming, True)
        if self.reason:
            return FAILURE
        log = yield self.addLog("published")
        yield log.addStdout("".join(f"{name}\n" for name in published))
        self.descriptionDone = [f"published {len(published)} wheel(s)"]
        return SUCCESS

    def _publish(self, incoming: Path, package: str) -> list[str]:
        names = sorted(p.name for p in incoming.iterdir()) if incoming.is_dir() else []
        wheels = [n for n in names if n.endswith(".whl")]
        if not wheels:
            self.reason = "publish failed: the build uploaded no wheel"
            return []
        for name in wheels:
            try:
                wheel_name = parse_wheel_filename(name)[0]
            except InvalidWheelFilename:
                self.reason = f"publish refused: {name!r} is not a valid wheel file name"
                return []
            if os.sep in name or wheel_name != package:
                self.reason = f"publish refused: {name!r} is not a wheel of {package}"
                return []
        target = self.index_dir / package
        target.mkdir(parents=True, exist_ok=True)
        for name in wheels:
            dest = target / name
            if dest.exists():
                if dest.read_bytes() != (incoming / name).read_bytes():
                    self.reason = (
                        f"publish refused: {name} is already in the index with other bytes"
                    )
                    return []
                continue
            # same filesystem: the rename is atomic, so the index never holds half a file
            os.replace(incoming / name, dest)
        return wheels

    def getResultSummary(self):
        if self.reason:
            return {"step": self.reason, "build": self.reason}
        return super().getResultSummary()


def incoming_dir(props, index_dir: Path) -> str:
    """Where this build's upload lands before it is checked: unique per build."""
    return str(Path(index_dir) / ".incoming" / str(props.getBuild().buildid))


def build_factory(index_url: str, index_dir: Path) -> util.BuildFactory:
    factory = util.BuildFactory()
    factory.buildClass = PackageBuild
    factory.addSteps(
        [
            ResolveSdist(index_url=index_url),
            steps.FileDownload(
                name="farmtool",
                mastersrc=str(FARMTOOL),
                workerdest="farmtool.py",
                hideStepIf=lambda results, step: results == SUCCESS,
            ),
            FarmCommand(
                "fetch",
                [
                    "--url",
                    util.Property("sdist_url"),
                    "--sha256",
                    util.Property("sdist_sha256"),
                    "--filename",
                    util.Property("sdist_filename"),
                    "--dest",
                    SDIST_DIR,
                ],
            ),
            FarmCommand(
                "build",
                ["--sdist-dir", SDIST_DIR, "--out", DIST_DIR],
                env=util.Property("build_env", default={}),
            ),
            steps.DirectoryUpload(
                name="upload",
                workersrc=DIST_DIR,
                masterdest=util.renderer(lambda props: incoming_dir(props, index_dir)),
                haltOnFailure=True,
            ),
            PublishWheels(index_dir=index_dir),
        ]
    )
    return factory
