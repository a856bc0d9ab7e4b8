"""The campaign scheduler (wheelfarm.cascade.scheduler): what is ready, what a finished
node releases or blocks, max_in_flight, resuming, and the waves `wheelfarm plan` shows."""

from __future__ import annotations

import random

import pytest

from conftest import write_registry
from wheelfarm.cascade.campaign import (
    BLOCKED,
    BUILDING,
    DONE,
    FAILED,
    WAITING,
    Campaign,
    Node,
    cascade_campaign,
    node_key,
)
from wheelfarm.cascade.scheduler import Scheduler, campaign_scheduler, unblock, waves
from wheelfarm.registry.graph import Graph
from wheelfarm.registry.packages import load_registry

DIAMOND = {"b": ("a",), "c": ("a",), "d": ("b", "c")}
# a <- b <- c <- d, plus e on a and f on e and c: four levels below a
FOUR_LEVELS = {
    "a": (),
    "b": ("a",),
    "c": ("b",),
    "d": ("c",),
    "e": ("a",),
    "f": ("e", "c"),
}


def waves_of(graph: Graph, nodes: set[str]) -> list[list[str]]:
    """The waves of a campaign over `nodes`, waiting only for parents among them."""
    return waves(graph.subgraph_parents(nodes))


def cascade_waves(graph: Graph, roots: list[str], skip: set[str] = frozenset()) -> list[list[str]]:
    """As `wheelfarm plan` gets them: on the graph's own numbering."""
    return Scheduler.numbered(*graph.numbered(graph.descendants(roots) - skip)).waves()


# -- waves (what `wheelfarm plan` shows)


def test_diamond_builds_d_once_after_b_and_c():
    graph = Graph(DIAMOND)
    assert waves_of(graph, {"b", "c", "d"}) == [["b", "c"], ["d"]]
    assert cascade_waves(graph, ["a"]) == [["b", "c"], ["d"]]


def test_waves_of_four_levels():
    graph = Graph(FOUR_LEVELS)
    assert waves_of(graph, set(FOUR_LEVELS)) == [["a"], ["b", "e"], ["c"], ["d", "f"]]
    assert cascade_waves(graph, ["a"]) == [["b", "e"], ["c"], ["d", "f"]]


def test_waves_only_wait_for_parents_in_the_set():
    graph = Graph(FOUR_LEVELS)
    # d's parent c is not in the set, so d does not wait; f still waits for e
    assert waves_of(graph, {"b", "d", "e", "f"}) == [["b", "d", "e"], ["f"]]
    assert waves({"d": ["c"], "f": ["e"], "e": []}) == [["d", "e"], ["f"]]
    assert waves_of(graph, set()) == []


def test_a_cycle_in_waves_is_named():
    graph = Graph({"a": ("b", "z"), "b": ("c",), "c": ("a",), "d": ("a",), "x": ()})
    with pytest.raises(ValueError, match=r"^dependency cycle: a -> b -> c -> a$"):
        waves_of(graph, {"a", "b", "c", "d", "x"})
    with pytest.raises(ValueError, match=r"^dependency cycle: a -> b -> c -> a$"):
        cascade_waves(graph, ["z"])
    # a set that leaves the cycle open is fine, even in a graph that has one
    assert waves_of(graph, {"a", "b", "d", "x"}) == [["b", "x"], ["a"], ["d"]]
    assert cascade_waves(graph, ["c"]) == [["b"], ["a"], ["d"]]  # the root is not rebuilt


def test_depending_on_itself_is_a_cycle():
    with pytest.raises(ValueError, match=r"^dependency cycle: a -> a$"):
        waves({"a": ["a"]})


def test_skipped_packages_are_not_waited_for_but_what_is_downstream_is_built():
    graph = Graph(FOUR_LEVELS)
    # c is not built: nobody waits for it, d and f are still rebuilt
    assert cascade_waves(graph, ["a"], skip={"c"}) == [["b", "d", "e"], ["f"]]


def test_long_chains_do_not_recurse():
    n = 20_000  # far past the recursion limit
    graph = Graph({f"p{i}": (f"p{i - 1}",) for i in range(1, n)})
    chain = cascade_waves(graph, ["p0"])
    assert len(chain) == n - 1 and chain[-1] == [f"p{n - 1}"]


def test_a_cycle_elsewhere_does_not_matter():
    graph = Graph({**FOUR_LEVELS, "x": ("y",), "y": ("x",)})
    assert not graph.acyclic
    assert cascade_waves(graph, ["a"]) == [["b", "e"], ["c"], ["d", "f"]]
    assert cascade_waves(graph, ["a"], skip={"c"}) == [["b", "d", "e"], ["f"]]


def random_dag(rnd: random.Random, n: int) -> dict[str, tuple[str, ...]]:
    names = [f"n{i:03d}" for i in range(n)]
    deps = {
        name: tuple(rnd.sample(names[:i], min(i, rnd.randrange(4)))) for i, name in enumerate(names)
    }
    items = list(deps.items())
    rnd.shuffle(items)  # so the file order is not a topological one
    return dict(items)


def reference_waves(deps: dict[str, tuple[str, ...]], nodes: set[str]) -> list[list[str]]:
    """Straight from the definition: a node goes in the first wave after all its parents."""
    result: list[list[str]] = []
    placed: set[str] = set()
    while len(placed) < len(nodes):
        wave = sorted(n for n in nodes - placed if all(p in placed for p in deps[n] if p in nodes))
        result.append(wave)
        placed.update(wave)
    return result


def reference_blocked(deps: dict[str, tuple[str, ...]], nodes: set[str], failed: str) -> set[str]:
    """The nodes of the set that reach `failed` through nodes of the set."""
    blocked: set[str] = set()
    grew = True
    while grew:
        grew = False
        for n in nodes - blocked - {failed}:
            if any(p == failed or p in blocked for p in deps[n] if p in nodes):
                blocked.add(n)
                grew = True
    return blocked


@pytest.mark.parametrize("seed", range(20))
def test_scheduler_agrees_with_the_definitions(seed):
    rnd = random.Random(seed)
    deps = random_dag(rnd, 60)
    graph = Graph(deps)
    subset = set(rnd.sample(sorted(deps), 30))
    assert waves_of(graph, subset) == reference_waves(deps, subset)
    assert Scheduler.numbered(*graph.numbered(subset)).waves() == reference_waves(deps, subset)
    roots = rnd.sample(sorted(deps), 2)
    downstream = graph.descendants(roots)
    skip = set(rnd.sample(sorted(downstream), min(3, len(downstream))))
    assert cascade_waves(graph, roots, skip) == reference_waves(deps, downstream - skip)
    # run the campaign with 3 builds at a time and one failure: every node is started
    # only after its parents are done, and exactly what is below the failure is blocked
    failed = rnd.choice(sorted(subset))
    scheduler = Scheduler(graph.subgraph_parents(subset), max_in_flight=3)
    done: set[str] = set()
    while not scheduler.idle:
        started = scheduler.take()
        assert 0 < len(started) <= 3 and scheduler.in_flight <= 3
        for key in started:
            assert all(p in done for p in deps[key] if p in subset), key
        key = rnd.choice(started)
        for other in started:
            if other != key:
                scheduler.finish(other, other != failed)
                done.update([other] if other != failed else [])
        scheduler.finish(key, key != failed)
        done.update([key] if key != failed else [])
    blocked = reference_blocked(deps, subset, failed)
    assert {k for k in subset if scheduler.state(k) == BLOCKED} == blocked
    assert all(scheduler.blocker(k) == failed for k in blocked)
    assert done == subset - blocked - {failed}


# -- a campaign, event by event


def test_max_in_flight_and_release_order():
    scheduler = Scheduler({"a": [], "b": [], "c": [], "d": ["a", "b"]}, max_in_flight=2)
    assert scheduler.ready() == ["a", "b", "c"]
    assert scheduler.take() == ["a", "b"]
    assert scheduler.take() == []  # two in flight
    scheduler.finish("a", True)
    assert scheduler.take() == ["c"]  # d still waits for b
    scheduler.finish("b", True)
    assert scheduler.ready() == ["d"] and scheduler.take() == ["d"]  # c and d
    scheduler.finish("c", True)
    assert scheduler.take() == [] and not scheduler.idle
    scheduler.finish("d", True)
    assert scheduler.idle and scheduler.counts()[DONE] == 4
    with pytest.raises(ValueError, match="'d' is done, not building"):
        scheduler.finish("d", True)


def test_a_failure_blocks_downstream_and_a_second_blocker_keeps_it_blocked():
    # x and y both feed z; z feeds w
    parents = {"x": [], "y": [], "z": ["x", "y"], "w": ["z"], "v": []}
    changes: list[tuple[str, str, str | None]] = []
    scheduler = Scheduler(parents, on_change=lambda *change: changes.append(change))
    assert scheduler.take() == ["x", "y", "v"]
    scheduler.finish("x", False)
    assert scheduler.state("z") == scheduler.state("w") == BLOCKED
    assert scheduler.blocker("w") == "x"
    scheduler.finish("y", False)  # z is blocked already: it stays blocked by x
    assert scheduler.blocker("z") == "x"
    scheduler.finish("v", True)
    assert scheduler.idle
    assert ("w", BLOCKED, "x") in changes and ("v", DONE, None) in changes

    assert not scheduler.unblock("v")  # not failed: nothing to do
    assert scheduler.unblock("x")  # x was built: y still blocks z and w
    assert scheduler.state("x") == DONE
    assert (scheduler.blocker("z"), scheduler.blocker("w")) == ("y", "y")
    assert scheduler.unblock("y")
    assert scheduler.state("z") == WAITING and scheduler.take() == ["z"]


def test_given_states_derive_what_is_blocked():
    parents = {"a": [], "b": ["a"], "c": ["b"], "d": []}
    # a record written before the failure's downstream was marked, and a stale block
    scheduler = Scheduler(parents, {"a": FAILED, "b": WAITING, "c": WAITING, "d": BLOCKED})
    assert [scheduler.state(k) for k in "abcd"] == [FAILED, BLOCKED, BLOCKED, WAITING]
    assert scheduler.blocker("c") == "a" and scheduler.ready() == ["d"]
    # builds already in flight count against max_in_flight
    scheduler = Scheduler(parents, {"a": BUILDING, "d": WAITING}, max_in_flight=1)
    assert scheduler.in_flight == 1 and scheduler.take() == []
    with pytest.raises(ValueError, match="unknown state 'lost'"):
        Scheduler(parents, {"a": "lost"})


CAMPAIGN = """\
  - name: base
    abi: major
  - name: left
    depends: [base]
  - name: right
    depends: [base]
  - name: joint
    depends: [left, right]
    platforms: [linux-x86_64]
  - name: top
    depends: [joint]
"""


def key(name: str) -> str:
    return node_key(name, "linux-x86_64", "3.12")


def test_cascade_waits_for_parents_blocks_and_resumes(tmp_path):
    registry = load_registry(write_registry(tmp_path / "packages.yaml", CAMPAIGN))
    graph = Graph.from_registry(registry)
    campaign = cascade_campaign(registry, graph, "base", "2.0", "linux-x86_64", "3.12", 10)
    assert sorted(campaign.nodes) == sorted(key(n) for n in ("left", "right", "joint", "top"))
    scheduler = campaign_scheduler(campaign)
    assert scheduler.take() == [key("left"), key("right")]
    assert campaign.nodes[key("left")].state == BUILDING  # written back to the record
    scheduler.finish(key("left"), True)
    assert scheduler.take() == []  # joint still waits for right
    scheduler.finish(key("right"), False)
    assert campaign.nodes[key("right")].state == FAILED
    assert campaign.nodes[key("joint")].state == campaign.nodes[key("top")].state == BLOCKED
    assert campaign.nodes[key("top")].blocked_by == "right"
    assert scheduler.idle and scheduler.take() == []

    campaign.finished_at = 1.0
    assert not unblock(campaign, key("left"))  # not failed: nothing to do
    assert unblock(campaign, key("right"))
    assert campaign.finished_at is None  # it goes on
    assert campaign.nodes[key("right")].state == DONE
    assert campaign.nodes[key("joint")].state == WAITING
    assert campaign.nodes[key("joint")].blocked_by is None
    assert campaign_scheduler(campaign).take() == [key("joint")]


def test_unblock_is_per_node_not_per_package():
    # one package failed on two Pythons: building it again on one releases only that one
    nodes = {
        node_key(p, "linux-x86_64", py): Node(
            p, "linux-x86_64", py, [node_key("lib", "linux-x86_64", py)] if p == "app" else []
        )
        for p in ("lib", "app")
        for py in ("3.11", "3.12")
    }
    campaign = Campaign("c", "rollout", "t", "cause", 5, nodes)
    scheduler = campaign_scheduler(campaign)
    for k in scheduler.take():
        scheduler.finish(k, False)
    assert {n.state for n in nodes.values()} == {FAILED, BLOCKED}
    assert unblock(campaign, node_key("lib", "linux-x86_64", "3.11"))
    assert nodes[node_key("app", "linux-x86_64", "3.11")].state == WAITING
    assert nodes[node_key("app", "linux-x86_64", "3.12")].state == BLOCKED
