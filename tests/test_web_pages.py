"""Status records, package statuses, page escaping, badges and roles, without a master."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from buildbot.process.results import CANCELLED, EXCEPTION, FAILURE, RETRY, WARNINGS

from conftest import write_registry
from wheelfarm.cascade.campaign import BLOCKED, DONE, Campaign, Node, node_key
from wheelfarm.cascade.store import CampaignStore
from wheelfarm.registry.packages import load_registry
from wheelfarm.settings import Settings
from wheelfarm.state.status import (
    BUILT,
    CANCELLED_ROW,
    FAILED,
    SKIPPED_ROW,
    Row,
    StatusRecords,
    row_status,
)
from wheelfarm.web.access import AdminRoles, MaintainerRoles
from wheelfarm.web.badges import badge_svg
from wheelfarm.web.packages import (
    PAGE_SIZE,
    blocked_targets,
    list_page,
    package_page,
    package_status,
)
from wheelfarm.web.status_colours import COLOURS, PACKAGE_STATES

REGISTRY = """\
  - name: Good_Pkg
    platforms: [linux-x86_64, linux-aarch64]
    python: ['3.11']
    maintainers: [Alice]
  - name: half
    platforms: [linux-x86_64, linux-aarch64]
    python: ['3.11']
  - name: stuck
    platforms: [linux-x86_64]
    python: ['3.11']
  - name: old
    skip: needs libfoo
"""


def row(package: str, status: str, platform: str = "linux-x86_64", when: float = 1.0, **kw):
    return Row(package, "1.0", platform, "3.11", status, f"http://farm/#/b/{when}", when, **kw)


def registry(tmp_path):
    return load_registry(write_registry(tmp_path / "packages.yaml", REGISTRY))


def test_the_newest_row_wins_but_a_skipped_build_keeps_the_one_that_built():
    records = StatusRecords()
    built = row("good-pkg", BUILT, wheel="good_pkg-1.0-py3-none-any.whl")
    assert records.add(built)
    assert not records.add(row("good-pkg", SKIPPED_ROW, when=2.0))
    failed = row("half", FAILED, step="test", when=3.0)
    assert records.add(failed)
    assert records.rows("Good_Pkg") == [built] and records.rows("half") == [failed]
    newer = row("half", BUILT, when=4.0)
    assert records.add(newer)
    assert records.rows("half") == [newer] and records.count() == 2


def test_package_status_from_rows_and_campaigns(tmp_path):
    reg = registry(tmp_path)
    records = StatusRecords()
    for platform in ("linux-x86_64", "linux-aarch64"):
        records.add(row("good-pkg", BUILT, platform))
    records.add(row("half", BUILT, "linux-x86_64"))
    store = CampaignStore(tmp_path / "campaigns")
    key = node_key("stuck", "linux-x86_64", "3.11")
    nodes = {key: Node("stuck", "linux-x86_64", "3.11", [], BLOCKED, blocked_by="good-pkg")}
    store.save(Campaign("c1", "cascade", "t", "c", 1, nodes, created_at=1.0))
    blocked = blocked_targets(store)
    status = {name: package_status(p, records, blocked) for name, p in reg.packages.items()}
    assert status == {
        "good-pkg": "built",
        "half": "partly built",
        "stuck": "blocked",
        "old": "skipped",
    }
    assert package_status(reg.packages["half"], records, blocked, "linux-aarch64") == "not built"

    # a newer campaign that built it unblocks it; a newer failure makes the package red
    assert package_status(reg.packages["stuck"], records, blocked) == "blocked"
    records.add(row("stuck", BUILT, when=1.5))  # forced and built since: not blocked now
    assert package_status(reg.packages["stuck"], records, blocked) == "built"
    records.by_package.pop("stuck")
    nodes = {key: Node("stuck", "linux-x86_64", "3.11", [], DONE)}
    store.save(Campaign("c2", "cascade", "t", "c", 1, nodes, created_at=2.0))
    records.add(row("good-pkg", FAILED, "linux-aarch64", when=5.0, step="build"))
    blocked = blocked_targets(store)
    assert package_status(reg.packages["stuck"], records, blocked) == "not built"
    assert package_status(reg.packages["good-pkg"], records, blocked) == "failed"


def test_pages_escape_what_builds_report(tmp_path):
    reg = registry(tmp_path)
    records = StatusRecords()
    records.add(row("half", FAILED, step="<b>x</b>", reason="<script>alert(1)</script>"))
    page = package_page(reg.packages["half"], records, {}, None).decode()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "failed at step &lt;b&gt;x&lt;/b&gt;" in page
    listing = list_page(reg, records, {}, query="'><script>").decode()
    assert "'><script>" not in listing and "4 packages" in listing


def test_package_page_shows_a_wheels_abi_pins(tmp_path):
    from wheelfarm.index.store import Index
    from wheelmaker import make_wheel

    reg = registry(tmp_path)
    index = Index(tmp_path / "index")
    tag = "cp311-cp311-manylinux_2_28_x86_64"
    wheel = make_wheel(tmp_path / "w", "half", "1.0+abicore.2.0", tag=tag)
    index.add(wheel, {"pins": ["abicore>=2.0,<3"]})
    records = StatusRecords()
    records.add(row("half", BUILT, wheel=wheel.name))
    page = package_page(reg.packages["half"], records, {}, index).decode()
    assert "<span class='pins'>requires abicore&gt;=2.0,&lt;3</span>" in page
    # and what the latest verify build of it said
    from wheelfarm.index.verify import record_verification

    result = {"wheel": wheel.name, "reproducible": False, "differ": ["half/_x.so"]}
    record_verification(index.root, "half", {**result, "build_url": "http://farm/#/b/9"})
    page = package_page(reg.packages["half"], records, {}, index).decode()
    assert "href='http://farm/#/b/9'>not reproducible: half/_x.so differ</a>" in page


def test_badges_are_svg_coloured_by_status():
    for status in PACKAGE_STATES:
        colour = COLOURS[status]
        svg = ET.fromstring(badge_svg(status))
        texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
        assert texts == ["wheelfarm", status]
        fills = [r.get("fill") for r in svg.iter("{http://www.w3.org/2000/svg}rect")]
        assert colour in fills


def test_roles_of_admins_and_maintainers(tmp_path):
    admins = AdminRoles(["root", "wheelfarm/admins"])
    assert admins.getRolesFromUser({"username": "root"}) == ["admins"]
    assert admins.getRolesFromUser({"username": "x", "groups": ["wheelfarm/admins"]}) == ["admins"]
    assert admins.getRolesFromUser({"username": "x", "groups": ["wheelfarm"]}) == []
    maintainers = MaintainerRoles(registry(tmp_path))
    assert maintainers.getRolesFromUser({"username": "alice"}, "package:good-pkg") == ["maintainer"]
    assert maintainers.getRolesFromUser({"username": "alice"}, "package:half") == []
    assert maintainers.getRolesFromUser({"username": "alice"}, "alice") == []
    assert maintainers.getRolesFromUser({}, "package:good-pkg") == []


def test_interrupted_builds_say_nothing_about_the_wheel():
    assert row_status(RETRY) == row_status(CANCELLED) == CANCELLED_ROW
    assert row_status(EXCEPTION) == row_status(FAILURE) == FAILED
    assert row_status(WARNINGS) == BUILT


def test_access_settings_from_the_environment(tmp_path):
    settings = Settings.load(
        tmp_path, {"WHEELFARM_ADMINS": "root:wheelfarm/operators", "WHEELFARM_USERS_FILE": "/u"}
    )
    assert settings.admins == ["root", "wheelfarm/operators"]
    assert str(settings.users_file) == "/u"


def test_the_package_list_comes_in_pages(tmp_path):
    body = "".join(f"  - name: pkg{i:04d}\n    platforms: [linux-x86_64]\n" for i in range(1200))
    reg = load_registry(write_registry(tmp_path / "packages.yaml", body))
    records = StatusRecords()

    def names(page: str) -> list[str]:
        return [part.split("'")[0] for part in page.split("<tr data-name='")[1:]]

    first = list_page(reg, records, {}).decode()
    assert names(first)[0] == "pkg0000" and len(names(first)) == PAGE_SIZE
    assert "rows 1-500 of 1200" in first and "page=2" in first and "previous" not in first
    last = list_page(reg, records, {}, page=3).decode()
    assert names(last) == [f"pkg{i:04d}" for i in range(1000, 1200)]
    assert "rows 1001-1200 of 1200" in last and "next" not in last
    # the filter applies before the pages: the 100 names with "pkg11" fit on one page
    filtered = list_page(reg, records, {}, query="pkg11").decode()
    assert len(names(filtered)) == 100 and "rows" not in filtered.split("<table")[0]


def test_targets_no_worker_offers_count_in_no_status(tmp_path):
    """A local farm with only linux-x86_64 workers: the aarch64 targets are not missing."""
    reg, records = registry(tmp_path), StatusRecords()
    served = {"linux-x86_64": frozenset({"3.11"})}
    records.add(row("good-pkg", BUILT, wheel="good_pkg-1.0-py3-none-any.whl"))
    good = reg.packages["good-pkg"]
    assert package_status(good, records, {}) == "partly built"  # without the offer
    assert package_status(good, records, {}, served=served) == "built"
    assert package_status(good, records, {}, "linux-aarch64", served) == "not built"
    listing = list_page(reg, records, {}, served=served).decode()
    assert "1/1 offered, 1 not offered here" in listing
    page = package_page(good, records, {}, None, served=served).decode()
    assert "status: <b>built</b> (built 1/1 offered, 1 not offered here)" in page
    assert "not offered" in page.split("<h2>Now</h2>")[1]
    # a target built once keeps its status when its worker has gone
    half = reg.packages["half"]
    records.add(row("half", FAILED, "linux-aarch64", step="test", when=2.0))
    assert package_status(half, records, {}, served=served) == "failed"


def test_pages_and_badges_say_loading_while_a_start_reads_the_rows(tmp_path):
    from twisted.web.test.requesthelper import DummyRequest

    from wheelfarm.web.badges import Badges
    from wheelfarm.web.packages import PackagePages

    registry = load_registry(write_registry(tmp_path / "packages.yaml", "  - name: six\n"))
    loaded: list[StatusRecords | None] = [None]
    pages = PackagePages(registry, lambda: loaded[0], CampaignStore(tmp_path / "c"), None)

    def get(resource, *path: bytes) -> tuple[int, bytes]:
        request = DummyRequest(list(path))
        request.path = b"/farm/packages/" + b"/".join(path)
        body = resource.render(request)
        return request.responseCode or 200, body if isinstance(body, bytes) else b""

    for resource, path, shown in (
        (pages, [], b"six"),
        (pages.getChild(b"six", DummyRequest([])), [], b"six"),
        (Badges(pages), [b"six.svg"], b"not built"),
    ):
        code, body = get(resource, *path)
        assert code == 503 and b"try again" in body
        loaded[0] = StatusRecords()
        code, body = get(resource, *path)
        assert code == 200 and shown in body
        loaded[0] = None
