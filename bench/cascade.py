"""How fast the master plans a rebuild cascade (wheelfarm.cascade.plan) at PyPI scale.

Generates synthetic dependency graphs of 1,000, 10,000 and 100,000 packages shaped
like PyPI's: every package depends on 0-5 earlier ones (so the graph is a DAG),
mostly on one of ~10 hubs, so each hub ends up with thousands of dependents. Builds
the Graph straight from the edges (no YAML: registry loading is measured by
bench/registry_scale.py) and prints a markdown table:

    python bench/cascade.py [--sizes 1000,10000,100000] [--seed 1]

The plan column is the cascade of a new ABI of the biggest hub (the one with the
most direct dependents): its descendants (Graph.descendants) in the waves the
campaign scheduler gives them (Scheduler.waves), as plan() computes them. Times are
the best of 3 runs (time.perf_counter). Target: plan <= 200 ms at 100,000 packages.
The dispatch of a campaign on a real master is bench/dispatch.py's.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from wheelfarm.cascade.scheduler import Scheduler
from wheelfarm.registry.graph import Graph

HUBS = 10  # setuptools, numpy, typing-extensions, ...
HUB_SHARE = 0.6  # chance that a dependency is a hub rather than any earlier package
FAN_OUT = (0, 1, 1, 2, 2, 3, 3, 4, 5)  # dependencies per package, drawn uniformly
T = TypeVar("T")


def make_graph(n: int, seed: int = 1) -> dict[str, tuple[str, ...]]:
    """Package -> its dependencies: only packages generated before it, so no cycle."""
    rnd = random.Random(seed)
    names = [f"pkg-{i:06d}" for i in range(n)]
    deps: dict[str, tuple[str, ...]] = {}
    for i, name in enumerate(names):
        chosen: set[str] = set()
        for _ in range(rnd.choice(FAN_OUT) if i else 0):
            if rnd.random() < HUB_SHARE:
                # Earlier hubs are more popular: hub k is picked with weight 1/(k+1).
                k = min(int(HUBS ** rnd.random()) - 1, i - 1)
                chosen.add(names[k])
            else:
                chosen.add(names[rnd.randrange(i)])
        deps[name] = tuple(sorted(chosen))
    # A registry lists packages in no particular order; the Graph must not benefit
    # from one that happens to be topological.
    items = list(deps.items())
    rnd.shuffle(items)
    return dict(items)


def best_of(runs: int, fn: Callable[[], T]) -> tuple[float, T]:
    """The fastest of `runs` calls, in seconds, and the last result."""
    best = float("inf")
    result: T
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench(n: int, seed: int) -> str:
    deps = make_graph(n, seed)
    build_s, graph = best_of(3, lambda: Graph(deps))
    dependents = {name: len(graph.children(name)) for name in deps}
    hub = max(dependents, key=dependents.__getitem__)

    plan_s, cascade = best_of(  # what plan() runs
        3, lambda: Scheduler.numbered(*graph.numbered(graph.descendants([hub]))).waves()
    )
    size = sum(len(wave) for wave in cascade)
    return (
        f"| {n:,} | {graph.edge_count():,} | {build_s * 1000:.0f} ms "
        f"| {plan_s * 1000:.0f} ms | {len(cascade)} | {size:,} ({dependents[hub]:,} direct) |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print("| packages | edges | graph build | plan (descendants + waves) | waves | cascade |")
    print("|---|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        print(bench(n, args.seed), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
