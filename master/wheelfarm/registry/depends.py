"""The edges between registry packages (`depends:`): which package depends on which, and
the cycles a registry must not have. Pure functions on plain dicts, iterative so that a
chain of 100,000 packages does not hit Python's recursion limit; graph.py builds on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

Edges = Mapping[str, Iterable[str]]


class Declares(Protocol):
    """A registry package, as far as its edges go."""

    @property
    def depends(self) -> tuple[str, ...]: ...


def forward_edges(packages: Mapping[str, Declares]) -> dict[str, tuple[str, ...]]:
    """Package -> the registry packages it depends on (unknown names and repeats left out)."""
    known = packages
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
