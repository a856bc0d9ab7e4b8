"""Package pages: what the farm has made of each registry package.

/farm/packages/        every registry package with its status, counts, a filter
/farm/packages/PKG     the matrix version x platform x Python, with links to the
                       builds, the failing step's log, the wheels and build records

Everything renders from the status records (status.py), the campaign records
(blocked targets) and the index's build records of the one package shown; this module
works out what each page shows, templates/packages.html and package.html how.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from twisted.web import resource, server

from ..cascade.campaign import BLOCKED
from ..cascade.store import CampaignStore
from ..index.store import Index
from ..index.verify import verifications
from ..registry.matching import Served
from ..registry.packages import Package, Registry
from ..state.status import (
    BUILT,
    CANCELLED_ROW,
    FAILED,
    SKIPPED_ROW,
    STATUS_SERVICE,
    Row,
    StatusRecords,
)
from .render import render
from .status_colours import (
    PACKAGE_STATES,
    PKG_BLOCKED,
    PKG_BUILT,
    PKG_FAILED,
    PKG_NOT_BUILT,
    PKG_NOT_OFFERED,
    PKG_PARTIAL,
    PKG_SKIPPED,
)


@dataclass
class Target:
    platform: str
    python: str
    status: str  # a PACKAGE_STATES value
    row: Row | None = None  # the newest build of it
    blocked_by: str | None = None


def blocked_targets(store: CampaignStore) -> dict[tuple[str, str, str], tuple[str, float]]:
    """(package, platform, python) -> what blocks it and since when (the campaign's
    start), from the newest campaign naming it."""
    blocked: dict[tuple[str, str, str], tuple[str, float]] = {}
    seen: set[tuple[str, str, str]] = set()
    for campaign in store.all():  # newest first
        for node in campaign.nodes.values():
            key = (canonicalize_name(node.package), node.platform, node.python)
            if key in seen:
                continue
            seen.add(key)
            if node.state == BLOCKED and node.blocked_by:
                blocked[key] = (node.blocked_by, campaign.created_at)
    return blocked


def targets(
    package: Package, rows: list[Row], blocked: dict, served: Served | None = None
) -> list[Target]:
    """Every (platform, Python) of the package with its status; with `served` (the
    Pythons each platform's workers offer), never-built targets nobody offers are
    PKG_NOT_OFFERED."""
    newest: dict[tuple[str, str], Row] = {}
    for each in rows:
        if each.status == CANCELLED_ROW:
            continue  # a cancelled build says nothing about the wheel
        key = (each.platform, each.python)
        if key not in newest or each.finished_at >= newest[key].finished_at:
            newest[key] = each
    result = []
    for platform in package.platforms:
        for python in package.pythons:
            row = newest.get((platform, python))
            by, since = blocked.get((package.name, platform, python), (None, 0.0))
            if row is not None and row.finished_at > since:
                by = None  # built (or failed) on its own since the campaign blocked it
            if package.skip is not None:
                status = PKG_SKIPPED
            elif by is not None:
                status = PKG_BLOCKED
            elif row is None and served is not None and python not in served.get(platform, ()):
                status = PKG_NOT_OFFERED
            elif row is None:
                status = PKG_NOT_BUILT
            elif row.status == FAILED:
                status = PKG_FAILED
            else:  # built, or skipped because the wheel was already there
                status = PKG_BUILT
            result.append(Target(platform, python, status, row, by))
    return result


def overall(package: Package, found: list[Target]) -> str:
    if package.skip is not None:
        return PKG_SKIPPED
    states = {t.status for t in found} - {PKG_NOT_OFFERED}
    for status in (PKG_FAILED, PKG_BLOCKED):
        if status in states:
            return status
    if states == {PKG_BUILT}:
        return PKG_BUILT
    return PKG_PARTIAL if PKG_BUILT in states else PKG_NOT_BUILT


def package_status(
    package: Package,
    records: StatusRecords,
    blocked: dict,
    platform: str | None = None,
    served: Served | None = None,
) -> str:
    found = targets(package, records.rows(package.name), blocked, served)
    if platform is not None:
        found = [t for t in found if t.platform == platform]
    return overall(package, found)


PAGE_SIZE = 500  # rows per page: a page of 15,000 rows (and badges) is too much for a browser
UP = "../../"  # from /farm/packages/ and /farm/packages/PKG to the web root


def built_count(found: list[Target]) -> str:
    """`3/5`, or `1/1 offered, 24 not offered here` when workers offer only some targets."""
    offered = [t for t in found if t.status != PKG_NOT_OFFERED]
    built = sum(t.status == PKG_BUILT for t in offered)
    if len(offered) == len(found):
        return f"{built}/{len(found)}"
    return f"{built}/{len(offered)} offered, {len(found) - len(offered)} not offered here"


@dataclass
class Listed:
    """A row of the package list."""

    name: str
    display_name: str
    status: str
    built: str


@dataclass
class Pager:
    """Which rows a page of the list shows, with the queries of the pages around it."""

    first: int
    last: int
    matching: int
    previous: str | None
    next: str | None


def list_page(
    registry: Registry,
    records: StatusRecords,
    blocked: dict,
    query: str = "",
    status: str = "",
    page: int = 1,
    served: Served | None = None,
) -> bytes:
    query = query.strip().lower()
    counts: Counter[str] = Counter()
    listed: list[Listed] = []
    matching, first = 0, (max(page, 1) - 1) * PAGE_SIZE
    for package in registry.packages.values():
        found = targets(package, records.rows(package.name), blocked, served)
        state = overall(package, found)
        counts[state] += 1
        if query and query not in package.name or status and state != status:
            continue
        matching += 1
        if first < matching <= first + PAGE_SIZE:
            listed.append(Listed(package.name, package.display_name, state, built_count(found)))
    return render(
        "packages.html",
        title="Packages",
        up=UP,
        total=len(registry.packages),
        states=PACKAGE_STATES,
        counts=counts,
        query=query,
        status=status,
        pager=_pager(query, status, page, first, len(listed), matching),
        listed=listed,
    )


def _pager(
    query: str, status: str, page: int, first: int, shown: int, matching: int
) -> Pager | None:
    if matching <= PAGE_SIZE and page <= 1:
        return None

    def to(number: int) -> str:
        return urlencode({"q": query, "status": status, "page": number})

    return Pager(
        first + 1 if shown else 0,
        first + shown,
        matching,
        to(page - 1) if page > 1 else None,
        to(page + 1) if first + shown < matching else None,
    )


def isolation_text(record: dict) -> str:
    """How a wheel's build ran the package's code, from its build record."""
    steps = record.get("isolation")
    # built in another architecture's image, under QEMU
    emulated = ", emulated (QEMU)" if record.get("emulated") else ""
    if not isinstance(steps, dict) or not steps:
        return "not recorded" + emulated
    kinds = sorted({str(kind) for kind in steps.values()})
    if len(kinds) == 1:
        return kinds[0] + emulated
    return ", ".join(f"{step}: {kind}" for step, kind in sorted(steps.items())) + emulated


def verify_text(check: dict) -> str:
    """What the latest verify build of a wheel said (index/verify.py)."""
    said = "reproducible" if check.get("reproducible") else "not reproducible"
    if check.get("differ"):
        said += ": " + ", ".join(str(d) for d in check["differ"][:5]) + " differ"
    return said


@dataclass
class Wheel:
    """What the index knows of a wheel a cell shows."""

    project: str
    filename: str
    sha256: str | None = None
    isolation: str | None = None
    pins: list[str] = field(default_factory=list)  # ABI pins written into its METADATA
    verified: str | None = None  # what its latest verify build said
    verify_url: str = ""


@dataclass
class Cell:
    """A target in a matrix: its status, its newest build and the wheel that made."""

    status: str
    text: str
    row: Row | None = None
    reason: str | None = None  # a failed build's one-line summary
    wheel: Wheel | None = None


class WheelFacts:
    """The index's records of one package's wheels, read once per page."""

    def __init__(self, index: Index | None, package: str) -> None:
        self.records: dict[str, dict] = {}
        self.verified: dict[str, dict] = {}
        if index is not None:
            self.records = {r["filename"]: r for r in index.cached_records(package)}
            self.verified = verifications(index.root, package)

    def wheel(self, row: Row) -> Wheel | None:
        if not row.wheel or row.status not in (BUILT, SKIPPED_ROW):
            return None
        wheel = Wheel(row.package, row.wheel)
        record = self.records.get(row.wheel)
        if record is not None:
            wheel.sha256 = record.get("sha256", "")
            wheel.isolation = isolation_text(record)
            wheel.pins = list(record.get("pins") or [])
        check = self.verified.get(row.wheel)
        if check:
            wheel.verified, wheel.verify_url = verify_text(check), check.get("build_url") or ""
        return wheel


def cell(status: str, row: Row | None, by: str | None, facts: WheelFacts) -> Cell:
    text = status if by is None else f"blocked by {by}"
    if row is None:
        return Cell(status, text)
    failed = row.status == FAILED
    if failed and row.step:
        text = f"failed at step {row.step}"
    reason = row.reason if failed else None
    return Cell(status, text, row, reason, facts.wheel(row))


def _version_key(version: str):
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, Version("0"))


ROW_STATUS = {BUILT: PKG_BUILT, SKIPPED_ROW: PKG_BUILT, FAILED: PKG_FAILED}


def package_page(
    package: Package,
    records: StatusRecords,
    blocked: dict,
    index: Index | None,
    base_url: str = "",
    served: Served | None = None,
) -> bytes:
    rows = records.rows(package.name)
    facts = WheelFacts(index, package.name)
    found = targets(package, rows, blocked, served)
    now = {(t.platform, t.python): cell(t.status, t.row, t.blocked_by, facts) for t in found}
    by_version: dict[str, dict[tuple[str, str], Cell]] = {}
    for row in sorted(rows, key=lambda r: r.finished_at):
        status = ROW_STATUS.get(row.status, row.status)
        by_version.setdefault(row.version, {})[(row.platform, row.python)] = cell(
            status, row, None, facts
        )
    page = f"{base_url}farm/packages/{quote(package.name)}"
    return render(
        "package.html",
        title=package.display_name,
        up=UP,
        package=package,
        status=overall(package, found),
        built=built_count(found),
        now=now,
        versions=[(v, by_version[v]) for v in sorted(by_version, key=_version_key, reverse=True)],
        snippet=f"[![wheelfarm]({base_url}badges/{quote(package.name)}.svg)]({page})",
    )


class PackagePages(resource.Resource):
    """/farm/packages/ and /farm/packages/PKG."""

    def __init__(
        self,
        registry: Registry,
        records: Callable[[], StatusRecords | None],
        store: CampaignStore,
        index: Index | None,
        base_url: str = "",
        served: Served | None = None,
    ) -> None:
        super().__init__()
        self.registry, self.records, self.store, self.index = registry, records, store, index
        self.base_url = base_url  # the farm's public URL, for badge snippets
        self.served = served  # what the workers offer: the statuses count only that

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:
        if path == b"":
            return self
        return PackageDetail(self, path.decode("utf-8", "replace"))

    def render_GET(self, request: server.Request) -> bytes:
        if not request.path.endswith(b"/"):
            request.redirect(request.path + b"/")
            return b""
        args = {
            k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace")
            for k, v in request.args.items()
        }
        records = self.records()
        if records is None:
            return loading(request)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return list_page(
            self.registry,
            records,
            blocked_targets(self.store),
            args.get("q", ""),
            args.get("status", ""),
            int(args["page"]) if args.get("page", "").isdigit() else 1,
            self.served,
        )


class PackageDetail(resource.Resource):
    isLeaf = True

    def __init__(self, pages: PackagePages, name: str) -> None:
        super().__init__()
        self.pages, self.name = pages, name

    def render_GET(self, request: server.Request) -> bytes:
        package = self.pages.registry.packages.get(canonicalize_name(self.name))
        if package is None or any(request.postpath):  # /farm/packages/six/x is no page
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return f"{self.name!r} is not a package of the registry\n".encode()
        pages = self.pages
        records = pages.records()
        if records is None:
            return loading(request)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        blocked = blocked_targets(pages.store)
        return package_page(package, records, blocked, pages.index, pages.base_url, pages.served)


def loading(request: server.Request) -> bytes:
    """503 for the seconds after a start in which a big farm's status rows are read."""
    request.setResponseCode(503)
    request.setHeader(b"retry-after", b"5")
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return b"the farm's status records are being read after a start: try again in a moment\n"


def package_pages(
    service,
    registry: Registry | None = None,
    campaigns: CampaignStore | None = None,
    index_dir: str = "",
    base_url: str = "",
    served: Served | None = None,
) -> PackagePages:
    """The pages of a www service; the status records are the status service's."""
    assert campaigns is not None, "the pages need the campaign store"

    def records() -> StatusRecords | None:
        """None while the status service reads the rows after a start."""
        status = service.master.service_manager.namedServices.get(STATUS_SERVICE)
        if status is None or status.records is None:
            return StatusRecords()
        return status.records if status.loaded else None

    return PackagePages(
        registry or Registry(Path(), {}),
        records,
        campaigns,
        Index(index_dir) if index_dir else None,
        base_url,
        served,
    )
