"""The dependency graph between registry packages (`depends:`), as plain adjacency dicts.

Edges point from a package to what it depends on. Everything here is iterative, so a
registry of 100,000 packages in one long chain does not hit Python's recursion limit.

Graph answers the questions of a rebuild cascade: when a package changes its ABI,
everything downstream of it (descendants) rebuilds, each package waiting for its
parents in the cascade (subgraph_parents); in what order is the campaign scheduler's
(cascade/scheduler.py). undeclared_dependencies() compares a built wheel's
Requires-Dist with `depends`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import compress, islice
from typing import TYPE_CHECKING

from packaging.markers import UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .depends import forward_edges
from .fields import did_you_mean

if TYPE_CHECKING:
    from .packages import Registry


class Graph:
    """The registry's dependency graph, built once, for rebuild cascades.

    `deps` maps a package to the packages it depends on (its *parents*: they build
    first); its *children* are the packages that depend on it, the direction a new
    ABI travels. Names are used as given, so callers pass normalised names; a name
    that is only ever depended on becomes a node with no dependencies.

    The API speaks names. Inside, nodes are numbered in a topological order (every
    package after its dependencies) and the adjacency is kept as lists of those
    numbers: finding what is downstream of a package among 100,000 walks lists and
    flags instead of hashing strings at every edge, in a single pass in numbering
    order.
    """

    def __init__(self, deps: Mapping[str, Iterable[str]]) -> None:
        # Repeated edges are harmless below (counted and uncounted alike), so they stay.
        forward = {name: tuple(targets) for name, targets in deps.items()}
        for target in sorted(set().union(*forward.values()) - forward.keys()):
            forward[target] = ()
        self.forward: dict[str, tuple[str, ...]] = forward  # package -> its dependencies
        # Number the nodes in file order to sort them topologically (Kahn's algorithm
        # over the whole graph, once) ...
        first_names = list(forward)
        first_id = {name: i for i, name in enumerate(first_names)}.__getitem__
        first_parents = [tuple(map(first_id, targets)) for targets in forward.values()]
        first_children: list[list[int]] = [[] for _ in first_names]
        for node, parents in enumerate(first_parents):
            for parent in parents:
                first_children[parent].append(node)
        unplaced = list(map(len, first_parents))
        order = [node for node, count in enumerate(unplaced) if not count]
        for node in order:  # the list grows while it is read
            for child in first_children[node]:
                count = unplaced[child] - 1
                unplaced[child] = count
                if not count:
                    order.append(child)
        # Only a Graph made from raw edges can have a cycle (load_registry refuses
        # them); descendants() then falls back to a plain search.
        self.acyclic = len(order) == len(first_names)
        if not self.acyclic:
            order += [node for node, count in enumerate(unplaced) if count]
        # ... then number them in that order: every node after its parents, so one
        # scan in numbering order reaches everything downstream (see _reach), reading
        # the per-node lists front to back.
        position = [0] * len(order)
        for new, old in enumerate(order):
            position[old] = new
        renumber = position.__getitem__
        self._names: list[str] = [first_names[old] for old in order]
        self._ids: dict[str, int] = {name: i for i, name in enumerate(self._names)}
        self._parents: list[tuple[int, ...]] = [
            tuple(map(renumber, first_parents[old])) for old in order
        ]
        self._children: list[list[int]] = [[] for _ in order]
        for node, parents in enumerate(self._parents):
            for parent in parents:
                self._children[parent].append(node)

    @classmethod
    def from_registry(cls, registry: Registry) -> Graph:
        return cls(forward_edges(registry.packages))

    def __contains__(self, name: object) -> bool:
        return name in self._ids

    def __len__(self) -> int:
        return len(self._names)

    def edge_count(self) -> int:
        return sum(map(len, self._parents))

    def children(self, name: str) -> list[str]:
        """The packages that depend on `name` directly, sorted."""
        names = self._names
        return sorted(names[child] for child in self._children[self._node_ids([name])[0]])

    def _node_ids(self, names: Iterable[str]) -> list[int]:
        ids = self._ids
        try:
            return [ids[name] for name in names]
        except KeyError as e:
            # a typo should not look like a package nobody depends on
            raise KeyError(f"{e.args[0]!r} is not in the graph") from None

    def _in_order(self, flags: bytearray, first: int = 0) -> Iterator[int]:
        """The flagged nodes from `first` on, in numbering (so topological) order.

        Flags are read as the scan reaches them, so a caller may flag nodes further
        on while it runs; compress skips the unflagged ones in C.
        """
        return compress(range(first, len(flags)), islice(flags, first, None))

    def _reach(self, start: list[int]) -> bytearray:
        """A flag per node: reachable from `start` along children, `start` included."""
        children = self._children
        reached = bytearray(len(children))
        for node in start:
            reached[node] = 1
        if self.acyclic and start:
            # Children come after their parents in the order: one scan reaches all.
            for node in self._in_order(reached, min(start)):
                for child in children[node]:
                    reached[child] = 1
        else:
            pending = list(start)
            while pending:
                for child in children[pending.pop()]:
                    if not reached[child]:
                        reached[child] = 1
                        pending.append(child)
        return reached

    def descendants(self, roots: Iterable[str]) -> set[str]:
        """Everything downstream of `roots` (their dependents, transitively), roots excluded.

        Raises KeyError for a root that is not in the graph.
        """
        start = self._node_ids(roots)
        reached = self._reach(start)
        for node in start:
            reached[node] = 0
        return set(compress(self._names, reached))

    def numbered(
        self, names: Iterable[str]
    ) -> tuple[list[str], list[tuple[int, ...]], list[list[int]], list[int]]:
        """The graph as numbers: every node's name, parents and children (shared: read,
        never change), and the numbers of `names`. For the campaign scheduler, which
        then needs no numbering of its own (cascade/scheduler.py, Scheduler.numbered)."""
        return self._names, self._parents, self._children, self._node_ids(names)

    def subgraph_parents(self, nodes: set[str]) -> dict[str, set[str]]:
        """For each node of `nodes`, its parents (dependencies) that are also in `nodes`:
        what a cascade over `nodes` must wait for before starting that node."""
        self._node_ids(nodes)  # the same KeyError as the other methods
        forward = self.forward
        return {name: nodes.intersection(forward[name]) for name in nodes}


class UnknownPackage(ValueError):
    """A name that is not a package of the registry."""


def undeclared_dependencies(
    registry: Registry,
    package: str,
    requires_dist: list[str],
    python_version: str,
    markers: Mapping[str, str] | None = None,
) -> list[str]:
    """Registry packages a wheel of `package` requires at run time but `depends` omits.

    `requires_dist` are the wheel's Requires-Dist lines. Markers are evaluated for
    `python_version` (e.g. "3.12") with no extra selected, so requirements only
    wanted by an extra are not counted. Other markers (sys_platform, ...) take the
    values of the machine running this unless `markers` gives the wheel's, e.g.
    {"sys_platform": "win32", "platform_system": "Windows"}. Meant for a warning,
    not a failure, so lines that do not parse or whose markers cannot be evaluated
    are left out. Returns normalised names, in the order the wheel lists them.
    """
    name = canonicalize_name(package)
    if name not in registry.packages:
        hint = did_you_mean(name, registry.packages)
        raise UnknownPackage(f"{package!r} is not a package in {registry.path}{hint}")
    declared = set(registry.packages[name].depends)
    # python_full_version too, or a `python_full_version >= "3.12"` marker would
    # be judged against the Python running the master.
    environment = {
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "extra": "",
        **(markers or {}),
    }
    found: dict[str, None] = {}  # an ordered set
    for line in requires_dist:
        try:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
        except (InvalidRequirement, UndefinedComparison, UndefinedEnvironmentName):
            continue
        dep = canonicalize_name(requirement.name)
        if dep != name and dep in registry.packages and dep not in declared:
            found[dep] = None
    return list(found)
