"""The farm's URL tree on the master's web server, in one place.

/simple/               the index (index/serve.py)
/farm/campaigns/       campaign pages (campaigns.py)
/farm/packages/        package pages (packages.py)
/farm/workers          the workers page (workers.py)
/badge/                badges (badges.py)

Each top-level child is a `WwwChild` service: it mounts its resource on Buildbot's
web server and follows reconfigs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from buildbot import config
from buildbot.util.service import BuildbotService
from twisted.internet import defer
from twisted.python import log
from twisted.web import resource

from ..buildbot_internals import www_root
from ..cascade.store import CampaignStore
from ..index.serve import SimpleIndexResource
from ..index.store import Index
from ..registry.coverage import coverage_lines
from ..registry.packages import Registry
from ..registry.workers import WorkerEntry
from .campaigns import CampaignPages
from .packages import package_pages
from .workers import WorkersPage


class WwwChild(BuildbotService):
    """Puts a resource at /NAME/ of the master's web server.

    c['services'] is reconfigured before the www service, so on the first start
    the site does not exist yet; its root will be the base UI plugin's resource,
    which exists from the start and stays the root across reconfigs.
    """

    child: bytes = b""
    _resource: resource.Resource | None = None

    def make_resource(self, *args: Any, **kwargs: Any) -> resource.Resource:
        raise NotImplementedError

    def reconfigService(self, **kwargs):
        self._detach()
        self._resource = self.make_resource(**kwargs)
        self._attach()
        log.msg(f"wheelfarm: serving /{self.child.decode()}/")

    @defer.inlineCallbacks
    def startService(self):
        yield super().startService()
        self._attach()

    def stopService(self):
        self._detach()
        return super().stopService()

    def _www_root(self) -> resource.Resource | None:
        www = getattr(getattr(self, "master", None), "www", None)
        return None if www is None else www_root(www)

    def _attach(self) -> None:
        root = self._www_root()
        if root is not None and self._resource is not None:
            root.putChild(self.child, self._resource)

    def _detach(self) -> None:
        root = self._www_root()
        if root is None or self._resource is None:
            return
        if root.children.get(self.child) is self._resource:
            root.delEntity(self.child)


class IndexService(WwwChild):
    """Serves the index at /simple/ on the master's web server (the UI's port)."""

    child = b"simple"

    def checkConfig(self, index_dir: str | Path = "") -> None:
        if not index_dir:
            config.error("IndexService: index_dir is required")

    def make_resource(self, index_dir: str | Path = "") -> resource.Resource:
        return SimpleIndexResource(Index(Path(index_dir)))


def farm_services(
    entries: list[WorkerEntry],
    campaigns: CampaignStore,
    registry: Registry,
    min_free_bytes: int = 0,
    **pages,
) -> list[BuildbotService]:
    """The /farm/ pages; logs the coverage warnings."""
    warnings = coverage_lines(registry, entries)
    for line in warnings:
        log.msg(f"wheelfarm: WARNING: {line}")
    return [
        FarmPages(
            name="wheelfarm-pages",
            campaigns=campaigns,
            workers=list(entries),
            warnings=warnings,
            registry=registry,
            min_free_bytes=min_free_bytes,
            **pages,  # what the package pages need
        ),
    ]


class FarmPages(WwwChild):
    """/farm/: the campaign, package and workers pages, from one service and one reconfig
    (separate services start in no fixed order)."""

    child = b"farm"

    def make_resource(
        self,
        campaigns: CampaignStore | None = None,
        workers: list[WorkerEntry] | None = None,
        warnings: list[str] | None = None,
        min_free_bytes: int = 0,
        **pages,
    ) -> resource.Resource:
        farm = resource.Resource()
        assert campaigns is not None
        farm.putChild(b"campaigns", CampaignPages(campaigns))
        farm.putChild(b"packages", package_pages(self, campaigns=campaigns, **pages))
        page = WorkersPage(self, workers or [], warnings or [])
        page.index_dir, page.min_free_bytes = pages.get("index_dir") or "", min_free_bytes
        farm.putChild(b"workers", page)
        return farm
