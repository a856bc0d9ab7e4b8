"""The campaign scheduler: which nodes are ready, which are blocked, and what a finished
node releases or blocks. The one place these rules live.

Pure: no Buildbot, no I/O. The orchestrating build (orchestrate.py) takes ready nodes
and feeds results in, recovery (recovery.py) settles an interrupted campaign with it,
and `wheelfarm plan` gets a cascade's waves from it (waves()).

A node waits for its parents (only those in the campaign: a dependency the campaign
does not build is not waited for). It is ready when every parent is done; at most
`max_in_flight` nodes build at once. A failed node blocks everything downstream of it
that has not been built; a blocked node is always downstream of a failed one, so
blocking is derived, never stored on its own: a failed node built again later
(unblock) releases what it blocked, unless another failure still blocks it.

Nodes are numbered inside and each event costs O(1) plus the node's children (a
failure: the nodes it blocks, each once): a rollout over the registry has tens of
thousands of nodes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

from ..registry.depends import find_cycles
from .campaign import BLOCKED, BUILDING, DONE, FAILED, WAITING, Campaign

STATES = (DONE, FAILED, BLOCKED, WAITING, BUILDING)

K = TypeVar("K", bound=Hashable)
# A node's state changed: (key, new state, key of the failed node blocking it, or None).
OnChange = Callable[[K, str, "K | None"], None]


class Scheduler(Generic[K]):
    """The readiness of a campaign's nodes, from their parents and their states.

    `parents` maps every node to the nodes it waits for (others are ignored);
    `states` gives each node's state (default: waiting). Blocked states are derived
    from the failed ones, whatever `states` says. `on_change` hears every change of a
    node's state or blocker, so a caller can mirror them (campaign_scheduler does).
    """

    def __init__(
        self,
        parents: Mapping[K, Iterable[K]],
        states: Mapping[K, str] | None = None,
        max_in_flight: int = 0,
        on_change: OnChange[K] | None = None,
    ) -> None:
        keys: list[K] = list(parents)
        ids = {key: i for i, key in enumerate(keys)}
        self._ids: dict[K, int] | None = ids
        # Parents outside the campaign are dropped here, so callers may pass whole
        # dependency lists; a repeated parent is counted and released as often.
        get = ids.get
        numbered = [[i for i in map(get, ps) if i is not None] for ps in parents.values()]
        children: list[list[int]] = [[] for _ in keys]
        for node, node_parents in enumerate(numbered):
            for parent in node_parents:
                children[parent].append(node)
        if states:
            state = [states.get(key, WAITING) for key in keys]
            for key, one in zip(keys, state, strict=True):
                if one not in STATES:
                    raise ValueError(f"{key!r}: unknown state {one!r}")
        else:
            state = [WAITING] * len(keys)
        self._setup(keys, numbered, children, state, max_in_flight, on_change)

    @classmethod
    def numbered(
        cls,
        keys: Sequence[K],
        parents: Sequence[Sequence[int]],
        children: Sequence[Sequence[int]],
        members: Iterable[int],
    ) -> Scheduler[K]:
        """A fresh campaign over `members` of a graph numbered already (node i is
        keys[i], with parents[i] and children[i], read and never changed); the other
        nodes count as done, so nothing waits for them. Saves `wheelfarm plan` the
        numbering of 100,000 names."""
        state = [DONE] * len(keys)
        for node in members:
            state[node] = WAITING
        scheduler = cls.__new__(cls)
        scheduler._ids = None  # made when first asked for
        scheduler._setup(keys, parents, children, state, 0, None)
        return scheduler

    def _setup(
        self,
        keys: Sequence[K],
        parents: Sequence[Sequence[int]],
        children: Sequence[Sequence[int]],
        state: list[str],
        max_in_flight: int,
        on_change: OnChange[K] | None,
    ) -> None:
        self.max_in_flight = max_in_flight  # 0: no limit
        self._on_change = on_change
        self._keys, self._parents, self._children, self._state = keys, parents, children, state
        self._blocker: list[int | None] = [None] * len(keys)
        # parents not done yet, for the nodes not done: a node is ready at 0
        missing = [0] * len(keys)
        for node, one in enumerate(state):
            if one != DONE:
                missing[node] = sum(state[p] != DONE for p in parents[node])
        self._missing = missing
        self.in_flight = state.count(BUILDING)
        if FAILED in state or BLOCKED in state:
            self._derive_blocks()
        self._ready: deque[int] = deque(
            i for i, one in enumerate(state) if one == WAITING and not missing[i]
        )

    @property
    def _id(self) -> dict[K, int]:
        if self._ids is None:
            self._ids = {key: i for i, key in enumerate(self._keys)}
        return self._ids

    # -- reading

    def state(self, key: K) -> str:
        return self._state[self._id[key]]

    def blocker(self, key: K) -> K | None:
        """The failed node that blocks `key`, if it is blocked."""
        blocker = self._blocker[self._id[key]]
        return None if blocker is None else self._keys[blocker]

    def ready(self) -> list[K]:
        """The nodes that could start now, in the order take() gives them."""
        return [self._keys[i] for i in self._ready]

    @property
    def idle(self) -> bool:
        """Nothing is building and nothing can start: the campaign has ended."""
        return not self.in_flight and not self._ready

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for state in self._state:
            counts[state] += 1
        return counts

    # -- events

    def take(self) -> list[K]:
        """Start what may start: ready nodes, up to max_in_flight building at once."""
        room = len(self._ready)
        if self.max_in_flight:
            room = min(room, self.max_in_flight - self.in_flight)
        taken = [self._ready.popleft() for _ in range(max(room, 0))]
        for node in taken:
            self._set(node, BUILDING)
        self.in_flight += len(taken)
        return [self._keys[node] for node in taken]

    def finish(self, key: K, ok: bool) -> None:
        """A building node ended: done releases its children, failed blocks what is
        downstream of it."""
        node = self._id[key]
        if self._state[node] != BUILDING:
            raise ValueError(f"{key!r} is {self._state[node]}, not building")
        self.in_flight -= 1
        if ok:
            self._done(node)
        else:
            self._set(node, FAILED)
            self._block_from(node)

    def unblock(self, key: K) -> bool:
        """A failed node was built after all: it is done, and what it blocked waits
        again, unless another failure still blocks it. False if `key` had not failed."""
        node = self._id.get(key)
        if node is None or self._state[node] != FAILED:
            return False
        self._done(node)
        state, blocker = self._state, self._blocker
        # Children are looked at again after each parent changes, so a node with two
        # blocked parents is released once the second one is.
        todo = deque(self._children[node])
        while todo:
            child = todo.popleft()
            if state[child] != BLOCKED:
                continue
            by = self._blocked_by_parents(child)
            if by is None:
                self._set(child, WAITING)
                if not self._missing[child]:
                    self._ready.append(child)
            elif by == blocker[child]:
                continue
            else:
                self._set(child, BLOCKED, by)
            todo.extend(self._children[child])
        return True

    def waves(self) -> list[list[K]]:
        """Run a fresh campaign to its end as if every build succeeded, with no limit on
        builds in flight: wave k holds the nodes whose parents are all in earlier waves
        (sorted). Raises ValueError naming a dependency cycle."""
        if self.in_flight:
            raise ValueError("waves() needs a campaign with nothing building")
        keys, children, missing, state = self._keys, self._children, self._missing, self._state
        waves: list[list[K]] = []
        wave = [node for node in self._ready if state[node] == WAITING]
        self._ready.clear()
        while wave:
            waves.append(sorted(keys[node] for node in wave))  # type: ignore[type-var]
            released = []
            for node in wave:
                state[node] = DONE
                for child in children[node]:
                    missing[child] -= 1
                    if not missing[child] and state[child] == WAITING:
                        released.append(child)
            wave = released
        left = [i for i, s in enumerate(state) if s == WAITING]
        if left:
            raise ValueError(f"dependency cycle: {self._cycle_in(left)}")
        return waves

    # -- inside

    def _set(self, node: int, state: str, blocker: int | None = None) -> None:
        self._state[node], self._blocker[node] = state, blocker
        if self._on_change is not None:
            key = None if blocker is None else self._keys[blocker]
            self._on_change(self._keys[node], state, key)

    def _done(self, node: int) -> None:
        self._set(node, DONE)
        state, missing, ready = self._state, self._missing, self._ready
        for child in self._children[node]:
            missing[child] -= 1
            if not missing[child] and state[child] == WAITING:
                ready.append(child)

    def _block_from(self, failed: int) -> None:
        # A waiting node downstream of a node not done has a parent not done, so it is
        # never in the ready queue; an already blocked one has its descendants blocked.
        state, children = self._state, self._children
        todo = list(children[failed])
        while todo:
            node = todo.pop()
            if state[node] == WAITING:
                self._set(node, BLOCKED, failed)
                todo.extend(children[node])

    def _blocked_by_parents(self, node: int) -> int | None:
        """The failed node behind a failed or blocked parent of `node`, if any."""
        state = self._state
        for parent in self._parents[node]:
            if state[parent] == FAILED:
                return parent
            if state[parent] == BLOCKED:
                return self._blocker[parent]
        return None

    def _derive_blocks(self) -> None:
        """Blocked: exactly the waiting (or blocked) nodes below a failed one. Visits
        nodes in topological order so each sees its parents settled."""
        state = self._state
        for node in self._topological():
            if state[node] not in (WAITING, BLOCKED):
                continue
            by = self._blocked_by_parents(node)
            if by is not None:
                if (state[node], self._blocker[node]) != (BLOCKED, by):
                    self._set(node, BLOCKED, by)
            elif state[node] == BLOCKED:
                self._set(node, WAITING)

    def _topological(self) -> list[int]:
        waiting = [len(ps) for ps in self._parents]
        order = [node for node, count in enumerate(waiting) if not count]
        for node in order:  # the list grows while it is read
            for child in self._children[node]:
                waiting[child] -= 1
                if not waiting[child]:
                    order.append(child)
        return order  # nodes on a cycle are left out: they never become ready

    def _cycle_in(self, left: list[int]) -> str:
        """The shortest cycle among `left`, "a -> b -> a" (a waits for b)."""
        keys, inside = self._keys, set(left)
        edges = {
            str(keys[n]): [str(keys[p]) for p in self._parents[n] if p in inside]
            for n in sorted(left, key=lambda n: str(keys[n]))
        }
        cycle = min(find_cycles(edges), key=len)
        start = cycle.index(min(cycle))  # the same message whatever the order
        cycle = cycle[start:] + cycle[:start]
        return " -> ".join([*cycle, cycle[0]])


def waves(parents: Mapping[K, Iterable[K]]) -> list[list[K]]:
    """The waves of a campaign over `parents` (see Scheduler.waves)."""
    return Scheduler(parents).waves()


def campaign_scheduler(campaign: Campaign) -> Scheduler[str]:
    """A scheduler over the campaign's nodes that writes every change back to them
    (state, and blocked_by: the failed node's package), so the record shows it."""
    nodes = campaign.nodes

    def mirror(key: str, state: str, blocker: str | None) -> None:
        node = nodes[key]
        node.state = state
        node.blocked_by = None if blocker is None else nodes[blocker].package

    return Scheduler(
        {key: node.parents for key, node in nodes.items()},
        {key: node.state for key, node in nodes.items()},
        campaign.max_in_flight,
        mirror,
    )


def unblock(campaign: Campaign, key: str) -> bool:
    """The campaign's failed node `key` was built again: see Scheduler.unblock."""
    if key not in campaign.nodes or campaign.nodes[key].state != FAILED:
        return False
    campaign_scheduler(campaign).unblock(key)
    campaign.finished_at = None
    return True
