"""The orchestrating build: a Buildbot step on the master's own worker that drives
campaigns, starting each node's build through its platform's Triggerable.

Campaigns hold no volunteer's slot: the orchestrator is a local worker of the master.
What may start when is the scheduler's (scheduler.py); this only starts it (a build,
or nothing when the index has the node's wheel: prebuilt.py) and feeds results back.
"""

from __future__ import annotations

import time

from buildbot.plugins import util
from buildbot.process import buildstep
from buildbot.process.properties import Properties
from buildbot.process.results import FAILURE, RETRY, SKIPPED, SUCCESS, WARNINGS
from twisted.internet import defer, task, threads
from twisted.python import log as twisted_log

from ..pipeline.schedulers import request_properties
from ..registry.graph import Graph
from ..registry.packages import Registry
from ..registry.platforms import PLATFORMS
from ..registry.rollouts import Rollout
from ..state.db import one_line
from . import recovery
from .campaign import (
    BLOCKED,
    DONE,
    FAILED,
    WAITING,
    Campaign,
    cascade_campaign,
    node_key,
    rollout_campaign,
)
from .prebuilt import Prebuilt
from .scheduler import campaign_scheduler, unblock
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
        prebuilt: Prebuilt | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.prebuilt = prebuilt  # None: every node is built, even what the index has
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
        self.unsaved: list[str] = []
        try:
            results = yield defer.gatherResults(
                [self._drive(c, awaiting.get(c.id, {})) for c in campaigns], consumeErrors=True
            )
        finally:
            if self.unsaved:
                # Buildbot runs a RETRY build's request again: that run resumes these
                # campaigns from their last record and the builds' results, and ends them
                self.descriptionDone = [f"records not saved: {', '.join(self.unsaved)}"]
                return RETRY  # noqa: B012 (the record matters more than the error)
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
            key = node_key(package, platform, python)
            campaigns = [c for c in campaigns if unblock(c, key)]
        return campaigns

    @defer.inlineCallbacks
    def _drive(self, campaign: Campaign, awaiting: dict[str, int]):
        log = yield self.addLog(campaign.id[:60])
        yield log.addStdout(f"{campaign.title}: {len(campaign.nodes)} builds\n")
        # saved before any build is asked for: a run cut short from here on is resumed
        yield threads.deferToThread(self.store.save, campaign)
        run = CampaignRun(self, campaign, log)
        try:
            yield run.drive(awaiting)
        finally:  # whatever ended it, the record must not say "running" after its build
            campaign.finished_at = time.time()
            try:
                yield threads.deferToThread(self.store.save, campaign)
            except Exception as e:  # the database away longer than the store retries
                self.unsaved.append(campaign.id)
                twisted_log.msg(
                    f"wheelfarm: campaign {campaign.id}: its finished record was not saved "
                    f"({one_line(e)}): the orchestrating build ends RETRY and its retry "
                    "saves it"
                )
        counts = campaign.counts()
        found = sum(node.found is not None for node in campaign.nodes.values())
        return (
            f"{campaign.title}: {counts[DONE]} done ({found} already in the index), "
            f"{counts[FAILED]} failed, {counts[BLOCKED]} blocked"
        )

    def request(self, campaign: Campaign, key: str) -> dict:
        """The properties of the build request of the campaign's node `key`."""
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
        return request

    def trigger(self, request: dict) -> tuple[defer.Deferred, defer.Deferred]:
        """Request a build through its platform's Triggerable: (its ids, its results)."""
        props = Properties()
        props.update(request, "campaign")
        scheduler = self.master.scheduler_manager.namedServices[self.triggers[request["platform"]]]
        return scheduler.trigger(
            waited_for=True,
            sourcestamps=[],
            set_props=props,
            parent_buildid=self.build.buildid,
            parent_relationship="campaign",
        )


class CampaignRun:
    """One campaign, driven: the scheduler says what may start, this starts it (a build,
    or nothing when the index has the wheel) and feeds each result back."""

    def __init__(self, step: RunCampaign, campaign: Campaign, log) -> None:
        self.step = step
        self.campaign = campaign
        self.log = log
        self.scheduler = campaign_scheduler(campaign)
        self.lines: list[str] = []  # what finished since the log was last written
        self.ended: defer.Deferred = defer.Deferred()
        self._pumping = self._again = False
        # a cascade or verify rollout must build; the check is the resolve step's own
        prebuilt = step.prebuilt
        self.prebuilt = prebuilt if prebuilt and not (campaign.rebuild or campaign.verify) else None

    @defer.inlineCallbacks
    def drive(self, awaiting: dict[str, int]):
        """Until nothing builds and nothing can start."""
        for key, request in awaiting.items():  # asked for by an interrupted run
            self._watch(key, recovery.request_result(self.step.master, request))
        saver = task.LoopingCall(self._save)
        saver.clock = self.step.master.reactor
        saving = saver.start(SAVE_EVERY, now=False)  # the record is for people: 1 s is fresh
        try:
            self._pump()
            yield self.ended
        finally:
            if saver.running:
                saver.stop()
            yield saving
        yield self._flush()

    def _pump(self) -> None:
        """Start what may start. Results can arrive while starting (synchronously):
        those ask again instead of starting inside the loop."""
        if self._pumping:
            self._again = True
            return
        self._pumping = True
        try:
            self._again = True
            while self._again:
                self._again = False
                for key in self.scheduler.take():
                    self._start(key)
        except Exception:
            if not self.ended.called:
                self.ended.errback()
            return
        finally:
            self._pumping = False
        if self.scheduler.idle and not self.ended.called:
            self.ended.callback(None)

    def _start(self, key: str) -> None:
        request = self.step.request(self.campaign, key)
        if self.prebuilt is None:
            self._build(key, request)
            return
        d = threads.deferToThread(self.prebuilt.find, request)
        d.addErrback(self._check_failed, key)
        d.addCallback(self._checked, key, request)
        d.addErrback(self._broken)

    def _check_failed(self, failure, key: str) -> None:
        twisted_log.err(failure, f"wheelfarm: index check of {key}; building it")

    def _checked(self, found: str | None, key: str, request: dict) -> None:
        if found is None:
            self._build(key, request)
            return
        self.campaign.nodes[key].found = found
        self._finished(key, SKIPPED)

    def _build(self, key: str, request: dict) -> None:
        ids, results = self.step.trigger(request)
        node, base = self.campaign.nodes[key], self.step.master.config.buildbotURL

        def link(result) -> None:
            _, brids = result
            node.build_url = f"{base}#/buildrequests/{next(iter(brids.values()))}"

        ids.addCallback(link)
        self._watch(key, results.addCallback(lambda outcome: outcome[0]))

    def _watch(self, key: str, results: defer.Deferred) -> None:
        results.addCallbacks(
            lambda result: self._finished(key, result), lambda _: self._finished(key, FAILURE)
        )
        results.addErrback(self._broken)

    def _finished(self, key: str, result: int) -> None:
        self.scheduler.finish(key, result in recovery.OK)
        node = self.campaign.nodes[key]
        self.lines.append(f"{node.state:>8} {key}{' (in the index)' if node.found else ''}\n")
        self._pump()

    def _broken(self, failure) -> None:
        """A bug, not a build's result: end the step with it instead of hanging."""
        if not self.ended.called:
            self.ended.errback(failure)

    @defer.inlineCallbacks
    def _save(self):
        """One save of the running record; a failure (the database away for longer than
        the store retries) is logged and the next save tries again: the loop goes on."""
        try:
            yield self._flush()
            yield threads.deferToThread(self.step.store.save, self.campaign)
        except Exception as e:
            twisted_log.msg(
                f"wheelfarm: campaign {self.campaign.id}: saving its record failed "
                f"({one_line(e)}); trying again in {SAVE_EVERY:.0f} s"
            )

    @defer.inlineCallbacks
    def _flush(self):
        lines, self.lines = self.lines, []
        if lines:
            yield self.log.addStdout("".join(lines))


def orchestrator_factory(
    registry: Registry,
    store: CampaignStore,
    triggers: dict[str, str],
    rollouts: list[Rollout],
    prebuilt: Prebuilt | None = None,
):
    factory = util.BuildFactory()
    factory.addStep(RunCampaign(registry, store, triggers, rollouts, prebuilt=prebuilt))
    return factory
