"""Campaign pages: every cascade and rollout, with how far it has come.

/farm/campaigns/       the list, newest first
/farm/campaigns/ID     one campaign: counts, percentages and a row per build
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from twisted.web import resource, server

from ..cascade.campaign import DONE, Campaign
from ..cascade.store import CampaignStore
from .render import render
from .status_colours import CAMPAIGN_STATES, label

UP = "../../"  # from /farm/campaigns/ and /farm/campaigns/ID to the web root


def progress(campaign: Campaign) -> float:
    total = len(campaign.nodes)
    return 100.0 * campaign.counts()[DONE] / total if total else 100.0


@dataclass
class Share:
    """How many of a campaign's builds are in one state: a part of its bar."""

    state: str
    label: str
    count: int
    percent: float


def shares(campaign: Campaign) -> list[Share]:
    counts, total = campaign.counts(), max(1, len(campaign.nodes))
    return [Share(s, label(s), counts[s], 100 * counts[s] / total) for s in CAMPAIGN_STATES]


def list_page(campaigns: list[Campaign]) -> bytes:
    return render(
        "campaigns.html",
        title="Cascades and rollouts",
        up=UP,
        campaigns=[(c, progress(c), shares(c)) for c in campaigns],
    )


def campaign_page(c: Campaign) -> bytes:
    return render(
        "campaign.html",
        title=c.title,
        up=UP,
        campaign=c,
        started=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(c.created_at)),
        progress=progress(c),
        shares=shares(c),
        nodes=sorted(c.nodes.values(), key=lambda n: (CAMPAIGN_STATES.index(n.state), n.package)),
    )


def known_name(name: str) -> bool:
    """Could `name` be a file name the farm made? Anything else is a 404 without a
    look at the disk (a NUL, a slash, a dot file, a name the filesystem refuses)."""
    return (
        0 < len(name.encode("utf-8", "replace")) <= 250  # NAME_MAX 255, less ".json"
        and not name.startswith(".")
        and not any(c in name for c in "/\\\0")
    )


def not_found(message: str) -> resource.Resource:
    """A plain-text 404 page."""
    page = resource.Resource()
    page.isLeaf = True

    def render(request: server.Request) -> bytes:
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return message.encode() + b"\n"

    page.render = render  # every method
    return page


class CampaignPages(resource.Resource):
    def __init__(self, store: CampaignStore) -> None:
        super().__init__()
        self.store = store

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:
        if path in (b"", b"campaigns"):
            return self
        try:
            return CampaignDetail(self.store, path.decode())
        except UnicodeDecodeError:  # never a campaign's name
            return not_found("no such campaign")

    def render_GET(self, request: server.Request) -> bytes:
        if not request.path.endswith(b"/"):
            request.redirect(request.path + b"/")
            return b""
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return list_page(self.store.all())


class CampaignDetail(resource.Resource):
    isLeaf = True

    def __init__(self, store: CampaignStore, campaign_id: str) -> None:
        super().__init__()
        self.store, self.campaign_id = store, campaign_id

    def render_GET(self, request: server.Request) -> bytes:
        campaign = self.store.load(self.campaign_id) if known_name(self.campaign_id) else None
        if campaign is None or any(request.postpath):
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"no such campaign"
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return campaign_page(campaign)
