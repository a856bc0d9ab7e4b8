"""A real master attacked as a stranger would, over HTTP: hostile names in every farm URL,
password guessing on /auth/login, and huge request bodies."""

from __future__ import annotations

import base64
import http.client
import time
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


def login(farm: LocalFarm, user: str, password: str, source: str = "127.0.0.1"):
    """GET /auth/login with basic auth from a given loopback address: (status, headers)."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", farm.www_port, timeout=30, source_address=(source, 0)
    )
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        conn.request("GET", "/auth/login", headers={"Authorization": f"Basic {token}"})
        response = conn.getresponse()
        response.read()
        return response.status, response.headers
    finally:
        conn.close()


def test_password_guessing_is_throttled(farm):
    alice = farm.add_user("alice")
    bob = farm.add_user("bob")
    statuses, waits, slowest_index = [], set(), 0.0
    started = time.monotonic()
    for i in range(300):
        status, headers = login(farm, "alice", f"guess-{i}")
        statuses.append(status)
        if status == 429:
            waits.add(int(headers["Retry-After"]))
        if i % 50 == 0:  # the index answers at once meanwhile: nothing blocks the reactor
            t = time.monotonic()
            assert get(farm, "/simple/six/")[0] == 200
            slowest_index = max(slowest_index, time.monotonic() - t)
    elapsed = time.monotonic() - started
    print(
        f"300 guesses in {elapsed:.2f} s; Retry-After {min(waits)}-{max(waits)} s; "
        f"slowest /simple/six/ {slowest_index * 1000:.0f} ms"
    )
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429] * 290
    assert waits and all(0 < w <= 300 for w in waits)
    assert slowest_index < 1.0
    # locked: even the right password is not checked from anywhere until the window passes
    assert login(farm, "alice", alice, "127.0.0.2")[0] == 429
    # another user logs in, from this address and from another one
    for source in ("127.0.0.1", "127.0.0.2"):
        status, headers = login(farm, "bob", bob, source)
        assert status == 302, (source, status)
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie


def test_one_address_guessing_many_users_is_throttled(farm):
    carol = farm.add_user("carol")
    statuses = [login(farm, f"user{i}", "guess", "127.0.0.3")[0] for i in range(40)]
    assert statuses[:30] == [401] * 30 and statuses[30:] == [429] * 10
    assert login(farm, "carol", carol, "127.0.0.3")[0] == 429
    assert login(farm, "carol", carol, "127.0.0.4")[0] == 302
