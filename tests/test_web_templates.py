"""The farm's pages from templates: every value escaped on every page, one stylesheet,
one table of status colours."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from conftest import write_registry
from wheelfarm.cascade.campaign import BLOCKED, DONE, FAILED, Campaign, Node, node_key
from wheelfarm.registry.packages import load_registry
from wheelfarm.registry.workers import WorkerEntry
from wheelfarm.state.status import BUILT, CANCELLED_ROW, SKIPPED_ROW, Row, StatusRecords
from wheelfarm.state.status import FAILED as ROW_FAILED
from wheelfarm.web import campaigns, packages
from wheelfarm.web.badges import badge_svg
from wheelfarm.web.render import render
from wheelfarm.web.status_colours import (
    CAMPAIGN_STATES,
    COLOURS,
    PACKAGE_STATES,
    PKG_NOT_OFFERED,
    css_class,
)
from wheelfarm.web.workers import workers_page

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
# out of a single-quoted attribute, then a script
BREAKOUT = "http://farm/'><script>alert(1)</script>"

REGISTRY = f"""\
  - name: good
    platforms: [linux-x86_64, linux-aarch64]
    python: ['3.11', '3.12']
  - name: evil
    skip: "{HOSTILE}"
"""


def hostile_records() -> StatusRecords:
    records = StatusRecords()
    common = {"package": "good", "python": "3.11", "finished_at": 1.0}
    records.add(
        Row(**common, version=HOSTILE, platform="linux-x86_64", status=ROW_FAILED,
            build_url=BREAKOUT, step=HOSTILE, reason=HOSTILE, log_url=BREAKOUT)
    )  # fmt: skip
    records.add(
        Row(**common, version="1.0", platform="linux-aarch64", status=BUILT,
            build_url=BREAKOUT, wheel=HOSTILE + ".whl")
    )  # fmt: skip
    return records


def hostile_campaign() -> Campaign:
    nodes = {
        node_key(HOSTILE, "linux-x86_64", "3.11"): Node(
            HOSTILE, "linux-x86_64", "3.11", [], FAILED, build_url=BREAKOUT, reason=HOSTILE
        ),
        node_key("good", "linux-x86_64", "3.11"): Node(
            "good", "linux-x86_64", "3.11", [], BLOCKED, blocked_by=HOSTILE
        ),
    }
    return Campaign(BREAKOUT, "cascade", HOSTILE, HOSTILE, 1, nodes, created_at=1.0)


def hostile_worker() -> WorkerEntry:
    return WorkerEntry(
        name=HOSTILE,
        owner=HOSTILE,
        platform="linux-x86_64",
        pythons=("3.11",),
        max_builds=1,
        tags=(),
        line=1,
    )


def pages(tmp_path) -> dict[str, str]:
    """Every page the farm renders, each from values a build, the registry, a campaign
    record or a workers file could carry."""
    registry = load_registry(write_registry(tmp_path / "packages.yaml", REGISTRY))
    records = hostile_records()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "package list": packages.list_page(registry, records, {}, HOSTILE, HOSTILE),
        "package list, unfiltered": packages.list_page(registry, records, {}),
        "package page": packages.package_page(registry.packages["good"], records, {}, None),
        "skipped package page": packages.package_page(
            registry.packages["evil"], records, {}, None, base_url=BREAKOUT
        ),
        "campaign list": campaigns.list_page([hostile_campaign()]),
        "campaign page": campaigns.campaign_page(hostile_campaign()),
        "workers page": workers_page([hostile_worker()], set(), [HOSTILE], now),
        "badge": badge_svg(HOSTILE, HOSTILE),
    }


def test_hostile_values_are_escaped_on_every_page(tmp_path):
    rendered = {name: page.decode() for name, page in pages(tmp_path).items()}
    for name, page in rendered.items():
        assert "<script>alert" not in page, name  # nor out of an attribute (BREAKOUT)
    for name in ("package page", "campaign page", "campaign list", "workers page", "badge"):
        assert ESCAPED in rendered[name], name
    assert f"skipped: {ESCAPED}" in rendered["skipped package page"]
    assert f"failed at step {ESCAPED}" in rendered["package page"]
    assert f"blocked by {ESCAPED}" in rendered["campaign page"]
    assert f"<td>{ESCAPED}</td><td>{ESCAPED}</td>" in rendered["workers page"]
    # the badge is XML that says what it was given
    svg = ET.fromstring(rendered["badge"])
    assert [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")] == [HOSTILE, HOSTILE]


def test_a_badge_stays_xml_whatever_its_text():
    svg = ET.fromstring(badge_svg("built\x00\x1b", "a & b \"c\" 'd'"))
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ["a & b \"c\" 'd'", "built\ufffd\ufffd"]


def test_one_stylesheet_with_the_one_colour_table(tmp_path):
    stylesheet = render("style.css").decode()
    for status, colour in COLOURS.items():
        assert f".{css_class(status)}{{--status:{colour}}}" in stylesheet
    # every status a page can show has its colour there
    for status in (*PACKAGE_STATES, PKG_NOT_OFFERED, *CAMPAIGN_STATES, CANCELLED_ROW):
        assert status in COLOURS, status
    assert {BUILT, ROW_FAILED, SKIPPED_ROW} <= set(COLOURS) and DONE in COLOURS

    classes = {css_class(s) for s in COLOURS}
    for name, page in pages(tmp_path).items():
        if name == "badge":
            continue
        html = page.decode()
        assert html.count("<style>") == 1 and stylesheet in html, name
        outside = html.replace(stylesheet, "")
        assert re.findall(r"#[0-9a-fA-F]{6}\b", outside) == [], name  # no colour of its own
        for used in re.findall(r"class='(?:cell|state) ([^']+)'", html):
            assert used in classes, (name, used)
        for used in re.findall(r"<div class='([^']+)' title=", html):  # a campaign's bar
            assert used in classes, (name, used)
