"""Campaign pages: every cascade and rollout, with how far it has come.

/farm/campaigns/       the list, newest first
/farm/campaigns/ID     one campaign: counts, percentages and a row per build
"""

from __future__ import annotations

import html
import time

from twisted.web import resource, server

from ..cascade.campaign import BLOCKED, BUILDING, DONE, FAILED, WAITING, Campaign
from ..cascade.store import CampaignStore

STATES = (DONE, BUILDING, WAITING, BLOCKED, FAILED)
LABELS = {
    DONE: "done",
    BUILDING: "building",
    WAITING: "waiting for parents",
    BLOCKED: "blocked",
    FAILED: "failed",
}
COLOURS = {
    DONE: "#2e7d32",
    BUILDING: "#f9a825",
    WAITING: "#9e9e9e",
    BLOCKED: "#6d4c41",
    FAILED: "#c62828",
}
STYLE = """body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}.bar{display:flex;height:1em;
width:40em;border:1px solid #999}.bar div{height:100%}"""


def progress(campaign: Campaign) -> float:
    total = len(campaign.nodes)
    return 100.0 * campaign.counts()[DONE] / total if total else 100.0


def _page(title: str, body: str) -> bytes:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><p><a href='../../#/'>Buildbot UI</a> · "
        f"<a href='./'>campaigns</a></p><h1>{html.escape(title)}</h1>{body}</body></html>"
    ).encode()


def _bar(campaign: Campaign) -> str:
    counts, total = campaign.counts(), max(1, len(campaign.nodes))
    cells = "".join(
        f"<div title='{LABELS[s]}' style='width:{100 * counts[s] / total:.2f}%;"
        f"background:{COLOURS[s]}'></div>"
        for s in STATES
    )
    return f"<div class='bar'>{cells}</div>"


def _counts(campaign: Campaign) -> str:
    counts, total = campaign.counts(), max(1, len(campaign.nodes))
    return ", ".join(f"{LABELS[s]}: {counts[s]} ({100 * counts[s] / total:.0f}%)" for s in STATES)


def list_page(campaigns: list[Campaign]) -> bytes:
    rows = "".join(
        f"<tr><td><a href='{html.escape(c.id)}'>{html.escape(c.title)}</a></td><td>{c.kind}</td>"
        f"<td>{progress(c):.0f}%</td><td>{_bar(c)}</td><td>{_counts(c)}</td>"
        f"<td>{'finished' if c.finished_at else 'running'}</td></tr>"
        for c in campaigns
    )
    body = (
        "<table><tr><th>campaign</th><th>kind</th><th>progress</th><th></th><th>builds</th>"
        f"<th></th></tr>{rows}</table>"
        if campaigns
        else "<p>No cascade or rollout has run yet.</p>"
    )
    return _page("Cascades and rollouts", body)


def campaign_page(c: Campaign) -> bytes:
    rows = "".join(
        f"<tr><td>{html.escape(n.package)}</td><td>{n.platform}</td><td>{n.python}</td>"
        f"<td style='color:{COLOURS[n.state]}'>{LABELS[n.state]}"
        f"{' by ' + html.escape(n.blocked_by) if n.blocked_by else ''}</td>"
        f"<td>{f'<a href={html.escape(n.build_url, quote=True)}>build</a>' if n.build_url else ''}"
        "</td></tr>"
        for n in sorted(c.nodes.values(), key=lambda n: (STATES.index(n.state), n.package))
    )
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(c.created_at))
    body = (
        f"<p>{html.escape(c.cause)} · started {started} UTC · "
        f"{'finished' if c.finished_at else 'running'}</p>"
        f"<p class='progress'><b>{progress(c):.0f}% done</b> of {len(c.nodes)} builds</p>"
        f"{_bar(c)}<p>{_counts(c)}</p>"
        "<table><tr><th>package</th><th>platform</th><th>Python</th><th>state</th><th></th></tr>"
        f"{rows}</table>"
    )
    return _page(c.title, body)


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
