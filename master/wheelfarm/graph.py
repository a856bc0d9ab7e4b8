"""The dependency graph between registry packages (`depends:`), as plain adjacency dicts.

Edges point from a package to what it depends on. Everything here is iterative, so a
registry of 100,000 packages in one long chain does not hit Python's recursion limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .registry import Registry

Edges = Mapping[str, Iterable[str]]


def forward_edges(registry: Registry) -> dict[str, tuple[str, ...]]:
    """Package -> the registry packages it depends on (unknown names and repeats left out)."""
    known = registry.packages
    return {n: tuple(dict.fromkeys(d for d in p.depends if d in known)) for n, p in known.items()}


def reverse_edges(edges: Edges) -> dict[str, list[str]]:
    """Package -> the packages that depend on it (the direction rebuilds cascade in)."""
    reverse: dict[str, list[str]] = {name: [] for name in edges}
    for name, targets in edges.items():
        for target in targets:
            reverse.setdefault(target, []).append(name)
    return reverse


def find_cycles(edges: Edges) -> list[list[str]]:
    """Cycles as node lists, [a, b, c] meaning a -> b -> c -> a; each found cycle once.

    A depth-first search reports one cycle per back edge, so every strongly connected
    tangle shows up at least once without enumerating its (possibly exponential) cycles.
    """
    cycles: list[list[str]] = []
    done: set[str] = set()
    for start in edges:
        if start in done:
            continue
        path = [start]  # the DFS path from `start`
        on_path = {start: 0}  # node -> its index in `path`
        pending = [iter(edges[start])]  # the unvisited targets of each node on the path
        while pending:
            target = next(pending[-1], None)
            if target is None:  # every target of path[-1] explored
                pending.pop()
                done.add(path[-1])
                del on_path[path.pop()]
            elif target in on_path:
                cycles.append(path[on_path[target] :])
            elif target not in done:
                on_path[target] = len(path)
                path.append(target)
                pending.append(iter(edges.get(target, ())))
    return cycles
