"""Picking a campaign up again after its orchestrating build was interrupted.

Buildbot already re-queues top-level builds a master's end interrupts: a SIGKILLed
master's builds end RETRY at the next start (its housekeeping unclaims their requests),
and a stopped master ends them RETRY itself. What it does not know is what a campaign
had done: the orchestrating request runs again from its first step, and the builds it
had triggered either still run (re-queued after a SIGKILL) or ended CANCELLED (a
`buildbot stop` cancels builds someone waits for). So the new run reads the campaign
record the interrupted run left, and the database's word on each build it had asked
for, and carries on from there: no node is built twice and none is dropped.
"""

from __future__ import annotations

from buildbot.data import resultspec
from buildbot.process.results import CANCELLED, RETRY, SKIPPED, SUCCESS, WARNINGS
from twisted.internet import defer

from .campaign import BUILDING, DONE, FAILED, WAITING, Campaign, node_key
from .scheduler import campaign_scheduler

OK = (SUCCESS, WARNINGS, SKIPPED)
INTERRUPTED = (CANCELLED, RETRY)  # what a master's end leaves on a waited-for build


@defer.inlineCallbacks
def triggered_requests(master, orchestrate_brid: int, current_buildid: int):
    """(campaign id, node key) -> the newest build request the earlier runs of this
    orchestrating request triggered for it."""
    builds = yield master.db.builds.getBuilds(buildrequestid=orchestrate_brid)
    earlier = [b.id for b in builds if b.id != current_buildid]
    if not earlier:
        return {}
    spec = resultspec.ResultSpec(filters=[resultspec.Filter("parent_buildid", "eq", earlier)])
    buildsets = yield master.db.buildsets.getBuildsets(resultSpec=spec)
    found = {}
    for bs in sorted(buildsets, key=lambda bs: bs.bsid):
        props = yield master.db.buildsets.getBuildsetProperties(bs.bsid)
        value = {name: v[0] for name, v in props.items()}
        if "campaign" not in value:
            continue
        key = node_key(value["package"], value["platform"], value["python"])
        for request in (yield master.db.buildrequests.getBuildRequests(bsid=bs.bsid)):
            found[(value["campaign"], key)] = request
    return found


def settle(campaign: Campaign, requests: dict) -> dict[str, int]:
    """Set each node's state from what its last request became; returns the nodes
    whose request is still to finish (node key -> build request id)."""
    awaiting: dict[str, int] = {}
    for key, node in campaign.nodes.items():
        request = requests.get((campaign.id, key))
        if request is None:
            if node.state == BUILDING:  # its request never reached the database
                node.state = WAITING
            continue
        if not request.complete:
            node.state = BUILDING  # re-queued by Buildbot, or still queued: wait for it
            awaiting[key] = request.buildrequestid
        elif request.results in OK:
            node.state = DONE
        elif request.results in INTERRUPTED:
            node.state = WAITING  # cut short by the master's end: built again, once
        else:
            node.state = FAILED
    campaign_scheduler(campaign)  # what the failures block, from the new states
    campaign.finished_at = None
    return awaiting


@defer.inlineCallbacks
def request_result(master, brid: int):
    """Wait until build request `brid` is complete; its results."""

    @defer.inlineCallbacks
    def complete():
        request = yield master.db.buildrequests.getBuildRequest(brid)
        return request.complete

    yield master.mq.waitUntilEvent(("buildrequests", str(brid), "complete"), complete)
    request = yield master.db.buildrequests.getBuildRequest(brid)
    return request.results
