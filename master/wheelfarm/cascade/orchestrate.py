"""The orchestrating build: a Buildbot step on the master's own worker that drives
campaigns, starting each node's build through its platform's Triggerable.

Campaigns hold no volunteer's slot: the orchestrator is a local worker of the master.
"""

from __future__ import annotations

import time
from collections import deque

from buildbot.plugins import util
from buildbot.process import buildstep
from buildbot.process.properties import Properties
from buildbot.process.results import FAILURE, SKIPPED, SUCCESS, WARNINGS
from twisted.internet import defer, threads

from ..build.schedulers import request_properties
from ..registry.graph import Graph
from ..registry.packages import Registry
from ..registry.platforms import PLATFORMS
from ..registry.rollouts import Rollout
from . import recovery
from .campaign import (
    BLOCKED,
    BUILDING,
    DONE,
    FAILED,
    WAITING,
    Campaign,
    cascade_campaign,
    rollout_campaign,
)
from .store import CampaignStore

ORCHESTRATOR = "orchestrator"  # the master's own worker: campaigns hold no volunteer's slot
ORCHESTRATE = "orchestrate"  # its builder and Triggerable
SAVE_EVERY = 1.0  # seconds between writes of a running campaign's record


class RunCampaign(buildstep.BuildStep):
    """The orchestrating build: start each node when its parents are done."""

    name = "campaign"

    def __init__(
        self,
        registry: Registry,
        store: CampaignStore,
        triggers: dict[str, str],
        rollouts: list[Rollout],
        max_in_flight: int = 20,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.registry = registry
        self.graph = Graph.from_registry(registry)
        self.store = store
        self.triggers = triggers  # platform -> Triggerable name
        self.rollouts = {r.name: r for r in rollouts}
        self.max_in_flight = max_in_flight

    @defer.inlineCallbacks
    def run(self):

        brid = self.build.requests[0].id
        awaiting: dict[str, dict[str, int]] = {}
        resumed = yield threads.deferToThread(self.store.interrupted, brid)
        if resumed:  # the master stopped or died while this request was running
            requests = yield recovery.triggered_requests(self.master, brid, self.build.buildid)
            awaiting = {c.id: recovery.settle(c, requests) for c in resumed}
            yield self._resume_log(resumed, awaiting)
            result = yield self._drive_all(resumed, awaiting)
            return result
        campaigns = yield self._new_campaigns()
        if not campaigns:
            self.descriptionDone = ["nothing to rebuild"]
            return SKIPPED
        for campaign in campaigns:
            campaign.orchestrated_by = brid
        result = yield self._drive_all(campaigns, awaiting)
        return result

    @defer.inlineCallbacks
    def _resume_log(self, campaigns: list[Campaign], awaiting: dict[str, dict[str, int]]):
        log = yield self.addLog("resumed")
        for c in campaigns:
            counts = c.counts()
            yield log.addStdout(
                f"{c.id}: resumed after an interruption: {counts[DONE]} done, "
                f"{len(awaiting[c.id])} still building, {counts[WAITING]} to start\n"
            )

    @defer.inlineCallbacks
    def _drive_all(self, campaigns: list[Campaign], awaiting: dict[str, dict[str, int]]):
        results = yield defer.gatherResults(
            [self._drive(c, awaiting.get(c.id, {})) for c in campaigns], consumeErrors=True
        )
        self.descriptionDone = [", ".join(results)]
        return SUCCESS if all(c.counts()[FAILED] == 0 for c in campaigns) else WARNINGS

    @defer.inlineCallbacks
    def _new_campaigns(self):
        action = self.getProperty("campaign_action")
        package, platform, python = (self.getProperty(k) for k in ("root", "platform", "python"))
        if action == "cascade":
            campaign = cascade_campaign(
                self.registry,
                self.graph,
                package,
                self.getProperty("version"),
                platform,
                python,
                self.max_in_flight,
            )
            campaigns = [campaign] if campaign.nodes else []
        elif action == "rollout":
            rollout = self.rollouts[self.getProperty("rollout")]
            campaigns = [rollout_campaign(self.registry, self.graph, rollout, self.triggers)]
        else:  # resume every campaign this package's failure held up
            campaigns = yield threads.deferToThread(self.store.all)
            campaigns = [c for c in campaigns if c.unblock(package, platform, python)]
        return campaigns

    @defer.inlineCallbacks
    def _drive(self, campaign: Campaign, awaiting: dict[str, int]):

        log = yield self.addLog(campaign.id[:60])
        yield log.addStdout(f"{campaign.title}: {len(campaign.nodes)} builds\n")
        running: set[str] = set()
        finished: list[tuple[str, int]] = []
        wake: list[defer.Deferred] = []
        # Counters, not rescans: a rollout over the registry has tens of thousands of nodes.
        children = campaign.children()
        missing = {
            k: sum(campaign.nodes[p].state != DONE for p in n.parents)
            for k, n in campaign.nodes.items()
        }
        ready = deque(k for k, n in campaign.nodes.items() if n.state == WAITING and not missing[k])
        saved = 0.0

        def on_finish(key: str, result: int) -> None:
            finished.append((key, result))
            while wake:
                wake.pop().callback(None)

        # saved before any build is asked for: a run cut short from here on is resumed
        yield threads.deferToThread(self.store.save, campaign)
        for key, request in awaiting.items():  # asked for by an interrupted run
            running.add(key)
            recovery.request_result(self.master, request).addCallbacks(
                lambda result, key=key: on_finish(key, result),
                lambda _, key=key: on_finish(key, FAILURE),
            )

        while True:
            while ready and len(running) < campaign.max_in_flight:
                key = ready.popleft()
                campaign.nodes[key].state = BUILDING
                running.add(key)
                self._start(campaign, key, on_finish)
            if not running:
                break
            if time.monotonic() - saved > SAVE_EVERY:  # the record is for people: a second is fresh
                yield threads.deferToThread(self.store.save, campaign)
                saved = time.monotonic()
            if not finished:
                wake.append(defer.Deferred())
                yield wake[-1]
            while finished:
                key, result = finished.pop(0)
                running.discard(key)
                node = campaign.nodes[key]
                if result in (SUCCESS, WARNINGS, SKIPPED):
                    node.state = DONE
                    for child in children[key]:
                        missing[child] -= 1
                        if not missing[child] and campaign.nodes[child].state == WAITING:
                            ready.append(child)
                else:
                    node.state = FAILED
                    campaign.block_downstream(key, children)
                yield log.addStdout(f"{node.state:>8} {key}\n")
        campaign.finished_at = time.time()
        yield threads.deferToThread(self.store.save, campaign)
        counts = campaign.counts()
        return (
            f"{campaign.title}: {counts[DONE]} done, {counts[FAILED]} failed, "
            f"{counts[BLOCKED]} blocked"
        )

    def _start(self, campaign: Campaign, key: str, on_finish) -> None:
        """Request the node's build through its platform's Triggerable."""
        node = campaign.nodes[key]
        request = request_properties(
            self.registry.packages[node.package],
            node.platform,
            node.python,
            campaign.cause,
            rebuild=campaign.rebuild,
        )
        request.update(campaign=campaign.id, reason=campaign.cause)
        if campaign.verify:
            request.update(verify=True, publish=False, rebuild=True)
        if campaign.toolchain:
            request["toolchain_key"] = f"{PLATFORMS[node.platform].policy}/{campaign.toolchain}"
        props = Properties()
        props.update(request, "campaign")
        scheduler = self.master.scheduler_manager.namedServices[self.triggers[node.platform]]
        ids, results = scheduler.trigger(
            waited_for=True,
            sourcestamps=[],
            set_props=props,
            parent_buildid=self.build.buildid,
            parent_relationship="campaign",
        )
        base = self.master.config.buildbotURL

        def link(result) -> None:
            _, brids = result
            node.build_url = f"{base}#/buildrequests/{next(iter(brids.values()))}"

        ids.addCallback(link)
        results.addCallbacks(
            lambda outcome: on_finish(key, outcome[0]), lambda _: on_finish(key, FAILURE)
        )


def orchestrator_factory(
    registry: Registry, store: CampaignStore, triggers: dict[str, str], rollouts: list[Rollout]
):
    factory = util.BuildFactory()
    factory.addStep(RunCampaign(registry, store, triggers, rollouts))
    return factory
