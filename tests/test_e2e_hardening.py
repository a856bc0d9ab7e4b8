"""A real master attacked as a stranger would, over HTTP: hostile names in every farm URL,
password guessing on /auth/login, and huge request bodies."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from conftest import ARTIFACTS, make_farm, write_registry
from wheelfarm.index import Index
from wheelfarm.localfarm import LocalFarm
from wheelmaker import make_wheel

pytestmark = pytest.mark.e2e

REGISTRY = """\
  - name: six
    platforms: [linux-x86_64]
    python: ['3.11']
"""


@pytest.fixture(scope="module")
def farm(tmp_path_factory) -> Iterator[LocalFarm]:
    """A master (and its worker) with `six` in the registry and one wheel of it in the index."""
    tmp = tmp_path_factory.mktemp("hardening")
    farm = make_farm(tmp, write_registry(tmp / "packages.yaml", REGISTRY))
    farm.create()
    Index(farm.settings().index_path).add(
        make_wheel(tmp / "wheels", "six", "1.0"), {"platform": "linux-x86_64"}
    )
    farm.start()
    try:
        yield farm
    finally:
        farm.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        log = farm.master_dir / "twistd.log"
        if log.exists():
            (ARTIFACTS / "test_e2e_hardening-master.log").write_bytes(log.read_bytes())


def get(farm: LocalFarm, path: str) -> tuple[int, bytes]:
    """GET the path exactly as written: no client normalises `..` or re-encodes bytes."""
    conn = http.client.HTTPConnection("127.0.0.1", farm.www_port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# Path segments a name never is: bad UTF-8, NUL, traversal, over NAME_MAX, unicode tricks.
HOSTILE = [
    "%ff",
    "%00",
    "a%00b",
    "..",
    "%2e%2e",
    ".",
    "%2f",
    "..%2f..%2fetc%2fpasswd",
    "%c0%af",
    "%e2%80%ae",
    "%C3%BCn%C3%AFcode",
    "x" * 300,
    "y" * 4000,
    "%0d%0aSet-Cookie:%20x=1",
    "~",
    ".lock",
    ".incoming",
    "six%00",
]
# Every family of the farm's URLs, with {} where the hostile name goes.
FAMILIES = [
    "/farm/{}",
    "/farm/campaigns/{}",
    "/farm/campaigns/{}/",
    "/farm/packages/{}",
    "/farm/packages/six/{}",
    "/farm/workers/{}",
    "/badges/{}",
    "/badges/{}.svg",
    "/badges/six/{}.svg",
    "/badges/{}/linux-x86_64.svg",
    "/simple/{}/",
    "/simple/{}",
    "/simple/six/{}",
    "/simple/six/{}.metadata",
]


def test_unknown_names_answer_404_whatever_their_bytes(farm):
    # the known names answer, so a 404 below is about the name, not a dead page
    for path in ("/farm/packages/six", "/badges/six.svg", "/simple/six/", "/farm/workers"):
        assert get(farm, path)[0] == 200, path
    wrong = {}
    for family in FAMILIES:
        for name in HOSTILE:
            path = family.format(name)
            status, body = get(farm, path)
            if status != 404:
                wrong[path[:80]] = (status, body[:80])
    assert wrong == {}
    # and the master is still fine
    assert get(farm, "/farm/packages/six")[0] == 200
