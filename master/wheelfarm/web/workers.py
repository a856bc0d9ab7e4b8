"""/farm/workers: the farm's workers as declared, whether they are connected, and the
coverage warnings (idle workers, platforms nobody builds on), next to the campaign pages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from buildbot.util.service import BuildbotService
from twisted.internet import defer
from twisted.python import log
from twisted.web import resource, server

from ..pipeline.transfer import free_bytes, megabytes
from ..registry.matching import in_downtime
from ..registry.workers import DAYS, Downtime, WorkerEntry
from .render import render


def index_space(index_dir: str, min_free_bytes: int) -> str | None:
    """A warning when the index's filesystem has less free than uploads need."""
    if not index_dir:
        return None
    free = free_bytes(Path(index_dir))
    if free >= min_free_bytes:
        return None
    return (
        f"the index ({index_dir}) has {megabytes(free)} free, under min_free_bytes "
        f"({megabytes(min_free_bytes)}): every upload is refused until there is room"
    )


def clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def describe(window: Downtime) -> str:
    days = "every day" if len(window.days) == len(DAYS) else ", ".join(DAYS[d] for d in window.days)
    return f"{days} {clock(window.start)}-{clock(window.end)} UTC"


HEADINGS = ("worker", "owner", "platform", "Python", "max builds", "downtime", "state")


def workers_page(
    entries: list[WorkerEntry], connected: set[str], warnings: list[str], now: datetime
) -> bytes:
    def row(e: WorkerEntry) -> tuple[str, ...]:
        state = "connected" if e.name in connected else "not connected"
        if in_downtime(e, now):
            state += ", in downtime: takes no new builds"
        downtime = "; ".join(describe(w) for w in e.downtime) or "none"
        return (
            e.name,
            e.owner,
            e.platform,
            ", ".join(e.pythons),
            str(e.max_builds),
            downtime,
            state,
        )

    return render(
        "workers.html",
        title="Workers",
        up="../",  # from /farm/workers to the web root
        headings=HEADINGS,
        rows=[row(e) for e in sorted(entries, key=lambda e: (e.platform, e.name))],
        warnings=warnings,
    )


class WorkersPage(resource.Resource):
    isLeaf = True
    index_dir, min_free_bytes = "", 0

    def __init__(self, service: BuildbotService, entries: list[WorkerEntry], warnings: list[str]):
        super().__init__()
        self.service, self.entries, self.warnings = service, entries, warnings

    def render_GET(self, request: server.Request):
        if any(request.postpath):  # /farm/workers/NAME: no such page
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"no such page\n"
        d = defer.ensureDeferred(self._render(request))
        d.addErrback(self._failed, request)
        return server.NOT_DONE_YET

    async def _render(self, request: server.Request) -> None:
        workers = await self.service.master.data.get(("workers",))
        connected = {w["name"] for w in workers if w["connected_to"]}
        space = index_space(self.index_dir, self.min_free_bytes)
        warnings = [space, *self.warnings] if space else self.warnings
        page = workers_page(self.entries, connected, warnings, datetime.now(UTC))
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.write(page)
        request.finish()

    def _failed(self, failure, request: server.Request) -> None:
        log.err(failure, "wheelfarm: /farm/workers")
        request.setResponseCode(500)
        request.finish()
