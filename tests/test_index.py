"""The farm's package index: add-only storage, and the PEP 503/691 simple API it serves.

The API tests run against a real server (`python -m wheelfarm.index.serve`) in a
subprocess, and are checked against the PEPs' required fields and by real
clients: pip, uv and pypi-simple.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import subprocess
import sys
import threading
import time
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from packaging.utils import canonicalize_name, parse_wheel_filename
from pypi_simple import ACCEPT_HTML_ONLY, ACCEPT_JSON_ONLY, PyPISimple
from twisted.web.test.requesthelper import DummyRequest

import wheelhouse
from wheelfarm.index.serve import JSON, TEXT_HTML, V1_HTML, SimpleIndexResource, negotiate
from wheelfarm.index.store import Index, IndexConflict, InvalidWheel
from wheelmaker import make_wheel

BIN = Path(sys.executable).parent
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
RECORD = {
    "sdist_sha256": "ab" * 32,
    "worker": "local",
    "platform": "linux-x86_64",
    "python": "3.11",
    "toolchain": {"cc": "gcc 12"},
    "toolchain_key": "k1",
    "build_url": "http://127.0.0.1:8010/#/builders/1/builds/1",
    "cause": "forced",
}
# real wheels from PyPI: a C extension (manylinux, cp311), a pure one (Metadata-Version
# 2.5), and one that setuptools<77 made with License-File in Metadata-Version 2.1
REAL = ["markupsafe==3.0.4", "idna==3.20", "six==1.17.0"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- storage


def test_add_stores_wheel_metadata_and_record(tmp_path):
    index = Index(tmp_path / "index")
    wheel = make_wheel(tmp_path / "src", "Tiny.Pkg", "1.0", requires_python=">=3.8")
    result = index.add(wheel, {**RECORD, "sha256": "forged", "size": -1})
    assert str(result) == "added"

    folder = tmp_path / "index" / "tiny-pkg"
    stored = folder / wheel.name
    assert stored.read_bytes() == wheel.read_bytes()
    assert (folder / f"{wheel.name}.metadata").read_bytes().startswith(b"Metadata-Version: 2.1")
    record = json.loads((folder / f"{wheel.name}.json").read_text())
    # the index's own fields win over the caller's
    assert (
        record["sha256"] == sha256(wheel.read_bytes()) and record["size"] == stored.stat().st_size
    )
    assert record["project"] == "tiny-pkg" and record["version"] == "1.0"
    assert record["requires_python"] == ">=3.8" and record["filename"] == wheel.name
    assert record["metadata_sha256"] == sha256((folder / f"{wheel.name}.metadata").read_bytes())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record["added_at"])
    assert record["toolchain"] == {"cc": "gcc 12"} and record["worker"] == "local"
    assert result.record == record
    assert index.records("Tiny_Pkg") == [record]
    assert index.projects() == ["tiny-pkg"]  # not .staging nor .lock


def test_same_bytes_again_is_a_noop(tmp_path):
    index = Index(tmp_path / "index")
    wheel = make_wheel(tmp_path / "src", "tiny", "1.0")
    first = index.add(wheel, RECORD)
    again = index.add(make_wheel(tmp_path / "other", "tiny", "1.0"), {**RECORD, "worker": "w2"})
    assert str(again) == "exists"
    assert again.record == first.record  # the first record stays
    assert len(index.records("tiny")) == 1


def test_same_bytes_from_a_new_toolchain_record_its_key_too(tmp_path):
    # a toolchain rollout rebuilt the wheel with identical bytes: run again, it must find
    # the wheel under the new key (it kept the old key only, and rebuilt everything)
    index, reader = Index(tmp_path / "index"), Index(tmp_path / "index")
    wheel = make_wheel(tmp_path / "src", "tiny", "1.0")
    first = index.add(wheel, RECORD)
    assert reader.find("tiny", toolchain_key="k2") == []  # read, and cached, before
    again = index.add(wheel, {**RECORD, "toolchain_key": "k2", "worker": "w2"})
    assert str(again) == "exists"
    assert again.record == {**first.record, "toolchain_keys": ["k1", "k2"]}
    for key in ("k1", "k2"):  # any Index object, whatever it had cached
        assert [r["filename"] for r in reader.find("tiny", toolchain_key=key)] == [wheel.name]
    assert reader.find("tiny", toolchain_key="k3") == []
    assert index.add(wheel, {**RECORD, "toolchain_key": "k2"}).record == again.record  # once
    assert (tmp_path / "index" / "tiny" / wheel.name).read_bytes() == wheel.read_bytes()


def test_other_bytes_under_the_same_name_are_refused(tmp_path):
    index = Index(tmp_path / "index")
    first = make_wheel(tmp_path / "a", "tiny", "1.0", payload="first")
    second = make_wheel(tmp_path / "b", "tiny", "1.0", payload="second")
    index.add(first, RECORD)
    with pytest.raises(IndexConflict) as e:
        index.add(second, RECORD)
    message = str(e.value)
    assert first.name in message
    assert sha256(first.read_bytes()) in message and sha256(second.read_bytes()) in message
    assert (tmp_path / "index" / "tiny" / first.name).read_bytes() == first.read_bytes()


def test_the_same_wheel_under_another_spelling_is_refused(tmp_path):
    index = Index(tmp_path / "index")
    index.add(make_wheel(tmp_path / "a", "tiny-pkg", "1.0"), RECORD)
    other = make_wheel(tmp_path / "b", "tiny-pkg", "1.0", filename="Tiny_Pkg-1.0-py3-none-any.whl")
    with pytest.raises(IndexConflict, match="already as tiny_pkg-1.0-py3-none-any.whl"):
        index.add(other, RECORD)


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda d: make_wheel(d, "tiny", "1.0", filename="foo.txt"), "not a wheel file name"),
        (lambda d: make_wheel(d, "tiny", "1.0", filename="x.whl"), "not a wheel file name"),
        (lambda d: d / ".." / "x.whl", "not a wheel file name"),
        (lambda d: make_wheel(d, "tiny", "1.0", metadata_name="other"), "METADATA says other"),
        (lambda d: make_wheel(d, "tiny", "1.0", metadata_version="1.1"), "METADATA says tiny 1.1"),
        (lambda d: make_wheel(d, "tiny", "1.0", metadata_version="one"), "invalid METADATA"),
        (lambda d: _write(d / "tiny-1.0-py3-none-any.whl", b"not a zip"), "not a readable zip"),
    ],
    ids=["txt", "no-version", "dotdot", "other-name", "other-version", "bad-version", "not-zip"],
)
def test_bad_wheels_are_refused_and_leave_nothing(tmp_path, make, problem):
    index = Index(tmp_path / "index")
    wheel = make(tmp_path / "src")
    with pytest.raises(InvalidWheel, match=problem):  # a ValueError, as the publish step expects
        index.add(wheel, RECORD)
    assert index.projects() == []
    staging = tmp_path / "index" / ".staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_a_full_disk_while_publishing_leaves_nothing(tmp_path, monkeypatch):
    index = Index(tmp_path / "index")
    wheel = make_wheel(tmp_path / "src", "six", "1.0")

    def full(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr("wheelfarm.index.store.os.link", full)
    with pytest.raises(OSError, match="No space left"):
        index.add(wheel, RECORD)
    monkeypatch.undo()
    assert index.projects() == []
    assert sorted(p.name for p in (tmp_path / "index").rglob("*") if p.is_file()) == [".lock"]
    assert index.add(wheel, RECORD).status == "added"


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("same_bytes", [True, False])
def test_concurrent_adds_of_one_name_publish_exactly_one_file(tmp_path, same_bytes):
    index = Index(tmp_path / "index")
    wheels = [
        make_wheel(tmp_path / f"src{i}", "tiny", "1.0", payload="" if same_bytes else str(i))
        for i in range(8)
    ]
    barrier = threading.Barrier(len(wheels))
    outcomes: list[str] = []

    def add(wheel: Path) -> None:
        barrier.wait()
        try:
            outcomes.append(str(index.add(wheel, RECORD)))
        except IndexConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=add, args=(w,)) for w in wheels]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("added") == 1
    assert sorted(set(outcomes) - {"added"}) == (["exists"] if same_bytes else ["conflict"])
    # what is stored is whole, and its record describes it
    (record,) = index.records("tiny")
    stored = (tmp_path / "index" / "tiny" / record["filename"]).read_bytes()
    assert sha256(stored) == record["sha256"]
    assert stored in [w.read_bytes() for w in wheels]


def test_find_matches_what_a_build_would_make(tmp_path):
    index = Index(tmp_path / "index")
    src = tmp_path / "src"
    for tag in ("cp311-cp311-manylinux_2_17_x86_64", "cp38-abi3-manylinux_2_17_x86_64"):
        index.add(make_wheel(src, "c-ext", "2.0", tag=tag), RECORD)
    index.add(make_wheel(src, "pure", "1.0"), RECORD)
    index.add(make_wheel(src, "pure", "1.1"), {**RECORD, "toolchain_key": "k2"})

    def found(project, **kw) -> list[str]:
        return sorted(r["filename"] for r in index.find(project, **kw))

    assert len(found("c-ext", version="2.0", python="3.11", platform="linux-x86_64")) == 2
    # 3.12 installs only the abi3 wheel
    assert found("C_Ext", python="3.12") == ["c_ext-2.0-cp38-abi3-manylinux_2_17_x86_64.whl"]
    assert found("c-ext", python="3.7") == []
    assert found("c-ext", platform="macos-arm64") == []
    assert found("c-ext", sdist_sha256="cd" * 32) == []
    assert found("c-ext", version="2.0.0", sdist_sha256="ab" * 32, toolchain_key="k1") != []
    assert found("c-ext", version="2.1") == []
    # a pure wheel installs on any Python 3 and is a wheel for every platform
    assert found("pure", version="1.0", python="3.14", platform="windows-x86_64") == [
        "pure-1.0-py3-none-any.whl"
    ]
    assert found("pure", toolchain_key="k2") == ["pure-1.1-py3-none-any.whl"]
    assert found("unknown") == [] and found("..") == []
    # a pinned rebuild (pins.py) is a wheel of its public version
    index.add(make_wheel(src, "pinned", "1.0+abicore.2.0"), RECORD)
    assert found("pinned", version="1.0") == ["pinned-1.0+abicore.2.0-py3-none-any.whl"]
    assert found("pinned", version="1.0+abicore.2.0") != []
    assert found("pinned", version="1.0+abicore.1.0") == []


def test_records_follow_adds_made_by_another_index_object(tmp_path):
    # the master's step and its web server hold different Index objects
    reader, writer = Index(tmp_path / "index"), Index(tmp_path / "index")
    writer.add(make_wheel(tmp_path / "src", "tiny", "1.0"), RECORD)
    assert [r["version"] for r in reader.records("tiny")] == ["1.0"]
    assert reader.cached_records("tiny") is reader.cached_records("tiny")  # cached
    writer.add(make_wheel(tmp_path / "src", "tiny", "1.1"), RECORD)
    assert [r["version"] for r in reader.records("tiny")] == ["1.0", "1.1"]


def test_project_list_of_15000_projects_is_fast(tmp_path):
    root = tmp_path / "index"
    for i in range(15_000):
        (root / f"project-{i}").mkdir(parents=True)
    index = Index(root)
    started = time.perf_counter()
    assert len(index.projects()) == 15_000
    listing = time.perf_counter() - started
    assert listing < 1.0, listing

    site = SimpleIndexResource(index)

    def get() -> tuple[bytes, float]:
        request = DummyRequest([b""])
        request.requestHeaders.setRawHeaders(b"accept", [JSON.encode()])
        started = time.perf_counter()
        body = site.render(request)
        return body, time.perf_counter() - started

    first, _ = get()
    again, cached = get()
    assert again is first  # rendered once until the listing changes
    assert len(json.loads(first)["projects"]) == 15_000
    assert cached < 1.0, cached


# -- content negotiation (PEP 691)


@pytest.mark.parametrize(
    "accept, chosen",
    [
        (None, TEXT_HTML),
        ("", TEXT_HTML),
        (PIP_ACCEPT, JSON),
        (JSON, JSON),
        ("application/vnd.pypi.simple.latest+json", JSON),
        (V1_HTML, V1_HTML),
        ("application/vnd.pypi.simple.latest+html", V1_HTML),
        ("text/html", TEXT_HTML),
        ("*/*", TEXT_HTML),
        ("text/html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.6", JSON),
        ("text/html, application/vnd.pypi.simple.v1+json;q=0.9", TEXT_HTML),
        ("text/html;q=0, */*", V1_HTML),
        ("*/*;q=0.1, application/vnd.pypi.simple.v1+json;q=0.5", JSON),
        ("application/json", None),
        ("image/png, text/plain", None),
        ("text/html;q=0", None),
        ("application/vnd.pypi.simple.v2+json", None),
    ],
)
def test_negotiate(accept, chosen):
    assert negotiate(accept) == chosen


# -- the served API


@pytest.fixture(scope="module")
def pypi_wheels() -> dict[str, Path]:
    """PyPI's own wheels of REAL, from the tests' index of locked wheels (no network)."""
    found = {}
    for wheel in wheelhouse.directory().glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        if f"{name}=={version}" in REAL:
            found[name] = wheel
    assert len(found) == len(REAL), f"run `make wheelhouse`: {wheelhouse.directory()}"
    return found


def test_metadata_newer_fields_are_tolerated_but_bad_metadata_is_not(pypi_wheels, tmp_path):
    # six 1.17.0's wheel has License-File under Metadata-Version 2.1 (pypa/setuptools#4759):
    # packaging refuses it strictly, the index accepts it
    index = Index(tmp_path / "index")
    assert str(index.add(pypi_wheels["six"], RECORD)) == "added"
    # a METADATA that is really invalid (a bad version) is refused
    broken = tmp_path / "six-1.17.0-py2.py3-none-any.whl"
    with zipfile.ZipFile(pypi_wheels["six"]) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith(".dist-info/METADATA"):
                data = data.replace(b"Version: 1.17.0", b"Version: not-a-version")
            dst.writestr(item, data)
    with pytest.raises(InvalidWheel, match="invalid METADATA"):
        Index(tmp_path / "other").add(broken, RECORD)


@pytest.fixture(scope="module")
def served(tmp_path_factory, pypi_wheels):
    """A server on a free loopback port for an index with a few wheels; (url, index, wheels)."""
    tmp = tmp_path_factory.mktemp("served")
    index = Index(tmp / "index")
    wheels = {
        "tiny": make_wheel(tmp / "src", "wheelfarm-test.Tiny", "1.0", requires_python=">=3.8"),
        "tiny11": make_wheel(tmp / "src", "wheelfarm-test.Tiny", "1.1", requires_python=">=3.8,<4"),
        "other": make_wheel(tmp / "src", "wheelfarm-test-other", "0.1"),
    }
    for wheel in wheels.values():
        index.add(wheel, RECORD)
    for project in ("markupsafe", "idna"):
        index.add(pypi_wheels[project], RECORD)
    (index.root / "wheelfarm-test-tiny" / "stray.txt").write_text("not published")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wheelfarm.index.serve", str(index.root), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url, index, wheels
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def get(url: str, accept: str | None = None, **kw) -> requests.Response:
    headers = {"Accept": accept} if accept else {}
    return requests.get(url, headers=headers, timeout=10, allow_redirects=False, **kw)


class Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[dict[str, str], str]] = []
        self.meta: dict[str, str] = {}
        self._open: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._open = dict(attrs)
        elif tag == "meta":
            self.meta[dict(attrs)["name"]] = dict(attrs)["content"]

    def handle_data(self, data):
        if self._open is not None:
            self.anchors.append((self._open, data))
            self._open = None


def parse_html(text: str) -> Anchors:
    parser = Anchors()
    parser.feed(text)
    return parser


UPLOAD_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")


def test_json_pages_have_the_fields_pep_691_and_700_require(served):
    url, index, _ = served
    top = get(url, JSON)
    assert top.status_code == 200 and top.headers["content-type"] == JSON
    assert top.headers["vary"] == "Accept"
    body = top.json()
    assert body["meta"]["api-version"] == "1.1"
    names = [p["name"] for p in body["projects"]]
    assert names == index.projects() and "wheelfarm-test-tiny" in names and "markupsafe" in names

    for name in names:
        page = get(f"{url}{name}/", JSON)
        assert page.status_code == 200 and page.headers["content-type"] == JSON
        detail = page.json()
        assert detail["meta"]["api-version"] == "1.1"
        assert detail["name"] == canonicalize_name(detail["name"]) == name
        versions = detail["versions"]
        assert isinstance(versions, list) and len(set(versions)) == len(versions)
        assert detail["files"]
        for f in detail["files"]:
            fname, fversion = f["filename"], str(parse_wheel_filename(f["filename"])[1])
            assert "/" not in fname and fversion in versions
            assert set(f["hashes"]) == {"sha256"} and re.fullmatch(
                r"[0-9a-f]{64}", f["hashes"]["sha256"]
            )
            assert (
                f["core-metadata"]
                == f["dist-info-metadata"]
                == {"sha256": f["core-metadata"]["sha256"]}
            )
            assert isinstance(f["size"], int) and UPLOAD_TIME.fullmatch(f["upload-time"])
            assert f["yanked"] is False
            assert isinstance(f.get("requires-python", ""), str)
            # the url (relative to the page) serves those bytes, and the metadata its hash
            wheel = get(urljoin(page.url, f["url"]))
            assert wheel.status_code == 200 and len(wheel.content) == f["size"]
            assert sha256(wheel.content) == f["hashes"]["sha256"]
            metadata = get(urljoin(page.url, f["url"]) + ".metadata")
            assert metadata.status_code == 200
            assert sha256(metadata.content) == f["core-metadata"]["sha256"]


def test_html_pages_follow_pep_503_629_658_714(served):
    url, index, wheels = served
    top = get(url)
    assert top.status_code == 200 and top.headers["content-type"] == "text/html; charset=utf-8"
    parsed = parse_html(top.text)
    assert parsed.meta["pypi:repository-version"] == "1.1"
    assert [(a["href"], text) for a, text in parsed.anchors] == [
        (f"{n}/", n) for n in index.projects()
    ]

    page = get(f"{url}wheelfarm-test-tiny/", V1_HTML)
    assert page.headers["content-type"] == f"{V1_HTML}; charset=utf-8"
    assert page.headers["vary"] == "Accept"
    # the specifier is escaped in the attribute, and parses back to itself
    assert 'data-requires-python="&lt;4,&gt;=3.8"' in page.text
    parsed = parse_html(page.text)
    assert parsed.meta["pypi:repository-version"] == "1.1"
    by_name = {text: attrs for attrs, text in parsed.anchors}
    assert set(by_name) == {wheels["tiny"].name, wheels["tiny11"].name}
    attrs = by_name[wheels["tiny"].name]
    href, _, fragment = attrs["href"].partition("#")
    assert urlsplit(href).path.rsplit("/", 1)[-1] == wheels["tiny"].name  # text = last component
    assert fragment == f"sha256={sha256(wheels['tiny'].read_bytes())}"
    assert attrs["data-requires-python"] == ">=3.8"
    metadata = get(urljoin(page.url, href) + ".metadata").content
    assert (
        attrs["data-core-metadata"]
        == attrs["data-dist-info-metadata"]
        == f"sha256={sha256(metadata)}"
    )
    assert b"Name: wheelfarm-test.Tiny" in metadata


@pytest.mark.parametrize(
    "accept, status, content_type",
    [
        (None, 200, "text/html; charset=utf-8"),
        (PIP_ACCEPT, 200, JSON),
        ("text/html", 200, "text/html; charset=utf-8"),
        ("application/vnd.pypi.simple.latest+html", 200, f"{V1_HTML}; charset=utf-8"),
        ("application/json", 406, "text/plain; charset=utf-8"),
    ],
)
def test_content_negotiation_over_http(served, accept, status, content_type):
    url, _, _ = served
    for page in (url, f"{url}idna/"):
        response = get(page, accept)
        assert (response.status_code, response.headers["content-type"]) == (status, content_type)
        assert response.headers["vary"] == "Accept"


@pytest.mark.parametrize(
    "path, location",
    [
        ("/simple", "/simple/"),
        ("/simple/IDNA/", "/simple/idna/"),
        ("/simple/idna", "/simple/idna/"),
        ("/simple/WheelFarm_Test.TINY/", "/simple/wheelfarm-test-tiny/"),
        ("/simple/MarkupSafe", "/simple/markupsafe/"),
    ],
)
def test_non_normalised_names_redirect(served, path, location):
    url, _, _ = served
    response = get(urljoin(url, path))
    assert response.status_code == 301 and response.headers["location"] == location
    assert get(urljoin(url, location)).status_code == 200


def test_the_build_record_is_next_to_the_wheel(served):
    url, index, wheels = served
    response = get(f"{url}wheelfarm-test-tiny/{wheels['tiny'].name}.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    record = response.json()
    assert record == index.records("wheelfarm-test-tiny")[0]
    assert record["sdist_sha256"] == RECORD["sdist_sha256"] and record["worker"] == "local"


@pytest.mark.parametrize(
    "path",
    [
        "/simple/nope/",
        "/simple/NoPe/",
        "/simple/nope/nope-1.0-py3-none-any.whl",
        "/simple/../../../etc/passwd",
        "/simple/idna/../../../etc/passwd",
        "/simple/idna/..%2F..%2F..%2Fetc%2Fpasswd",
        "/simple/idna/%2Fetc%2Fpasswd",
        "/simple//etc/passwd",
        "/simple/%2Fetc%2Fpasswd/",
        "/simple/.staging/",
        "/simple/.lock",
        "/simple/wheelfarm-test-tiny/stray.txt",
        "/simple/wheelfarm-test-tiny/.lock",
        # a wheel is served only under its own project
        "/simple/idna/wheelfarm_test_other-0.1-py3-none-any.whl",
        "/simple/wheelfarm-test-tiny/wheelfarm_test_tiny-1.0-py3-none-any.whl/",
        "/simple/wheelfarm-test-tiny/wheelfarm_test_tiny-1.0-py3-none-any.whl.lock",
        "/simple/Wheelfarm-Test-Tiny/wheelfarm_test_tiny-1.0-py3-none-any.whl",
        "/simple/wheelfarm-test-tiny/%FF",
    ],
)
def test_unknown_and_outside_paths_are_not_found(served, path):
    url, _, _ = served
    # http.client sends the path as written: requests would resolve the dots first
    split = urlsplit(url)
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 404, (path, response.status, response.getheader("location"))
    assert b"root:" not in body


# -- real clients


def fresh_venv(path: Path) -> Path:
    subprocess.run([BIN / "uv", "venv", "-q", "--python", sys.executable, path], check=True)
    return path / "bin" / "python"


def test_pypi_simple_parses_both_formats(served, tmp_path):
    url, index, wheels = served
    for accept in (ACCEPT_JSON_ONLY, ACCEPT_HTML_ONLY):
        with PyPISimple(endpoint=url, accept=accept) as client:
            assert set(index.projects()) <= {p for p in client.get_index_page().projects}
            page = client.get_project_page("Wheelfarm_Test.Tiny")  # the client normalises
            assert page.repository_version == "1.1"
            packages = {p.filename: p for p in page.packages}
            assert set(packages) == {wheels["tiny"].name, wheels["tiny11"].name}
            pkg = packages[wheels["tiny"].name]
            assert pkg.project == "wheelfarm_test_tiny" and pkg.version == "1.0"
            assert pkg.package_type == "wheel" and pkg.requires_python == ">=3.8"
            assert pkg.digests == {"sha256": sha256(wheels["tiny"].read_bytes())}
            assert pkg.has_metadata and set(pkg.metadata_digests) == {"sha256"}
            if accept == ACCEPT_JSON_ONLY:
                assert pkg.size == wheels["tiny"].stat().st_size and pkg.upload_time is not None
                assert page.versions == ["1.0", "1.1"]
            # both verify the digests the page gave
            assert "Version: 1.0" in client.get_package_metadata(pkg)
            client.download_package(pkg, tmp_path / pkg.filename, verify=True)
            assert (tmp_path / pkg.filename).read_bytes() == wheels["tiny"].read_bytes()


def test_pip_downloads_and_installs_from_the_index_only(served, tmp_path):
    url, _, wheels = served
    # --isolated: no pip.conf or PIP_* settings (extra indexes, find-links) on this machine
    pip = [sys.executable, "-m", "pip", "--isolated"]
    subprocess.run(
        [*pip, "download", "-q", "--index-url", url, "--only-binary", ":all:", "--no-deps",
         "--dest", tmp_path / "dl", "wheelfarm-test-tiny==1.0"],
        check=True,
    )  # fmt: skip
    assert (tmp_path / "dl" / wheels["tiny"].name).read_bytes() == wheels["tiny"].read_bytes()

    py = fresh_venv(tmp_path / "venv")
    subprocess.run(
        [*pip, "--python", py, "install", "-q", "--no-cache-dir", "--index-url", url,
         "--only-binary", ":all:", "markupsafe", "idna", "wheelfarm-test-tiny"],
        check=True,
    )  # fmt: skip
    check_installed(py)


def test_uv_installs_from_the_index(served, tmp_path):
    url, _, _ = served
    py = fresh_venv(tmp_path / "venv")
    subprocess.run(
        [BIN / "uv", "pip", "install", "-q", "--no-config", "--no-cache", "--python", py,
         "--index-url", url, "--only-binary", ":all:", "markupsafe", "idna", "wheelfarm-test-tiny"],
        check=True,
    )  # fmt: skip
    check_installed(py)


def check_installed(py: Path) -> None:
    out = subprocess.run(
        [py, "-c", "import markupsafe._speedups, idna, wheelfarm_test_tiny; "
         "from importlib.metadata import version; "
         "print(markupsafe.escape('<'), version('wheelfarm-test.tiny'))"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert out.stdout.split() == ["&lt;", "1.1"]  # the newest version
