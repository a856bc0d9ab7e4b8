"""How an interrupted campaign's nodes are settled from what their build requests became."""

from __future__ import annotations

import datetime

from buildbot.db.buildrequests import BuildRequestModel
from buildbot.process.results import CANCELLED, FAILURE, RETRY, SUCCESS

from wheelfarm.cascade.campaign import BUILDING, Campaign, Node, node_key
from wheelfarm.cascade.recovery import settle

P, PY = "linux-x86_64", "3.11"


def campaign(**states: str) -> Campaign:
    names = list(states)
    nodes = {
        node_key(n, P, PY): Node(n, P, PY, [node_key(names[i - 1], P, PY)] if i else [], state=s)
        for i, (n, s) in enumerate(states.items())
    }
    return Campaign("c1", "rollout", "t", "cause", 2, nodes, orchestrated_by=7)


def request(brid: int, complete: bool, results: int | None = None) -> BuildRequestModel:
    now = datetime.datetime.now(datetime.UTC)
    return BuildRequestModel(brid, 1, 1, "b", now, complete=complete, results=results)


def states(c: Campaign) -> dict[str, str]:
    return {n.package: n.state for n in c.nodes.values()}


def test_finished_requests_decide_and_unfinished_ones_are_awaited():
    c = campaign(a=BUILDING, b=BUILDING, c="waiting")
    reqs = {("c1", node_key("a", P, PY)): request(1, True, SUCCESS)}
    reqs[("c1", node_key("b", P, PY))] = request(2, False)
    assert settle(c, reqs) == {node_key("b", P, PY): 2}
    assert states(c) == {"a": "done", "b": "building", "c": "waiting"}


def test_a_build_the_master_cut_short_runs_again_and_a_failure_blocks_downstream():
    c = campaign(a=BUILDING, b=BUILDING, c="waiting")
    reqs = {("c1", node_key("a", P, PY)): request(1, True, CANCELLED)}
    assert settle(c, reqs) == {}
    assert states(c) == {"a": "waiting", "b": "waiting", "c": "waiting"}

    c = campaign(a=BUILDING, b="waiting", c="waiting")
    reqs = {("c1", node_key("a", P, PY)): request(1, True, FAILURE)}
    settle(c, reqs)
    assert states(c) == {"a": "failed", "b": "blocked", "c": "blocked"}

    c = campaign(a=BUILDING, b="waiting", c="waiting")
    settle(c, {("c1", node_key("a", P, PY)): request(1, True, RETRY)})
    assert states(c)["a"] == "waiting"
