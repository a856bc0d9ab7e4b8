"""Sizing a rebuild cascade without running it: what `wheelfarm plan` prints.

The waves are the campaign scheduler's own (Scheduler.waves): the order a cascade's
builds would start in if every one succeeded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import chain

from packaging.utils import canonicalize_name

from ..registry.fields import did_you_mean
from ..registry.graph import Graph, UnknownPackage
from ..registry.packages import Registry
from ..registry.platforms import PLATFORMS
from .scheduler import Scheduler


@dataclass
class Plan:
    """The cascade a new ABI of `root` causes.

    The root is not part of it: its own new release is what is being built already
    and what triggers the cascade. `waves` holds every package downstream of the root
    that is built (see Scheduler.waves); downstream packages with `skip` are listed in
    `skipped` instead, and nothing waits for them.
    """

    root: str
    waves: list[list[str]]
    skipped: list[str]  # downstream, but not built (`skip:`)
    per_platform: dict[str, int]  # platform -> packages of the cascade built there
    builds_per_platform: dict[str, int]  # platform -> (package, python) builds there
    builds: int  # (package, platform, python) builds in all

    @property
    def packages(self) -> int:
        return sum(len(wave) for wave in self.waves)


def plan(registry: Registry, root: str, graph: Graph | None = None) -> Plan:
    """The cascade a new ABI of `root` would cause, without running it.

    `graph` saves rebuilding the Graph when planning several roots of one registry.
    Raises UnknownPackage for a name that is not in the registry.
    """
    name = canonicalize_name(root)
    packages = registry.packages
    if name not in packages:
        hint = did_you_mean(name, packages)
        raise UnknownPackage(f"{root!r} is not a package in {registry.path}{hint}")
    if graph is None:
        graph = Graph.from_registry(registry)
    downstream = graph.descendants([name])
    skipped = sorted(n for n in downstream if packages[n].skip is not None)
    built = downstream.difference(skipped)
    # on the graph's own numbering: nothing waits for what is not in the cascade
    cascade = Scheduler.numbered(*graph.numbered(built)).waves()
    # Packages come in few shapes (platforms, number of Pythons): counting shapes
    # first, then platforms per shape, saves a loop over every platform of every
    # package, which at 100,000 packages was most of the time plan() took.
    shapes = Counter(
        (package.platforms, len(package.pythons))
        for package in map(packages.__getitem__, chain.from_iterable(cascade))
    )
    per_platform = dict.fromkeys(PLATFORMS, 0)
    builds_per_platform = dict.fromkeys(PLATFORMS, 0)
    for (platforms, pythons), count in shapes.items():
        for platform in platforms:
            per_platform[platform] += count
            builds_per_platform[platform] += count * pythons
    return Plan(
        root=name,
        waves=cascade,
        skipped=skipped,
        per_platform=per_platform,
        builds_per_platform=builds_per_platform,
        builds=sum(builds_per_platform.values()),
    )
