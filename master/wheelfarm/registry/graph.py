"""The dependency graph between registry packages (`depends:`), as plain adjacency dicts.

Edges point from a package to what it depends on. Everything here is iterative, so a
registry of 100,000 packages in one long chain does not hit Python's recursion limit.

Graph answers the questions of a rebuild cascade: when a package changes its ABI,
everything downstream of it (descendants) rebuilds, in waves where a package starts
only once its parents in the cascade have finished, and a failure blocks what is
downstream of it (blocked_by). plan() sizes a cascade without running it;
undeclared_dependencies() compares a built wheel's Requires-Dist with `depends`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain, compress, islice
from typing import TYPE_CHECKING

from packaging.markers import UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .depends import find_cycles, forward_edges
from .fields import did_you_mean
from .platforms import PLATFORMS

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
    numbers: a cascade over 100,000 packages then walks lists and flags instead of
    hashing strings at every edge, and needs a single pass in numbering order
    instead of Kahn's two.
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
        # them); the methods then fall back to plain searches and Kahn's algorithm,
        # which names the cycle.
        self.acyclic = len(order) == len(first_names)
        if not self.acyclic:
            order += [node for node, count in enumerate(unplaced) if count]
        # ... then number them in that order: every node after its parents, so one
        # scan in numbering order settles a whole cascade (see _layers), reading the
        # per-node lists front to back.
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

    def subgraph_parents(self, nodes: set[str]) -> dict[str, set[str]]:
        """For each node of `nodes`, its parents (dependencies) that are also in `nodes`:
        what a cascade over `nodes` must wait for before starting that node."""
        self._node_ids(nodes)  # the same KeyError as the other methods
        forward = self.forward
        return {name: nodes.intersection(forward[name]) for name in nodes}

    def waves(self, nodes: set[str]) -> list[list[str]]:
        """`nodes` in topological layers, as Kahn's algorithm restricted to the set gives.

        Wave k holds the nodes whose parents in the set are all in waves < k, so
        each wave can build in parallel once the previous ones have finished; a
        node with several parents (a diamond) appears once, after all of them.
        Names are sorted within a wave. Raises ValueError naming a cycle.
        """
        if not self.acyclic:
            return self._kahn_waves(nodes)
        in_set = bytearray(len(self._names))
        for node in self._node_ids(nodes):
            in_set[node] = 1
        return self._layers(in_set, in_set)

    def cascade(self, roots: Iterable[str], skip: Iterable[str] = ()) -> list[list[str]]:
        """The rebuild cascade of a new ABI of `roots`: waves(descendants(roots) - skip).

        `skip` are packages that are not built (`skip:` in the registry): they are
        left out and nothing waits for them, but what is downstream of them is still
        in the cascade. One pass over the graph instead of two, for plan().
        """
        return self._cascade(self._node_ids(roots), self._node_ids(skip))[0]

    def _cascade(self, start: list[int], skip: list[int]) -> tuple[list[list[str]], bytearray]:
        """cascade(), and the flags of every node reached (roots included)."""
        if not self.acyclic:
            reached = self._reach(start)
            names = self._names
            left_out = {names[node] for node in (*start, *skip)}
            return self._kahn_waves(set(compress(names, reached)) - left_out), reached
        reached = bytearray(len(self._names))
        for node in start:
            reached[node] = 1
        built = bytearray(b"\x01") * len(reached)
        for node in (*start, *skip):
            built[node] = 0
        first = min(start, default=0)
        return self._layers(reached, built, first, mark=True), reached

    def _layers(
        self, members: bytearray, built: bytearray, first: int = 0, mark: bool = False
    ) -> list[list[str]]:
        """The waves of the nodes flagged in both `members` and `built` (acyclic graphs),
        none of them numbered below `first`.

        A node's wave is one more than the latest wave of its parents in the set, so
        visiting the members in topological order settles a node's parents before the
        node itself, and one pass pushes each wave down to the children. Children
        outside the set get written too, but their entries are never read. With
        `mark`, the pass also flags every child as a member, so `members` grows to
        everything downstream of the nodes first flagged, as in _reach(). A member
        that is not `built` is left out and its children do not wait for it.
        """
        children, names = self._children, self._names
        wave_of = [0] * len(names)
        waves: list[list[str]] = []
        for node in self._in_order(members, first):
            if built[node]:
                wave = wave_of[node]
                if wave == len(waves):  # a parent is in the wave before, so never more
                    waves.append([])
                waves[wave].append(names[node])
                wave += 1
            else:
                wave = 0
            for child in children[node]:
                if mark:
                    members[child] = 1
                if wave_of[child] < wave:
                    wave_of[child] = wave
        for wave_names in waves:
            wave_names.sort()
        return waves

    def _kahn_waves(self, nodes: set[str]) -> list[list[str]]:
        """waves() by Kahn's algorithm, for a graph with cycles: it finds them."""
        members = self._node_ids(nodes)
        parents, children, names = self._parents, self._children, self._names
        in_set = bytearray(len(names))
        for node in members:
            in_set[node] = 1
        waiting = [0] * len(names)  # parents in the set not placed in a wave yet
        for node in members:
            waiting[node] = sum(in_set[parent] for parent in parents[node])
        wave = [node for node in members if not waiting[node]]
        waves: list[list[str]] = []
        placed = 0
        while wave:
            waves.append(sorted(names[node] for node in wave))
            placed += len(wave)
            ready = []
            for node in wave:
                for child in children[node]:
                    if in_set[child]:
                        waiting[child] -= 1
                        if not waiting[child]:
                            ready.append(child)
            wave = ready
        if placed < len(members):
            left = {names[node] for node in members if waiting[node]}
            raise ValueError(f"dependency cycle: {self._cycle_in(left)}")
        return waves

    def _cycle_in(self, left: set[str]) -> str:
        """A cycle among `left` (the shortest found), as "a -> b -> a" (a depends on b).

        Every node Kahn's algorithm could not place has a parent it could not place
        either, so following parents within `left` must come back on itself.
        """
        forward = self.forward
        edges = {name: [p for p in forward[name] if p in left] for name in sorted(left)}
        cycle = min(find_cycles(edges), key=len)
        start = cycle.index(min(cycle))  # the same message whatever the set's order
        cycle = cycle[start:] + cycle[:start]
        return " -> ".join([*cycle, cycle[0]])

    def blocked_by(self, failed: str, nodes: set[str]) -> set[str]:
        """The nodes of `nodes` downstream of `failed`: they must not be built once
        `failed` has failed (recorded as "blocked by failed").

        This is descendants(failed) & nodes, through any path in the whole graph:
        for a cascade, which holds everything downstream of its root, that is the
        same as following only the cascade's own edges, and for any other set it
        errs on the side of not building against a package that failed.
        """
        return self.descendants([failed]) & nodes


class UnknownPackage(ValueError):
    """A name that is not a package of the registry."""


@dataclass
class Plan:
    """The cascade a new ABI of `root` causes.

    The root is not part of it: its own new release is what is being built already
    and what triggers the cascade. `waves` holds every package downstream of the root
    that is built (see Graph.waves); downstream packages with `skip` are listed in
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
    skip = [n for n, package in packages.items() if package.skip is not None]
    # One pass for the waves and for which skipped packages are downstream.
    waves, reached = graph._cascade(graph._node_ids([name]), graph._node_ids(skip))
    skipped = sorted(n for n in skip if n != name and reached[graph._ids[n]])
    # Packages come in few shapes (platforms, number of Pythons): counting shapes
    # first, then platforms per shape, saves a loop over every platform of every
    # package, which at 100,000 packages was most of the time plan() took.
    shapes = Counter(
        (package.platforms, len(package.pythons))
        for package in map(packages.__getitem__, chain.from_iterable(waves))
    )
    per_platform = dict.fromkeys(PLATFORMS, 0)
    builds_per_platform = dict.fromkeys(PLATFORMS, 0)
    for (platforms, pythons), count in shapes.items():
        for platform in platforms:
            per_platform[platform] += count
            builds_per_platform[platform] += count * pythons
    return Plan(
        root=name,
        waves=waves,
        skipped=skipped,
        per_platform=per_platform,
        builds_per_platform=builds_per_platform,
        builds=sum(builds_per_platform.values()),
    )


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
