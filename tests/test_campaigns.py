"""Campaigns: which nodes a cascade or rollout covers, ABI keys, what a new wheel means
downstream, records. Which nodes are ready, blocked, resumed: test_scheduler.py."""

from __future__ import annotations

from conftest import write_registry
from wheelfarm.cascade.campaign import (
    FAILED,
    abi_key,
    cascade_action,
    cascade_campaign,
    node_key,
    rollout_campaign,
)
from wheelfarm.cascade.scheduler import campaign_scheduler
from wheelfarm.cascade.store import CampaignStore
from wheelfarm.registry.graph import Graph
from wheelfarm.registry.packages import load_registry
from wheelfarm.registry.rollouts import Rollout

DIAMOND = """\
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


def diamond(tmp_path):
    registry = load_registry(write_registry(tmp_path / "packages.yaml", DIAMOND))
    return registry, Graph.from_registry(registry)


def key(name: str) -> str:
    return node_key(name, "linux-x86_64", "3.12")


def test_abi_keys():
    assert abi_key("major", "2.1.3", pure=False) == "2"
    assert abi_key("minor", "2.1.3", pure=False) == "2.1"
    assert abi_key("every-release", "2.1.3", pure=False) == "2.1.3"
    assert abi_key(None, "2.1.3", pure=True) is None  # pure: no ABI
    assert abi_key(None, "2.1.3", pure=False) == "2.1"


def test_cascade_only_covers_what_builds_on_that_platform(tmp_path):
    registry, graph = diamond(tmp_path)
    campaign = cascade_campaign(registry, graph, "base", "2.0", "macos-arm64", "3.12", 10)
    names = sorted(n.package for n in campaign.nodes.values())
    assert names == ["left", "right", "top"]  # joint is linux only
    top = campaign.nodes[node_key("top", "macos-arm64", "3.12")]
    assert top.parents == []  # its parent does not build here: nothing to wait for


def test_rollout_nodes_and_records_round_trip(tmp_path):
    registry, graph = diamond(tmp_path)
    rollout = Rollout("py", "", ("3.12",), ("linux-x86_64",), None, "2099.1", 3)
    campaign = rollout_campaign(registry, graph, rollout, ["linux-x86_64", "macos-arm64"])
    assert len(campaign.nodes) == 5 and campaign.toolchain == "2099.1"
    assert campaign.nodes[key("joint")].parents == [key("left"), key("right")]
    store = CampaignStore(tmp_path / "campaigns")
    store.save(campaign)
    assert store.load(campaign.id) == campaign
    assert store.load("../etc") is None


def test_a_verify_rollout_waits_for_nothing(tmp_path):
    registry, graph = diamond(tmp_path)
    rollout = Rollout("check", "", ("3.12",), ("linux-x86_64",), None, None, 3, verify=True)
    campaign = rollout_campaign(registry, graph, rollout, ["linux-x86_64"])
    assert campaign.verify and len(campaign.nodes) == 5
    assert all(node.parents == [] for node in campaign.nodes.values())
    assert sorted(campaign_scheduler(campaign).ready()) == sorted(campaign.nodes)
    store = CampaignStore(tmp_path / "campaigns")
    store.save(campaign)
    assert store.load(campaign.id).verify


def test_cascade_action_needs_a_new_release_with_another_abi_key(tmp_path):
    store = CampaignStore(tmp_path / "campaigns")

    def record(version: str, at: str) -> dict:
        return {
            "project": "base",
            "version": version,
            "platform": "linux-x86_64",
            "python": "3.12",
            "filename": f"base-{version}-cp312-cp312-linux_x86_64.whl",
            "added_at": at,
        }

    old, keeps, breaks = record("1.0", "1"), record("1.1", "2"), record("2.0", "2")
    assert cascade_action([old], keeps, "major", store.all) is None
    assert cascade_action([old], breaks, "major", store.all) == "cascade"
    assert cascade_action([], breaks, "major", store.all) is None  # a first release
    rebuilt = dict(breaks, filename="base-2.0-1-cp312-cp312-linux_x86_64.whl")
    assert cascade_action([old, breaks], rebuilt, "major", store.all) is None  # not a new release
    pinned = dict(breaks, version="2.0+abicore.1.0", filename="base-2.0+abicore.1.0-cp312-x.whl")
    assert cascade_action([old, breaks], pinned, "major", store.all) is None  # a rebuild of 2.0
    # a backfill of an old version (0.9 or 1.5 while 2.0 is published) starts nothing,
    # whenever it is added
    backfill, between = record("0.9", "3"), record("1.5", "3")
    assert cascade_action([old, breaks], backfill, "major", store.all) is None
    assert cascade_action([old, breaks], between, "major", store.all) is None
    # the previous *version* decides, not the last wheel added
    assert cascade_action([breaks, backfill], record("2.1", "4"), "major", store.all) is None
    assert cascade_action([old, backfill], record("3.0", "4"), "major", store.all) == "cascade"

    registry, graph = diamond(tmp_path)
    campaign = cascade_campaign(registry, graph, "base", "2.0", "linux-x86_64", "3.12", 10)
    campaign.nodes[key("right")].state = FAILED
    store.save(campaign)
    fixed = {**record("1.2", "3"), "project": "right", "filename": "right-1.2-py3-none-any.whl"}
    assert cascade_action([], fixed, None, store.all) == "resume"


def test_rollouts_file_reads_verify(tmp_path):
    from wheelfarm.problems import ValidationError
    from wheelfarm.registry.rollouts import load_rollouts

    path = tmp_path / "rollouts.yaml"
    path.write_text("schema: 1\nrollouts:\n  - {name: check, verify: true}\n  - {name: py}\n")
    check, py = load_rollouts(path, {"a"})
    assert check.verify is True and py.verify is False
    path.write_text("schema: 1\nrollouts:\n  - name: check\n    verify: sometimes\n")
    try:
        load_rollouts(path, {"a"})
    except ValidationError as e:
        assert [str(p) for p in e.problems] == [
            f"{path}:4: rollouts[0].verify: expected true or false, got string"
        ]
    else:
        raise AssertionError("verify: sometimes was accepted")
