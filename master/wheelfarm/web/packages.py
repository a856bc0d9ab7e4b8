"""Package pages: what the farm has made of each registry package.

/farm/packages/        every registry package with its status, counts, a filter
/farm/packages/PKG     the matrix version x platform x Python, with links to the
                       builds, the failing step's log, the wheels and build records

Everything renders from the status records (status.py), the campaign records
(blocked targets) and the index's build records of the one package shown.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from twisted.web import resource, server

from ..build.matching import Served
from ..cascade.campaign import BLOCKED
from ..cascade.store import CampaignStore
from ..index.store import Index
from ..index.verify import verifications
from ..registry.packages import Package, Registry
from .status import (
    BUILT,
    CANCELLED_ROW,
    FAILED,
    SKIPPED_ROW,
    STATUS_SERVICE,
    Row,
    StatusRecords,
)

# A package's (and a target's) status, worst first.
PKG_FAILED, PKG_BLOCKED, PKG_PARTIAL, PKG_NOT_BUILT, PKG_BUILT, PKG_SKIPPED = (
    "failed",
    "blocked",
    "partly built",
    "not built",
    "built",
    "skipped",
)
PACKAGE_STATES = (PKG_FAILED, PKG_BLOCKED, PKG_PARTIAL, PKG_NOT_BUILT, PKG_BUILT, PKG_SKIPPED)
# A target no worker offers (platform, Python) and that was never built: it is shown,
# but it counts in no package's status, which is about what this farm can build.
PKG_NOT_OFFERED = "not offered"
COLOURS = {
    PKG_BUILT: "#2e7d32",
    PKG_FAILED: "#c62828",
    PKG_BLOCKED: "#6d4c41",
    PKG_PARTIAL: "#f9a825",
    PKG_NOT_BUILT: "#9e9e9e",
    PKG_SKIPPED: "#bdbdbd",
    PKG_NOT_OFFERED: "#e0e0e0",
    CANCELLED_ROW: "#9e9e9e",
}
STYLE = """body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}
td.cell{color:#fff}td.cell a{color:#fff}.sha{font-family:monospace;font-size:80%}
.count{display:inline-block;margin-right:1em}"""
FILTER_SCRIPT = """<script>
function farmFilter(q){q=q.trim().toLowerCase();
for(const r of document.querySelectorAll('tr[data-name]')){
r.hidden=!!q&&!r.dataset.name.includes(q);}}</script>"""


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
    for row in rows:
        if row.status == CANCELLED_ROW:
            continue  # a cancelled build says nothing about the wheel
        key = (row.platform, row.python)
        if key not in newest or row.finished_at >= newest[key].finished_at:
            newest[key] = row
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


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _page(title: str, body: str, up: str) -> bytes:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{STYLE}</style></head><body><p><a href='{up}#/'>Buildbot UI</a> · "
        f"<a href='{up}farm/packages/'>packages</a> · <a href='{up}farm/campaigns/'>campaigns</a>"
        f" · <a href='{up}simple/'>index</a></p><h1>{_e(title)}</h1>{body}</body></html>"
    ).encode()


PAGE_SIZE = 500  # rows per page: a page of 15,000 rows (and badges) is too much for a browser


def built_count(found: list[Target]) -> str:
    """`3/5`, or `1/1 offered, 24 not offered here` when workers offer only some targets."""
    offered = [t for t in found if t.status != PKG_NOT_OFFERED]
    built = sum(t.status == PKG_BUILT for t in offered)
    if len(offered) == len(found):
        return f"{built}/{len(found)}"
    return f"{built}/{len(offered)} offered, {len(found) - len(offered)} not offered here"


def list_page(
    registry: Registry,
    records: StatusRecords,
    blocked: dict,
    query: str = "",
    status: str = "",
    page: int = 1,
    served: Served | None = None,
) -> bytes:
    up = "../../"
    query = query.strip().lower()
    counts: Counter[str] = Counter()
    lines = []
    matching, first = 0, (max(page, 1) - 1) * PAGE_SIZE
    for package in registry.packages.values():
        found = targets(package, records.rows(package.name), blocked, served)
        state = overall(package, found)
        counts[state] += 1
        if query and query not in package.name or status and state != status:
            continue
        matching += 1
        if not first < matching <= first + PAGE_SIZE:
            continue
        name = _e(package.name)
        lines.append(
            f"<tr data-name='{name}'><td><a href='{quote(package.name)}'>{_e(package.display_name)}"
            f"</a></td><td class='cell' style='background:{COLOURS[state]}'>{state}</td>"
            f"<td>{built_count(found)}</td><td><img alt='badge' "
            f"src='{up}badges/{quote(package.name)}.svg'></td></tr>"
        )
    summary = "".join(
        f"<span class='count'><a href='?status={quote(s)}'>{s}</a>: <b>{counts[s]}</b></span>"
        for s in PACKAGE_STATES
    )
    body = (
        f"<p class='counts'>{len(registry.packages)} packages · {summary}</p>"
        "<form method='get'><input name='q' placeholder='filter by name' autofocus "
        f"value='{_e(query)}' oninput='farmFilter(this.value)'>"
        f"<input type='hidden' name='status' value='{_e(status)}'>"
        "<button>filter</button></form>"
        f"{_pager(query, status, page, first, len(lines), matching)}"
        "<table id='packages'><tr><th>package</th><th>status</th><th>targets built</th>"
        f"<th>badge</th></tr>{''.join(lines)}</table>{FILTER_SCRIPT}"
    )
    return _page("Packages", body, up)


def _pager(query: str, status: str, page: int, first: int, shown: int, matching: int) -> str:
    """Which rows this page shows, with links to the pages before and after."""
    if matching <= PAGE_SIZE and page <= 1:
        return ""

    def link(to: int, text: str) -> str:
        return f"<a href='?{_e(urlencode({'q': query, 'status': status, 'page': to}))}'>{text}</a>"

    parts = [f"rows {first + 1 if shown else 0}-{first + shown} of {matching}"]
    if page > 1:
        parts.append(link(page - 1, "previous"))
    if first + shown < matching:
        parts.append(link(page + 1, "next"))
    return f"<p class='pager'>{' · '.join(parts)}</p>"


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


def _cell(
    target_status: str,
    row: Row | None,
    by: str | None,
    sha: dict[str, str],
    up: str,
    isolated: dict[str, str] | None = None,
    pins: dict[str, list[str]] | None = None,
    verified: dict[str, dict] | None = None,
) -> str:
    colour = COLOURS.get(target_status, "#9e9e9e")
    parts = [target_status if by is None else f"blocked by {_e(by)}"]
    if row is not None and row.status == FAILED and row.step:
        parts[0] = f"failed at step {_e(row.step)}"
    if row is not None:
        parts.append(f"<a href='{_e(row.build_url)}'>build</a>")
        if row.log_url:
            parts.append(f"<a href='{_e(row.log_url)}'>log</a>")
        if row.status == FAILED and row.reason:
            parts.append(f"<small>{_e(row.reason)}</small>")
        if row.wheel and row.status in (BUILT, SKIPPED_ROW):
            project = quote(row.package)
            wheel = quote(row.wheel)
            parts.append(f"<a href='{up}simple/{project}/{wheel}'>{_e(row.wheel)}</a>")
            if row.wheel in sha:
                parts.append(f"<span class='sha'>sha256:{sha[row.wheel]}</span>")
            if isolated and row.wheel in isolated:
                parts.append(f"<span class='isolation'>isolated: {_e(isolated[row.wheel])}</span>")
            if pins and pins.get(row.wheel):  # ABI pins (pins.py) written into its METADATA
                shown = ", ".join(_e(p) for p in pins[row.wheel])
                parts.append(f"<span class='pins'>requires {shown}</span>")
            check = (verified or {}).get(row.wheel)
            if check:  # the latest verify build of this wheel (verify.py)
                said = "reproducible" if check.get("reproducible") else "not reproducible"
                if check.get("differ"):
                    said += ": " + ", ".join(str(d) for d in check["differ"][:5]) + " differ"
                link = check.get("build_url") or ""
                parts.append(f"<a class='verify' href='{_e(link)}'>{_e(said)}</a>")
            parts.append(f"<a href='{up}simple/{project}/{wheel}.json'>build record</a>")
    return (
        f"<td class='cell {target_status.replace(' ', '-')}' style='background:{colour}'>"
        f"{'<br>'.join(parts)}</td>"
    )


def _matrix(package: Package, cells: dict[tuple[str, str], str]) -> str:
    head = "".join(f"<th>Python {_e(py)}</th>" for py in package.pythons)
    body = "".join(
        f"<tr data-platform='{_e(platform)}'><th>{_e(platform)}</th>"
        + "".join(cells.get((platform, py), "<td></td>") for py in package.pythons)
        + "</tr>"
        for platform in package.platforms
    )
    return f"<table class='matrix'><tr><th></th>{head}</tr>{body}</table>"


def _version_key(version: str):
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, Version("0"))


def package_page(
    package: Package,
    records: StatusRecords,
    blocked: dict,
    index: Index | None,
    base_url: str = "",
    served: Served | None = None,
) -> bytes:
    up = "../../"
    rows = records.rows(package.name)
    sha, isolated, pins, verified = {}, {}, {}, {}
    if index is not None:
        wheels = index.cached_records(package.name)
        sha = {r["filename"]: r.get("sha256", "") for r in wheels}
        isolated = {r["filename"]: isolation_text(r) for r in wheels}
        pins = {r["filename"]: r.get("pins") or [] for r in wheels}
        verified = verifications(index.root, package.name)
    found = targets(package, rows, blocked, served)
    state = overall(package, found)
    now = {
        (t.platform, t.python): _cell(
            t.status, t.row, t.blocked_by, sha, up, isolated, pins, verified
        )
        for t in found
    }
    badge = f"{up}badges/{quote(package.name)}.svg"
    info = [f"<img alt='badge' src='{badge}'>"]
    if package.skip:
        info.append(f"skipped: {_e(package.skip)}")
    if package.maintainers:
        info.append("maintainers: " + ", ".join(_e(m) for m in package.maintainers))
    info.append(f"<a href='{up}simple/{quote(package.name)}/'>wheels in the index</a>")
    body = (
        f"<p>{' · '.join(info)}</p><p class='status'>status: <b>{state}</b> "
        f"(built {built_count(found)})</p>"
        f"<h2>Now</h2>{_matrix(package, now)}"
    )
    by_version: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: r.finished_at):
        status = {BUILT: PKG_BUILT, SKIPPED_ROW: PKG_BUILT, FAILED: PKG_FAILED}
        by_version.setdefault(row.version, {})[(row.platform, row.python)] = _cell(
            status.get(row.status, row.status), row, None, sha, up, isolated, pins, verified
        )
    for version in sorted(by_version, key=_version_key, reverse=True):
        title = f"version {version}" if version else "version not resolved"
        body += f"<h2>{_e(title)}</h2>{_matrix(package, by_version[version])}"
    if not rows:
        body += "<p>No build of this package has finished yet.</p>"
    page = f"{base_url}farm/packages/{quote(package.name)}"
    snippet = f"[![wheelfarm]({base_url}badges/{quote(package.name)}.svg)]({page})"
    body += f"<h2>Badge</h2><p>For a README: <code>{_e(snippet)}</code></p>"
    return _page(package.display_name, body, up)


class PackagePages(resource.Resource):
    """/farm/packages/ and /farm/packages/PKG."""

    def __init__(
        self,
        registry: Registry,
        records: Callable[[], StatusRecords],
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
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return list_page(
            self.registry,
            self.records(),
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
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        pages = self.pages
        blocked = blocked_targets(pages.store)
        return package_page(
            package, pages.records(), blocked, pages.index, pages.base_url, pages.served
        )


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

    def records() -> StatusRecords:
        status = service.master.service_manager.namedServices.get(STATUS_SERVICE)
        return status.records if status is not None and status.records else StatusRecords()

    return PackagePages(
        registry or Registry(Path(), {}),
        records,
        campaigns,
        Index(index_dir) if index_dir else None,
        base_url,
        served,
    )
