"""Following new PyPI releases of registry packages: the feed, and which versions to build.

One cycle costs one XML-RPC call when nothing happened on PyPI
(`changelog_last_serial`). Otherwise the changelog since the last serial is read
(`changelog_since_serial`, every project's events in one answer), and only the
registry packages named there are looked at, each with one conditional request
to its JSON API (`If-None-Match`: an unchanged project answers 304 and no body).
So the cost grows with PyPI's activity, not with the size of the registry.

This module is plain blocking Python (the master runs it in a thread, the
benchmark calls it directly); the Buildbot change source and scheduler built on
it are in pypiwatch.py.
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import requests
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..registry.packages import Package

# Changelog actions after which a version may have become buildable: PyPI writes
# "add source file NAME-1.0.tar.gz" when an sdist is uploaded.
FOLLOWED_ACTIONS = ("new release", "add source file", "unyank release")


class FeedError(Exception):
    """PyPI answered something the watcher cannot use; the cycle is retried later."""


@dataclass(frozen=True)
class Event:
    name: str  # canonical
    version: str | None
    action: str
    serial: int


@dataclass(frozen=True)
class NewRelease:
    name: str  # canonical
    version: str  # as PyPI spells it
    serial: int  # of the changelog event that announced it


@dataclass
class Cycle:
    """What one poll found. `etags` are to be kept only once the releases are recorded."""

    serial: int
    releases: list[NewRelease] = field(default_factory=list)
    events: int = 0
    followed: int = 0  # registry packages whose JSON was asked for
    not_modified: int = 0  # of those, answered 304


class PyPIFeed:
    """PyPI's changelog (XML-RPC at /pypi) and its per-project JSON API, over one session."""

    def __init__(self, pypi_url: str, session: requests.Session | None = None, timeout=60):
        self.base = pypi_url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout
        self.requests = 0
        self.bytes_received = 0

    def _call(self, method: str, *params):
        body = xmlrpc.client.dumps(params, method).encode()
        try:
            r = self.session.post(
                f"{self.base}/pypi",
                data=body,
                headers={"Content-Type": "text/xml"},
                timeout=self.timeout,
            )
        except requests.RequestException as e:
            raise FeedError(f"{method}: cannot reach {self.base}/pypi: {e}") from e
        self._count(r)
        if r.status_code != 200:
            raise FeedError(f"{method}: {self.base}/pypi answered HTTP {r.status_code}")
        try:
            (result,), _ = xmlrpc.client.loads(r.content)
        except (xmlrpc.client.Fault, ValueError, xmlrpc.client.ResponseError) as e:
            raise FeedError(f"{method}: {e}") from e
        return result

    def _count(self, r: requests.Response) -> None:
        self.requests += 1
        self.bytes_received += len(r.content)

    def last_serial(self) -> int:
        return int(self._call("changelog_last_serial"))

    def events_since(self, serial: int) -> list[Event]:
        events = []
        for row in self._call("changelog_since_serial", serial):
            name, version, _when, action, event_serial = row
            events.append(Event(canonicalize_name(name), version, action, int(event_serial)))
        return events

    def project(self, name: str, etag: str | None) -> tuple[dict | None, str | None]:
        """The project's JSON, or None if unchanged since `etag`; and its new ETag."""
        url = f"{self.base}/pypi/{name}/json"
        headers = {"Accept": "application/json"}
        if etag:
            headers["If-None-Match"] = etag
        try:
            r = self.session.get(url, headers=headers, timeout=self.timeout)
        except requests.RequestException as e:
            raise FeedError(f"cannot reach {url}: {e}") from e
        self._count(r)
        if r.status_code == 304:
            return None, etag
        if r.status_code == 404:  # removed since the event: nothing to build
            return {"releases": {}}, None
        if r.status_code != 200:
            raise FeedError(f"{url} answered HTTP {r.status_code}")
        try:
            return r.json(), r.headers.get("ETag")
        except ValueError as e:
            raise FeedError(f"{url}: not JSON: {e}") from e


def _version(text: str | None) -> Version | None:
    try:
        return Version(text) if text else None
    except InvalidVersion:
        return None


def buildable_versions(package: Package, releases: Mapping[str, list[dict]]) -> dict[Version, str]:
    """The versions the registry entry asks for, among `releases` (the JSON API's).

    A version counts if it has a non-yanked sdist, is not a pre-release unless
    the entry wants them, and matches the entry's specifier; with `latest`,
    only the newest such version counts. Keys are parsed, values as PyPI spells them.
    """
    found: dict[Version, str] = {}
    for text, files in releases.items():
        version = _version(text)
        if version is None or (version.is_prerelease and not package.prereleases):
            continue
        if not any(f.get("packagetype") == "sdist" and not f.get("yanked") for f in files):
            continue
        if package.versions is not None and not package.versions.contains(
            version, prereleases=package.prereleases
        ):
            continue
        found[version] = text
    if package.versions is None and found:
        newest = max(found)
        return {newest: found[newest]}
    return found


def select_new(
    package: Package, releases: Mapping[str, list[dict]], touched: Iterable[str]
) -> list[str]:
    """Of the versions the changelog just named (`touched`), those to build, oldest first.

    Only versions with fresh events are candidates, so that a package's older
    releases (built when it joined the registry) are never requested again.
    """
    wanted = buildable_versions(package, releases)
    named = {v for v in map(_version, touched) if v is not None}
    return [wanted[v] for v in sorted(wanted) if v in named]


def poll_cycle(
    feed: PyPIFeed,
    packages: Mapping[str, Package],
    serial: int,
    etags: dict[str, str],
) -> tuple[Cycle, dict[str, str]]:
    """One poll: the changelog since `serial`, then the touched registry packages.

    `packages` are the followed registry entries by canonical name. `etags` is
    read, not changed: the new ETags are returned, to be kept once the releases
    found are recorded (a cycle that fails half-way must not leave an ETag that
    would hide a release next time).
    """
    last = feed.last_serial()
    if last < serial:
        # PyPI's serial never goes back: this index was replaced or reset, so
        # follow it from its present, as on a first start
        return Cycle(serial=last), {}
    cycle = Cycle(serial=serial)
    touched: dict[str, dict[str, int]] = {}  # name -> version -> serial of its event
    while cycle.serial < last:
        events = feed.events_since(cycle.serial)
        if not events:
            break
        for e in events:
            cycle.events += 1
            cycle.serial = max(cycle.serial, e.serial)
            if e.name in packages and e.version and e.action.startswith(FOLLOWED_ACTIONS):
                touched.setdefault(e.name, {}).setdefault(e.version, e.serial)
    new_etags: dict[str, str] = {}
    for name, versions in touched.items():
        cycle.followed += 1
        data, etag = feed.project(name, etags.get(name))
        if etag:
            new_etags[name] = etag
        if data is None:
            cycle.not_modified += 1
            continue
        serials = {_version(v): s for v, s in versions.items()}
        for version in select_new(packages[name], data.get("releases") or {}, versions):
            cycle.releases.append(NewRelease(name, version, serials[_version(version)]))
    return cycle, new_etags
