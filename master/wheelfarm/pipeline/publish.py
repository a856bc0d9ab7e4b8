"""The master's own steps of a build: resolve the sdist, check the wheel's metadata,
publish it with its ABI pins, verify a rebuild, and ask whether it starts a cascade.

`resolve` adds the other steps only when there is work: a build whose wheel is
already in the index (same sdist sha256 and toolchain key) ends there and shows as
skipped; `rebuild` forces it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from buildbot.process import buildstep
from buildbot.process.results import FAILURE, SKIPPED, SUCCESS, WARNINGS
from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version
from twisted.internet import defer, reactor, threads
from twisted.python import log

from ..index.pinning import built_against, pin_wheel
from ..index.store import Index, IndexConflict, InvalidWheel, read_metadata
from ..index.verify import record_verification, wheel_differences
from ..registry.graph import undeclared_dependencies
from ..registry.packages import Registry
from ..registry.pins import PinError
from ..state.db import one_line
from .pypi import ResolveError, Sdist, resolve_sdist
from .steps import MASTER_STEP_TIMEOUT, OneLineReason, incoming_dir, os_error
from .toollock import worker_lock


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
            spec = version_spec(raw_spec)
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
                already_built,
                self.index,
                sdist,
                self.getProperty("python"),
                self.getProperty("platform"),
                self.getProperty("toolchain_key"),
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


def already_built(
    index: Index, sdist: Sdist, python: str, platform: str, toolchain_key: str | None
) -> list[dict]:
    """Records of the index's wheels for this target from this very sdist and toolchain:
    a build would make nothing new (campaigns ask this too, before spending a build)."""
    return index.find(
        sdist.name,
        version=sdist.version,
        python=python,
        platform=platform,
        sdist_sha256=sdist.sha256,
        toolchain_key=toolchain_key,
    )


def version_spec(raw: str) -> SpecifierSet | None:
    """'' or 'latest': any version; '1.2': exactly that; otherwise a PEP 440 specifier."""
    raw = raw.strip()
    if raw in ("", "latest"):
        return None
    if raw[0].isdigit():
        raw = f"=={raw}"
    return SpecifierSet(raw)


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
        # a direct reference would make every installer of the wheel fetch or read it
        direct = [str(r) for r in meta.requires_dist or [] if r.url]
        if direct:
            return self.fail(f"metadata check failed: requires {direct[0]!r}: a URL, not a project")
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
    against packages with an ABI is published pinned to it (registry/pins.py).
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
            # the worker side the master shipped (farmtool.pyz)
            "farmtool": {"sha256": self.getProperty("farmtool_sha256")},
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
    verification records (index/verify.py), which the package page shows.
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


class Downstream(NamedTuple):
    """What a published wheel means for the packages that depend on it.

    The cascade stage decides (config.py wires its `cascade_action` in here, so the
    build stage never imports cascades): `action(index records of the project, the
    published record, the package's ABI mode)` says "cascade", "resume" or None, and
    a non-None answer triggers `scheduler` with the build's target.
    """

    action: Callable[[list[dict], dict, str | None], str | None]
    scheduler: str


class CascadeCheck(MasterStep):
    """Does the new wheel start a cascade downstream, or resume one it held up?"""

    name = "cascade"
    warnOnWarnings = True  # a failed check shows on the build, which still published

    def __init__(self, index: Index, downstream: Downstream, **kwargs):
        kwargs.setdefault("hideStepIf", lambda results, step: results == SKIPPED)
        super().__init__(index, **kwargs)
        self.downstream = downstream

    @defer.inlineCallbacks
    def run(self):
        published = self.getProperty("published")
        try:
            records = yield self.in_thread(self.index.records, published["project"])
            action = yield self.in_thread(
                self.downstream.action, records, published, self.getProperty("abi")
            )
        except Exception as e:  # e.g. the database away: the wheel is published all the same
            log.err(e, "wheelfarm: cascade check")
            self.reason = f"cascade check failed, the wheel is published: {one_line(e)}"
            return WARNINGS
        if action is None:
            self.descriptionDone = ["no ABI change downstream"]
            return SKIPPED
        self.setProperty("campaign_action", action, "cascade")
        self.descriptionDone = [f"{action} downstream"]
        return SUCCESS
