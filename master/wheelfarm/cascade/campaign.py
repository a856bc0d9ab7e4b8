"""Cascades and rollouts: rebuilding many packages in dependency order.

A campaign is a set of nodes, one per (package, platform, Python), each waiting
for its parents (the registry packages it depends on, on the same platform and
Python) to finish. An orchestrating build on the master's own worker (not a
volunteer's slot) starts each node through the platform's Triggerable as soon
as its parents are done, at most `max_in_flight` at a time; a failed node blocks
what is downstream of it (those rules: scheduler.py). A node whose wheel the index
already has for its sdist and toolchain is done without a build, unless the campaign
must build it again (a cascade's new ABI, a verify rollout). Campaign records are JSON
files the progress pages read.

    cascade: a package published a wheel whose ABI key differs from the previous
             one -> its descendants are rebuilt.
    resume:  a package that failed in a campaign was built again -> the part it
             blocked goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from packaging.version import Version

from ..registry.graph import Graph
from ..registry.packages import Registry
from ..registry.platforms import PLATFORMS
from ..registry.rollouts import Rollout

DONE, FAILED, BLOCKED, WAITING, BUILDING = "done", "failed", "blocked", "waiting", "building"


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
    found: str | None = None  # the index's wheel that made its build needless


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


def cascade_action(
    index_records: list[dict],
    published: dict,
    abi: str | None,
    campaigns: Callable[[], Iterable[Campaign]],
) -> str | None:
    """What a newly published wheel means downstream: "cascade", "resume" or nothing.

    A cascade needs a new release (no other wheel of this version for this
    platform and Python) that is the newest published one (a backfill of an old
    version never starts one) and whose ABI key differs from the previous
    version's. Versions compare without their local label (`1.0+abicore.2.0`, see
    registry/pins.py): it marks a rebuild, not a release.
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
    if any(c.nodes.get(key) and c.nodes[key].state == FAILED for c in campaigns()):
        return "resume"
    return None
