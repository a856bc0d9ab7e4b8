"""A campaign driven while its record cannot be saved for a while (the database away):
the save loop goes on and says so, and the campaign ends."""

from __future__ import annotations

from types import SimpleNamespace

import sqlalchemy as sa
from buildbot.process.results import SUCCESS
from twisted.internet import defer, task
from twisted.python import log

from wheelfarm.cascade import orchestrate
from wheelfarm.cascade.campaign import DONE, Campaign, Node, node_key

P, PY = "linux-x86_64", "3.11"


class FlakyStore:
    """Fails its first `failures` saves as a dropped database connection does."""

    def __init__(self, failures: int) -> None:
        self.failures, self.saved = failures, []

    def save(self, campaign: Campaign) -> None:
        if self.failures:
            self.failures -= 1
            raise sa.exc.OperationalError("UPDATE", {}, Exception("AdminShutdown"))
        self.saved.append({k: n.state for k, n in campaign.nodes.items()})


class Step:
    prebuilt = None

    def __init__(self, store: FlakyStore) -> None:
        self.store = store
        self.master = SimpleNamespace(
            reactor=task.Clock(), config=SimpleNamespace(buildbotURL="http://farm/")
        )
        self.builds: dict[str, defer.Deferred] = {}

    def request(self, campaign: Campaign, key: str) -> dict:
        return {"key": key}

    def trigger(self, request: dict) -> tuple[defer.Deferred, defer.Deferred]:
        self.builds[request["key"]] = results = defer.Deferred()
        return defer.Deferred(), results


class Log:
    def addStdout(self, text: str) -> defer.Deferred:
        return defer.succeed(None)


def test_the_save_loop_survives_failed_saves_and_says_so(monkeypatch):
    monkeypatch.setattr(  # the store's calls run at once, not in a thread
        orchestrate.threads, "deferToThread", lambda f, *a, **kw: defer.maybeDeferred(f, *a, **kw)
    )
    a, b = node_key("a", P, PY), node_key("b", P, PY)
    campaign = Campaign(
        "c1", "rollout", "t", "cause", 2, {a: Node("a", P, PY, []), b: Node("b", P, PY, [a])}
    )
    step = Step(FlakyStore(failures=3))
    said: list[str] = []
    observer = lambda event: said.append(" ".join(map(str, event.get("message", ()))))  # noqa: E731
    log.addObserver(observer)
    try:
        driving = orchestrate.CampaignRun(step, campaign, Log()).drive({})
        clock = step.master.reactor
        clock.advance(1)  # three saves fail, one a second
        clock.advance(1)
        step.builds[a].callback((SUCCESS, {}))
        clock.advance(1)
        clock.advance(1)  # the loop still saves
        assert step.store.saved and step.store.saved[-1][b] == "building"
        step.builds[b].callback((SUCCESS, {}))
    finally:
        log.removeObserver(observer)
    assert driving.called and driving.result is None  # ended, not with an error
    assert {n.state for n in campaign.nodes.values()} == {DONE}
    failed = [m for m in said if "campaign c1: saving its record failed" in m]
    assert len(failed) == 3 and "AdminShutdown" in failed[0], said
