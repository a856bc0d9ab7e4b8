"""A real master attacked as a stranger would, over HTTP: hostile names in every farm URL,
password guessing on /auth/login, and huge request bodies."""

from __future__ import annotations

import base64
import http.client
import json
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conftest import ARTIFACTS, make_farm, write_registry
from wheelfarm.cli.localfarm import LocalFarm
from wheelfarm.index.store import Index
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
    # hostile query strings are no names: the list page still answers
    for query in ("%ff=1", "q=%ff%00", "page=%ff", "status=%c0%af", "q=" + "z" * 4000):
        assert get(farm, f"/farm/packages/?{query}")[0] == 200, query
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


MiB = 1024 * 1024
LIMIT = 32 * MiB  # the default max_body_bytes


def stream_body(farm: LocalFarm, method: str, path: str, total: int, chunked: bool = False):
    """Send a `total`-byte body from one reused 1 MiB buffer (nothing held in memory),
    like a client that does not listen; note when the answer came and how much was sent.
    Returns (status line, seconds from the headers to the answer, bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", farm.www_port), timeout=60)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {total}\r\n"
    chunk = bytes(MiB)
    piece = f"{MiB:x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
    answer, answered_at, sent = b"", None, 0
    started = time.monotonic()
    try:
        sock.sendall(head.encode() + b"\r\n")
        while sent < total:
            if answered_at is None and select.select([sock], [], [], 0)[0]:
                answer, answered_at = sock.recv(4096), time.monotonic()
            sock.sendall(piece)
            sent += MiB
    except OSError:  # the server hung up on the rest of the body
        pass
    try:
        if answered_at is None:
            answer, answered_at = sock.recv(4096), time.monotonic()
    except OSError:
        pass
    finally:
        sock.close()
    status = answer.split(b"\r\n", 1)[0].decode()
    return status, (answered_at or time.monotonic()) - started, sent


def master_memory(farm: LocalFarm) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of the master process, in bytes."""
    pid = (farm.master_dir / "twistd.pid").read_text().strip()
    status = Path(f"/proc/{pid}/status").read_text()
    return {
        key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1)) * 1024
        for key in ("VmRSS", "VmHWM")
    }


def test_a_1gb_body_is_refused_while_pip_installs(farm, tmp_path):
    before = master_memory(farm)
    peak = [before["VmRSS"]]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak.append(master_memory(farm)["VmRSS"])
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    pip = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-cache-dir",
            "--quiet",
            "--target",
            str(tmp_path / "target"),
            "--index-url",
            f"{farm.url}simple/",
            "six==1.0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        status, to_answer, sent = stream_body(
            farm, "POST", "/api/v2/forceschedulers/force", 1024 * MiB
        )
        pip_out, _ = pip.communicate(timeout=120)
    finally:
        stop.set()
        sampler.join()
    after = master_memory(farm)
    print(
        f"1 GiB body: {status!r} after {to_answer * 1000:.0f} ms, {sent // MiB} MiB sent "
        f"before the hang-up; master RSS {before['VmRSS'] // MiB} MiB before, peak "
        f"{max(peak) // MiB} MiB, VmHWM {after['VmHWM'] // MiB} MiB; pip exit {pip.returncode}"
    )
    assert status == "HTTP/1.1 413 Request Entity Too Large"
    assert to_answer < 2.0
    assert pip.returncode == 0, pip_out
    assert (tmp_path / "target" / "six" / "__init__.py").is_file()
    assert max(peak) < 300 * MiB and after["VmHWM"] < 300 * MiB


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/api/v2/forceschedulers/force"),
        ("POST", "/change_hook/github"),
        ("GET", "/auth/login"),
        ("GET", "/simple/"),
        ("POST", "/farm/packages/"),
        ("PUT", "/badges/six.svg"),
    ],
)
def test_every_endpoint_refuses_big_bodies(farm, method, path):
    # declared too big: refused from the headers, before any of it is sent
    status, to_answer, _ = stream_body(farm, method, path, LIMIT + 1)
    assert status == "HTTP/1.1 413 Request Entity Too Large" and to_answer < 2.0
    # chunked, with no length: refused once past the limit
    status, _, sent = stream_body(farm, method, path, 2 * LIMIT, chunked=True)
    assert status == "HTTP/1.1 413 Request Entity Too Large"
    assert sent <= 2 * LIMIT


def test_a_body_under_the_limit_goes_through(farm):
    # an anonymous force with a 1 MiB body reaches Buildbot, which refuses it itself
    body = json.dumps({"id": 1, "jsonrpc": "2.0", "method": "force", "params": {"x": "y" * MiB}})
    r = requests.post(f"{farm.url}api/v2/forceschedulers/force", data=body, timeout=60)
    assert r.status_code not in (413, 500), r.status_code
    assert get(farm, "/simple/six/")[0] == 200
