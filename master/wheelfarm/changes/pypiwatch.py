"""New PyPI releases of registry packages -> Buildbot changes -> builds.

`PyPIReleaseWatcher` is a polling change source: each cycle (pypifeed.poll_cycle,
in a thread) finds the new releases the registry asks for, and each becomes one
Buildbot change (category `pypi-release`, project = package, revision = version,
linked to its PyPI page). `PyPIReleaseScheduler` turns each such change into one
buildset per (platform with a builder, Python) the package targets, made *for the
change*, so the UI shows on every build the release that caused it.

Both keep what they did in Buildbot's state table, so a restart neither skips
nor repeats: the watcher the changelog serial it read up to and, per package,
the versions it announced; the scheduler the last change it turned into builds
(changes that arrived while it was not running are caught up when it starts).
"""

from __future__ import annotations

from typing import ClassVar

from buildbot.changes.base import ReconfigurablePollingChangeSource
from buildbot.changes.changes import Change
from buildbot.changes.filter import ChangeFilter
from buildbot.process.properties import Properties
from buildbot.schedulers.base import ReconfigurableBaseScheduler
from buildbot.util.state import StateMixin
from packaging.utils import canonicalize_name
from twisted.internet import defer, threads
from twisted.python import log

from ..pipeline.schedulers import KeepsFarmArgs, request_properties
from ..registry.matching import Served, served_targets
from ..registry.packages import Registry
from ..settings import Settings
from .pypifeed import FeedError, NewRelease, PyPIFeed, poll_cycle

CATEGORY = "pypi-release"
WATCHER = "pypi-releases"
SCHEDULER = "pypi-releases"


class PyPIReleaseWatcher(ReconfigurablePollingChangeSource, StateMixin):
    """Polls PyPI's changelog; one change per new release the registry asks for."""

    compare_attrs: ClassVar = (
        *ReconfigurablePollingChangeSource.compare_attrs,
        "pypi_url",
        "registry",
        "interval",
    )
    feed: PyPIFeed | None = None  # made at the first reconfig, kept while the URL is

    def __init__(self, pypi_url: str, registry: Registry, **kwargs):
        kwargs.setdefault("name", WATCHER)
        super().__init__(pypi_url=pypi_url, registry=registry, **kwargs)

    # Buildbot calls these with the constructor's arguments, on the new
    # instance and then on the running one (reconfig): kept as attributes.
    def checkConfig(self, pypi_url, registry, pollInterval=60, pollAtLaunch=False, name=None):
        self.pypi_url, self.registry, self.interval = pypi_url, registry, pollInterval
        super().checkConfig(name=name, pollInterval=pollInterval, pollAtLaunch=pollAtLaunch)

    @defer.inlineCallbacks
    def reconfigService(self, pypi_url, registry, pollInterval=60, pollAtLaunch=False, name=None):
        if self.feed is None or self.feed.base != pypi_url.rstrip("/"):
            self.feed = PyPIFeed(pypi_url)
            self.etags: dict[str, str] = {}
        self.pypi_url, self.registry, self.interval = pypi_url, registry, pollInterval
        # a new dict, never changed in place: a poll running in a thread keeps its own
        self.followed = {n: p for n, p in registry.packages.items() if p.skip is None}
        yield super().reconfigService(
            name=name, pollInterval=pollInterval, pollAtLaunch=pollAtLaunch
        )

    def describe(self) -> str:
        return f"PyPIReleaseWatcher: new releases on {self.pypi_url} every {self.interval} s"

    @defer.inlineCallbacks
    def poll(self):
        feed = self.feed
        assert feed is not None, "poll() before reconfigService()"
        # per index: a farm pointed at another PyPI starts that one afresh
        serial_key = f"last_serial {feed.base}"
        serial = yield self.getState(serial_key, None)
        try:
            if serial is None:
                # First start: what is on PyPI now is built from the registry, not from here.
                last = yield threads.deferToThread(feed.last_serial)
                yield self.setState(serial_key, last)
                log.msg(f"{self.name}: following {self.pypi_url} from serial {last}")
                return
            cycle, etags = yield threads.deferToThread(
                poll_cycle, feed, self.followed, serial, dict(self.etags)
            )
        except FeedError as e:
            # PyPI is down or odd: one line, and the next cycle starts from the same serial
            log.msg(f"{self.name}: poll failed, will retry: {e}")
            return
        announced = 0
        for release in cycle.releases:
            announced += yield self._announce(release)
        self.etags.update(etags)
        if cycle.serial != serial:
            yield self.setState(serial_key, cycle.serial)
            log.msg(
                f"{self.name}: serial {serial} -> {cycle.serial}: {cycle.events} events, "
                f"{cycle.followed} registry packages looked at ({cycle.not_modified} unchanged), "
                f"{announced} new releases"
            )

    @defer.inlineCallbacks
    def _announce(self, release: NewRelease):
        key = f"announced {release.name}"
        seen = yield self.getState(key, [])
        if release.version in seen:
            return 0
        package = self.registry.packages[release.name]
        base = self.pypi_url.rstrip("/")
        yield self.master.data.updates.addChange(
            author="PyPI",
            comments=f"{package.display_name} {release.version} released on PyPI "
            f"(changelog serial {release.serial})",
            revision=release.version,
            category=CATEGORY,
            revlink=f"{base}/project/{release.name}/{release.version}/",
            repository=base,
            project=release.name,
            files=[],
            properties={},
        )
        # Recorded right after its change: a crash in between repeats one release,
        # never loses it.
        yield self.setState(key, [*seen, release.version])
        return 1


class PyPIReleaseScheduler(KeepsFarmArgs, ReconfigurableBaseScheduler):
    """Builds for each `pypi-release` change: every platform and Python its package targets
    that a worker offers."""

    compare_attrs: ClassVar = (
        *ReconfigurableBaseScheduler.compare_attrs,
        "builders",
        "registry",
        "served",
    )

    def __init__(
        self, name: str, builders: dict[str, str], registry: Registry, served: Served, **kwargs
    ):
        super().__init__(
            name=name,
            builderNames=list(builders.values()),
            builders=builders,
            registry=registry,
            served=served,
            **kwargs,
        )
        self._last_changeid = 0

    @defer.inlineCallbacks
    def activate(self):
        yield super().activate()
        if not self.enabled:
            return
        yield self.startConsumingChanges(change_filter=ChangeFilter(category=CATEGORY))
        # under the lock the live changes take too, so none is handled twice
        yield self._change_consumption_lock.run(self._catch_up)

    @defer.inlineCallbacks
    def _catch_up(self):
        last = yield self.getState("last_changeid", None)
        latest = (yield self.master.db.changes.getLatestChangeid()) or 0
        if last is None:  # a new scheduler starts from now
            self._last_changeid = latest
            yield self.setState("last_changeid", latest)
            return
        self._last_changeid = max(self._last_changeid, last)
        for changeid in range(self._last_changeid + 1, latest + 1):
            chdict = yield self.master.db.changes.getChange(changeid)
            if chdict is None or chdict.category != CATEGORY:
                continue
            change = yield Change.fromChdict(self.master, chdict)
            yield self.gotChange(change, True)

    @defer.inlineCallbacks
    def gotChange(self, change, important):
        if change.number <= self._last_changeid:
            return
        yield self._request_builds(change)
        self._last_changeid = change.number
        yield self.setState("last_changeid", change.number)

    @defer.inlineCallbacks
    def _request_builds(self, change):
        package = self.registry.packages.get(canonicalize_name(change.project or ""))
        if package is None or package.skip is not None:
            log.msg(f"{self.name}: change {change.number}: {change.project} is not built here")
            return
        version = change.revision
        cause = f"new release on PyPI: {package.display_name} {version}"
        made = 0
        for platform, python in served_targets(package, self.served or {}):
            builder = self.builders.get(platform)
            if builder is None:
                continue
            props = Properties()
            props.update(
                request_properties(package, platform, python, cause, version_spec=f"=={version}"),
                "PyPI release",
            )
            yield self.addBuildsetForChanges(
                reason=cause,
                changeids=[change.number],
                builderNames=[builder],
                properties=props,
            )
            made += 1
        log.msg(f"{self.name}: {package.name} {version}: {made} builds requested")


def release_watch(
    settings: Settings, builders: dict[str, str], registry: Registry, served: Served
) -> tuple[list, list]:
    """The change sources and schedulers that follow PyPI (none if the interval is 0).

    builders: platform name -> the real builder that builds it.
    """
    if settings.pypi_watch_interval <= 0 or not builders:
        return [], []
    watcher = PyPIReleaseWatcher(
        settings.pypi_url, registry, pollInterval=settings.pypi_watch_interval
    )
    return [watcher], [PyPIReleaseScheduler(SCHEDULER, builders, registry, served)]
