"""Cascades and rollouts: rebuilding many packages in dependency order.

A campaign is a set of nodes, one per (package, platform, Python), each waiting
for its parents (the registry packages it depends on, on the same platform and
Python) to finish. An orchestrating build on the master's own worker (not a
volunteer's slot) starts each node through the platform's Triggerable as soon
as its parents are done, at most `max_in_flight` at a time; a failed node blocks
what is downstream of it. Campaign records are JSON files the progress pages read.

    cascade: a package published a wheel whose ABI key differs from the previous
             one -> its descendants are rebuilt.
    resume:  a package that failed in a campaign was built again -> the part it
             blocked goes on.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from buildbot.plugins import util
from buildbot.process import buildstep
from buildbot.process.properties import Properties
from buildbot.process.results import FAILURE, SKIPPED, SUCCESS, WARNINGS
from packaging.version import Version
from twisted.internet import defer, threads

from .graph import Graph
from .platforms import PLATFORMS
from .registry import Registry
from .rollouts import Rollout
from .schedulers import request_properties

DONE, FAILED, BLOCKED, WAITING, BUILDING = "done", "failed", "blocked", "waiting", "building"
ORCHESTRATOR = "orchestrator"  # the master's own worker: campaigns hold no volunteer's slot
ORCHESTRATE = "orchestrate"  # its builder and Triggerable
SAVE_EVERY = 1.0  # seconds between writes of a running campaign's record


def abi_key(mode: str | None, version: str, pure: bool) -> str | None:
    """What must change for dependents to need a rebuild; None: never.

    mode is the registry's `abi`; unset, pure wheels have none and others `minor`.
    """
    mode = mode or ("none" if pure else "minor")
    v = Version(version)
    return {
        "none": None,
        "major": f"{v.major}",
        "minor": f"{v.major}.{v.minor}",
        "every-release": str(v),
    }[mode]


def node_key(package: str, platform: str, python: str) -> str:
    return f"{package}|{platform}|{python}"


@dataclass
class Node:
    package: str
    platform: str
    python: str
    parents: list[str]  # node keys
    state: str = WAITING
    blocked_by: str | None = None
    build_url: str | None = None
    reason: str | None = None  # a failed build's one-line summary


@dataclass
class Campaign:
    id: str
    kind: str  # cascade or rollout
    title: str
    cause: str
    max_in_flight: int
    nodes: dict[str, Node]
    rebuild: bool = False  # build even what the index has (a cascade: new ABI upstream)
    toolchain: str | None = None  # a rollout's toolchain generation
    verify: bool = False  # a rollout of verify builds (steps.VerifyWheel): nothing published
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    orchestrated_by: int | None = None  # the build request running it: resumed by its retry

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((DONE, BUILDING, WAITING, BLOCKED, FAILED), 0)
        for node in self.nodes.values():
            counts[node.state] += 1
        return counts

    def ready(self) -> list[str]:
        return [
            key
            for key, node in self.nodes.items()
            if node.state == WAITING and all(self.nodes[p].state == DONE for p in node.parents)
        ]

    def children(self) -> dict[str, list[str]]:
        children: dict[str, list[str]] = {key: [] for key in self.nodes}
        for key, node in self.nodes.items():
            for parent in node.parents:
                children[parent].append(key)
        return children

    def block_downstream(self, failed: str, children: dict[str, list[str]] | None = None) -> None:
        """Every node that (transitively) waits for `failed` is blocked by it."""
        children = children if children is not None else self.children()
        todo = list(children.get(failed, []))
        while todo:
            key = todo.pop()
            node = self.nodes[key]
            if node.state in (WAITING, BLOCKED):
                node.state, node.blocked_by = BLOCKED, self.nodes[failed].package
                todo.extend(children.get(key, []))

    def unblock(self, package: str, platform: str, python: str) -> bool:
        """`package` was built again: its failed node is done, what it blocked waits again."""
        key = node_key(package, platform, python)
        if key not in self.nodes or self.nodes[key].state != FAILED:
            return False
        self.nodes[key].state = DONE
        for node in self.nodes.values():
            if node.state == BLOCKED and node.blocked_by == package:
                node.state, node.blocked_by = WAITING, None
        self.finished_at = None
        return True


class CampaignStore:
    """Campaign records, one JSON file each, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def save(self, campaign: Campaign) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = json.dumps(asdict(campaign), indent=1).encode()
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, self.root / f"{campaign.id}.json")

    def load(self, campaign_id: str) -> Campaign | None:
        path = self.root / f"{campaign_id}.json"
        if "/" in campaign_id or not path.is_file():
            return None
        data = json.loads(path.read_text())
        data["nodes"] = {k: Node(**v) for k, v in data["nodes"].items()}
        return Campaign(**data)

    def all(self) -> list[Campaign]:
        if not self.root.is_dir():
            return []
        found = (self.load(p.stem) for p in sorted(self.root.glob("*.json")))
        return sorted((c for c in found if c), key=lambda c: -c.created_at)

    def interrupted(self, orchestrate_brid: int) -> list[Campaign]:
        """The unfinished campaigns an earlier run of this build request was driving."""
        return [
            c for c in self.all() if c.orchestrated_by == orchestrate_brid and not c.finished_at
        ]


def cascade_campaign(
    registry: Registry,
    graph: Graph,
    root: str,
    version: str,
    platform: str,
    python: str,
    max_in_flight: int,
) -> Campaign:
    """The descendants of `root` that build on this platform and Python."""
    names = {
        n
        for n in graph.descendants([root])
        if (p := registry.packages[n]).skip is None
        and platform in p.platforms
        and python in p.pythons
    }
    parents = graph.subgraph_parents(names)
    nodes = {
        node_key(n, platform, python): Node(
            n, platform, python, sorted(node_key(d, platform, python) for d in parents[n])
        )
        for n in sorted(names)
    }
    stamp = time.strftime("%Y%m%d%H%M%S")
    return Campaign(
        id=f"cascade-{root}-{version}-{platform}-py{python}-{stamp}",
        kind="cascade",
        title=f"new ABI of {root} {version} on {platform}, Python {python}",
        cause=f"cascade from {root} {version}",
        max_in_flight=max_in_flight,
        nodes=nodes,
        rebuild=True,
    )


def rollout_campaign(
    registry: Registry, graph: Graph, rollout: Rollout, platforms: Iterable[str]
) -> Campaign:
    """Every (package, platform, Python) the rollout covers, waiting for its dependencies."""
    chosen = set(rollout.packages) if rollout.packages else set(registry.packages)
    platforms = set(platforms) & set(rollout.platforms or PLATFORMS)
    nodes: dict[str, Node] = {}
    parents = graph.subgraph_parents(chosen)
    for name in sorted(chosen):
        package = registry.packages[name]
        if package.skip:
            continue
        pythons = [py for py in rollout.pythons or package.pythons if py in package.pythons]
        for platform in sorted(platforms & set(package.platforms)):
            for python in pythons:
                deps = [node_key(d, platform, python) for d in sorted(parents[name])]
                nodes[node_key(name, platform, python)] = Node(name, platform, python, deps)
    for node in nodes.values():  # a dependency the rollout does not build is not waited for
        # verify builds publish nothing: none waits for another
        node.parents = [p for p in node.parents if p in nodes and not rollout.verify]
    return Campaign(
        id=f"rollout-{rollout.name}-{time.strftime('%Y%m%d%H%M%S')}",
        kind="rollout",
        title=rollout.description or f"rollout {rollout.name}",
        cause=f"rollout {rollout.name}",
        max_in_flight=rollout.max_in_flight,
        nodes=nodes,
        toolchain=rollout.toolchain,
        verify=rollout.verify,
    )


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
        from . import recovery  # it reads this module's types

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
        from . import recovery

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


def cascade_action(
    index_records: list[dict], published: dict, abi: str | None, store: CampaignStore
) -> str | None:
    """What a newly published wheel means downstream: "cascade", "resume" or nothing.

    A cascade needs a new release (no other wheel of this version for this
    platform and Python) that is the newest published one (a backfill of an old
    version never starts one) and whose ABI key differs from the previous
    version's. Versions compare without their local label (`1.0+abicore.2.0`, see
    pins.py): it marks a rebuild, not a release.
    """
    platform, python = published["platform"], published["python"]
    mine = [
        r
        for r in index_records
        if r.get("platform") == platform
        and r.get("python") == python
        and r["filename"] != published["filename"]
    ]
    pure = published["filename"].endswith("-any.whl")
    version = Version(Version(published["version"]).public)
    new_key = abi_key(abi, str(version), pure)
    others = [Version(Version(r["version"]).public) for r in mine]
    same_version = version in others
    backfill = any(v > version for v in others)
    older = sorted(v for v in others if v < version)
    if new_key is not None and not same_version and not backfill and older:
        if abi_key(abi, str(older[-1]), pure) != new_key:
            return "cascade"
    key = node_key(published["project"], platform, python)
    if any(c.nodes.get(key) and c.nodes[key].state == FAILED for c in store.all()):
        return "resume"
    return None


def orchestrator_factory(
    registry: Registry, store: CampaignStore, triggers: dict[str, str], rollouts: list[Rollout]
):
    factory = util.BuildFactory()
    factory.addStep(RunCampaign(registry, store, triggers, rollouts))
    return factory
