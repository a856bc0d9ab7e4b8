"""The trust boundary's rules, each varied on its inputs (no network, no master): what a
package may name as a requirement, what the host reads of what a build wrote, what it
removes, and the container argv of a phase. The same attacks through a real master are
tests/test_e2e_attacks.py."""

from __future__ import annotations

import os
import re
import stat
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from farmtool.facts import Failure
from farmtool.files import fresh_dir, read_bounded, remove_tree
from farmtool.isolation import Phase
from farmtool.isolation.container import ContainerPlace, inside, moved
from farmtool.isolation.limits import Limits
from farmtool.requirements import plain, use_packaging
from farmtool.wheels import check_zip, take_wheel


@pytest.fixture(scope="module", autouse=True)
def packaging_loaded():
    """`packaging` as the build's frontend folder has it: here, the test venv's."""
    import packaging

    use_packaging(Path(packaging.__file__).parents[1])


# --- rule 2: nothing a package says becomes an option, a path or a mount --------------

REFUSED = [
    "--find-links",
    "-f/root",
    "--index-url=http://evil.example/simple",
    "--extra-index-url",
    "-e .",
    "-r /etc/passwd",
    "-c constraints.txt",
    "--config-file=/etc/shadow",
    "/etc/passwd",
    "./local",
    "../up",
    "~/secret",
    "C:\\Windows\\evil",
    "evil @ file:///etc/passwd",
    "evil @ https://evil.example/evil.tar.gz",
    "evil@git+https://evil.example/evil",
    "evil-1.0-py3-none-any.whl",
    "https://evil.example/evil.tar.gz",
    "evil ; __import__('os').system('id')",
    "foo\nbar",
    "foo\x00bar",
    "",
    "x" * 2000,
]


@pytest.mark.parametrize("raw", REFUSED)
def test_a_requirement_that_is_not_a_project_fails_the_build_naming_it(raw):
    with pytest.raises(Failure) as failed:
        plain(["setuptools>=61", raw], "[build-system] requires")
    message = str(failed.value)
    assert message.startswith("build failed: bad requirement ")
    assert "in [build-system] requires: " in message
    assert "\n" not in message and len(message) < 300


@pytest.mark.parametrize("raw", [42, None, ["setuptools"], {"name": "x"}])
def test_a_requirement_that_is_not_a_string_is_refused(raw):
    with pytest.raises(Failure, match="not a requirement string"):
        plain([raw], "the backend's build requirements")


def test_plain_requirements_pass_written_out_again():
    assert plain(
        ["setuptools >= 61", "Cython<3.1,>=0.29", "foo[bar, baz]>=1; python_version < '3.12'"],
        "x",
    ) == ["setuptools>=61", "Cython<3.1,>=0.29", 'foo[bar,baz]>=1; python_version < "3.12"']


# --- rule 3: the host never follows what untrusted code could write --------------------


def test_read_bounded_refuses_links_fifos_devices_and_too_much(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("the worker's password")
    (tmp_path / "link").symlink_to(secret)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    (tmp_path / "big").write_bytes(b"x" * 2048)
    for name, why in (("link", "cannot read"), ("fifo", "not a regular file"),
                      ("dir", "not a regular file"), ("big", "over the limit")):  # fmt: skip
        with pytest.raises(Failure, match=why):
            read_bounded(tmp_path / name, limit=1024)
    with pytest.raises(Failure, match="not a regular file"):
        read_bounded("/dev/zero")
    assert read_bounded(secret) == b"the worker's password"


def _wheel(folder: Path, name: str, members: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return path


def test_the_wheel_is_taken_only_as_a_regular_file_within_the_limits(tmp_path):
    dest = fresh_dir(tmp_path / "dest")
    limits = Limits(wheel=1 << 20, unpacked=4 << 20, members=100)
    good = _wheel(tmp_path / "good", "a-1.0-py3-none-any.whl",
                  {"a/__init__.py": b"", "a-1.0.dist-info/METADATA": b"Name: a\n"})  # fmt: skip
    assert take_wheel(good.parent, dest, limits).read_bytes() == good.read_bytes()
    name = "b-1.0-py3-none-any.whl"
    cases = {
        "symlink": ("is not a regular file", lambda d: (d / name).symlink_to(good)),
        "fifo": ("is not a regular file", lambda d: os.mkfifo(d / name)),
        "two": ("expected one wheel",
                lambda d: [_wheel(d, f"b-1.{i}-py3-none-any.whl", {}) for i in (0, 1)]),
        "name": ("is not a wheel file name", lambda d: _wheel(d, "b-1.0-x y-none-any.whl", {})),
        "bomb": ("unpacks to", lambda d: _wheel(d, name, {"z": bytes(8 << 20)})),
        "members": ("has over 100 members",
                    lambda d: _wheel(d, name, {f"m{i}": b"" for i in range(101)})),
        "outside": ("outside the wheel", lambda d: _wheel(d, name, {"../x": b""})),
        "big": ("is 1.5 MiB, over 1 MiB", lambda d: _wheel(d, name, {"r": os.urandom(3 << 19)})),
        "url-dependency": ("in its wheel's Requires-Dist: a URL or path", lambda d: _wheel(
            d, name, {"b-1.0.dist-info/METADATA": b"Name: b\nRequires-Dist: x @ file:///etc\n"})),
        "two-metadata": ("has 2 METADATA files", lambda d: _wheel(
            d, name, {"b-1.0.dist-info/METADATA": b"", "c-1.0.dist-info/METADATA": b""})),
    }  # fmt: skip
    for label, (why, make) in cases.items():
        folder = tmp_path / label
        folder.mkdir()
        make(folder)
        with pytest.raises(Failure, match=why):
            take_wheel(folder, fresh_dir(tmp_path / "dest"), limits)
        assert list((tmp_path / "dest").iterdir()) == [], label  # nothing was taken


def test_a_zip_bomb_is_refused_before_anything_unpacks_it(tmp_path):
    bomb = tmp_path / "bomb-1.0-py3-none-any.whl"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("zeros", "w", force_zip64=True) as f:
            for _ in range(64):
                f.write(bytes(1 << 24))  # 1 GiB of zeros, a megabyte compressed
    assert bomb.stat().st_size < 4 << 20
    with pytest.raises(Failure, match="unpacks to 1 GiB, over 64 MiB"):
        check_zip(bomb, Limits(unpacked=64 << 20))


# --- rule 7: cleanup that cannot be jammed, and follows no link --------------------------


JAM = """
import os, sys
root = sys.argv[1]
os.makedirs(root + "/a/b/c")
open(root + "/a/b/c/f", "w").write("x")
os.symlink(sys.argv[2], root + "/a/link-to-outside")
os.chmod(root + "/a/b/c", 0)
os.chmod(root + "/a/b", 0o500)
os.chmod(root + "/a", 0o500)
"""


def test_removal_works_whatever_modes_a_build_left_and_follows_no_link(tmp_path):
    """As an unprivileged worker: a folder of mode 0500 holding one of mode 0000, and a
    link out of the build, which must stay whole."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("the worker's")
    build = tmp_path / "build"
    build.mkdir()
    for folder in [tmp_path, *tmp_path.parents][:3]:  # pytest's are 0700: let the user in
        os.chmod(folder, os.stat(folder).st_mode | 0o055)
    for folder in (build, outside):
        os.chown(folder, 65534, 65534) if os.geteuid() == 0 else None
    as_user: dict = {"user": 65534, "group": 65534} if os.geteuid() == 0 else {}
    python = "/usr/bin/python3" if as_user else sys.executable  # one the user may run
    subprocess.run([python, "-c", JAM, str(build), str(outside)], check=True, **as_user)
    code = (
        "import sys; sys.path.insert(0, sys.argv[3]); from farmtool.files import fresh_dir;"
        "from pathlib import Path; fresh_dir(Path(sys.argv[1]))"
    )
    package = str(Path(__import__("farmtool").__file__).parents[1])
    done = subprocess.run([python, "-c", code, str(build), str(outside), package],
                          capture_output=True, text=True, **as_user)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list(build.iterdir()) == []
    assert (outside / "keep").read_text() == "the worker's"


def test_remove_tree_removes_a_link_not_its_target(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "f").write_text("x")
    (tmp_path / "link").symlink_to(target)
    remove_tree(tmp_path / "link")
    assert (target / "f").exists() and not (tmp_path / "link").exists()
    os.chmod(target, stat.S_IRUSR | stat.S_IXUSR)
    remove_tree(target)
    assert not target.exists()


def test_removing_a_tree_reads_each_folder_a_few_times_not_once_per_entry(tmp_path, monkeypatch):
    """A build may leave up to a million entries in one folder: reading the folder again
    for each one it removes would take hours; each folder is read a few times at most,
    whatever it holds (files, links, empty folders, a deep chain)."""
    import farmtool.files

    tree = tmp_path / "left"
    for kind, count in (("files", 3000), ("links", 800), ("folders", 600)):
        folder = tree / kind
        folder.mkdir(parents=True)
        for i in range(count):
            entry = folder / f"{kind}-{i}"
            if kind == "files":
                entry.touch()
            elif kind == "links":
                entry.symlink_to("/etc/passwd")
            else:
                entry.mkdir(mode=0o500 if i % 2 else 0o700)
    deep = tree
    for _ in range(farmtool.files.DEEPEST + 8):  # deeper than it keeps open: moved up
        deep = deep / "d"
        deep.mkdir()
        (deep / "f").touch()
    folders = sum(1 for _, dirs, _ in os.walk(tree) for _ in dirs) + 1
    reads = []
    real = os.scandir
    monkeypatch.setattr(farmtool.files.os, "scandir", lambda fd: reads.append(fd) or real(fd))
    remove_tree(tree)
    assert not tree.exists()
    assert len(reads) <= 3 * folders, (len(reads), folders)


PLANTED_META = "Metadata-Version: 2.1\nName: cleanpkg\nVersion: 1.0\n"
PLANTED_WHEEL = "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
# where a wheel's .data/ may put a dist-info: other Pythons' site folders, the real one,
# the real one through uv's lib64 link, the venv's root, purelib (the real one again)
PLACES = ["data/lib/python3.99/site-packages", f"data/lib/python{PY}/site-packages",
          f"data/lib64/python{PY}/site-packages", f"data/lib/python{PY}t/site-packages",
          "data", "data/lib", "purelib"]  # fmt: skip


def _venv_with(tmp_path: Path, *wheels: Path) -> Path:
    venv = tmp_path / "venv"
    uv = str(Path(sys.executable).parent / "uv")
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--no-config", "--offline", "--no-deps",
         "--python", str(venv / "bin" / "python"), *map(str, wheels)],
        check=True,
    )  # fmt: skip
    return venv


def _planted(place: str, record: bool, version: str = "1.0") -> dict[str, str]:
    folder = f"planter-1.0.data/{place}/cleanpkg-{version}.dist-info"
    files = {f"{folder}/METADATA": PLANTED_META, f"{folder}/WHEEL": PLANTED_WHEEL}
    if record:
        files[f"{folder}/RECORD"] = f"cleanpkg-{version}.dist-info/METADATA,,\n"
    return files


def test_a_requirements_own_files_never_name_what_is_installed(tmp_path):
    """A build requirement's wheel may carry dist-infos anywhere its `.data/` lets it,
    and rewrite the venv's pyvenv.cfg to name another Python: the facts of the
    environment, which make the build record and its ABI pins, name only what the
    installer installed."""
    from farmtool.venvs import env_facts, installed_versions
    from wheelmaker import make_wheel

    planted = {"planter-1.0.data/data/pyvenv.cfg": "home = /nowhere\nversion_info = 3.99.0\n"}
    for i, place in enumerate(PLACES):
        planted.update(_planted(place, record=False, version=f"1.{i}"))
    venv = _venv_with(tmp_path, make_wheel(tmp_path / "wheels", "planter", "1.0", extra=planted))
    assert len(list(venv.rglob("cleanpkg-*.dist-info"))) >= 5  # the installer put them there
    assert "3.99" in (venv / "pyvenv.cfg").read_text()
    assert set(env_facts(venv, None, set())) == {"planter"}
    assert "cleanpkg" not in installed_versions(venv)


@pytest.mark.parametrize("place", [p for p in PLACES if p not in ("data", "data/lib")])
def test_a_dist_info_a_requirement_forges_fails_the_build(tmp_path, place):
    """With a RECORD of its own, a dist-info planted in a site folder looks installed:
    the build fails, naming the requirement that wrote it, whichever site folder it is
    (outside them, as the test above shows, it is not read at all)."""
    from farmtool.venvs import env_facts
    from wheelmaker import make_wheel

    wheel = make_wheel(tmp_path / "wheels", "planter", "1.0", extra=_planted(place, record=True))
    venv = _venv_with(tmp_path, wheel)
    with pytest.raises(Failure, match="planter-1.0.dist-info writes the dist-info of another"):
        env_facts(venv, None, set())


def test_a_requirement_that_rewrites_anothers_metadata_fails_the_build(tmp_path):
    from farmtool.venvs import env_facts
    from wheelmaker import make_wheel

    real = make_wheel(tmp_path / "wheels", "realdep", "2.0")
    liar = make_wheel(
        tmp_path / "wheels", "liar", "1.0",
        extra={"liar-1.0.data/purelib/realdep-2.0.dist-info/METADATA": PLANTED_META},
    )  # fmt: skip
    venv = _venv_with(tmp_path, real, liar)
    with pytest.raises(Failure, match="writes the dist-info of another distribution"):
        env_facts(venv, None, set())


def test_a_record_too_big_to_read_fails_the_build(tmp_path, monkeypatch):
    """A RECORD the facts cannot read would leave its files unchecked."""
    from farmtool import venvs
    from wheelmaker import make_wheel

    many = {f"bulky/f{i}.py": "" for i in range(200)}
    venv = _venv_with(tmp_path, make_wheel(tmp_path / "wheels", "bulky", "1.0", extra=many))
    monkeypatch.setattr(venvs, "RECORD_MAX", 4096)
    with pytest.raises(Failure, match="cannot read what bulky-1.0.dist-info installed"):
        venvs.env_facts(venv, None, set())


# --- rule 6: a container phase's argv -------------------------------------------------


def test_a_container_phase_is_offline_unprivileged_and_limited(tmp_path, monkeypatch):
    import farmtool.isolation.container as container

    monkeypatch.setattr(container, "require", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.chdir(tmp_path)
    place = ContainerPlace("podman", "img", "3.11")
    place._manager = "systemd"  # no cgroup of our own: the engine's flags
    argv = place._argv(
        "n", ["/b/python", "-c", "x"], cwd=tmp_path / ".buildsrc", writable=(tmp_path / "w",),
        network="none", env_file="/e", untrusted=True, limits=Limits(memory=1 << 30, processes=9,
        cpu=5, disk=1 << 20), rm=False, readable=("/root/.rustup/tc",),
    )  # fmt: skip
    text = " ".join(argv)
    wanted = (
        "--network none",
        "--cap-drop all",
        "--security-opt no-new-privileges",
        "--read-only",
        "--memory 1073741824",
        "--pids-limit 9",
        "--env-file /e",
    )
    for option in wanted:
        assert option in text, option
    assert argv[argv.index("--user") + 1] == ("65534:65534" if os.geteuid() == 0 else
                                              f"{os.geteuid()}:{os.getegid()}")  # fmt: skip
    assert f"{tmp_path}:{tmp_path}:ro" in argv and f"{tmp_path}/w:{tmp_path}/w:rw" in argv
    assert f"{tmp_path}/.facts:ro,size=4k,notmpcopyup" in argv  # the facts, hidden
    assert f"/root/.rustup/tc:{inside('/root/.rustup/tc')}:ro" in argv
    # no value of the environment is on the command line, and CPU and file size are set
    # inside (an engine's --ulimit brings defaults some hosts refuse)
    # (a file may take a quarter of the disk limit, 64 MiB at least)
    assert "--ulimit" not in argv and f"CPU=5,FSIZE={64 << 20}" in argv
    for bad in ("/b:c", "/b,c", "relative"):
        with pytest.raises(Failure):
            place._argv("n", [], cwd=tmp_path, writable=(Path(bad),), network="none",
                        env_file="/e", untrusted=True)  # fmt: skip


def test_a_phases_read_only_folders_are_moved_where_the_container_has_them():
    phase = Phase("crates fetch", ["/root/.rustup/tc/bin/cargo", "fetch"], Path("/b"),
                  {"PATH": "/b/.buildenv/bin:/root/.rustup/tc/bin:/usr/bin"}, (),
                  ("/root/.rustup/tc",))  # fmt: skip
    there = inside("/root/.rustup/tc")
    assert moved(phase).argv == [f"{there}/bin/cargo", "fetch"]
    assert moved(phase).env["PATH"] == f"/b/.buildenv/bin:{there}/bin:/usr/bin"


def test_an_environment_value_that_cannot_go_into_an_env_file_is_refused(tmp_path):
    from farmtool.isolation.container import _env_file

    with pytest.raises(Failure, match="cannot pass the variable 'CFLAGS'"):
        with _env_file({"CFLAGS": "-O2\n--privileged"}):
            pass
    with _env_file({"CFLAGS": "-O2 --privileged"}) as path:
        assert Path(path).read_text() == "CFLAGS=-O2 --privileged\n"
    assert not Path(path).exists()


DEEP = """
import os, sys
os.chdir(sys.argv[1])
for depth in range(int(sys.argv[2])):
    name = "d" * 250
    os.mkdir(name)
    os.chdir(name)
    if depth % 7 == 3:
        open("f", "w").write("x")
os.chmod(".", 0o500)
"""


@pytest.mark.parametrize("depth", [40, 300])
def test_removal_works_through_a_tree_deeper_than_a_path_may_be(tmp_path, depth):
    """40 folders of 250 characters: paths of 10,000 characters, past PATH_MAX (4096);
    300: more folders than the removal keeps open at once."""
    build = tmp_path / "build"
    build.mkdir()
    subprocess.run([sys.executable, "-c", DEEP, str(build), str(depth)], check=True)
    fresh_dir(build)
    assert list(build.iterdir()) == []
    (build / "again").mkdir()
    remove_tree(build)
    assert not build.exists()


# --- the build record's facts: what the trusted side installed, not what a wheel claims ---


def test_a_wheel_cannot_add_distributions_to_the_build_record(tmp_path):
    """A requirement's wheel may install any folder through its `.data/purelib`, such as
    the dist-info of a registry package or another setuptools, each with its own RECORD:
    the build fails rather than let the record name them."""
    import farmtool.venvs
    from sdists import make_wheel

    forged = {"forgery/__init__.py": ""}
    for name, version in (("cleanpkg", "1.0"), ("setuptools", "99.0")):
        info = f"forgery-1.0.data/purelib/{name}-{version}.dist-info"
        forged[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        forged[f"{info}/WHEEL"] = "Tag: py3-none-any\n"
        forged[f"{info}/RECORD"] = f"{name}-{version}.dist-info/METADATA,,\n"
    wheel = make_wheel(tmp_path / "wheels", "forgery", "1.0", forged)
    venv = tmp_path / "venv"
    uv = Path(sys.executable).parent / "uv"
    subprocess.run([uv, "venv", "-q", venv, "--python", sys.executable], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--no-index", "--python", venv / "bin" / "python",
                    wheel], check=True)  # fmt: skip
    site = next(venv.glob("lib/python3*/site-packages"))
    assert (site / "cleanpkg-1.0.dist-info" / "METADATA").exists()  # it was installed...
    with pytest.raises(Failure, match="forgery-1.0.dist-info writes the dist-info of another"):
        farmtool.venvs.env_facts(venv, None, set())  # ... and the build fails


# --- output: every line bounded, however long it goes on --------------------------------


def test_a_line_without_end_is_shown_once_cut(tmp_path, capfdbinary):
    from farmtool.processes import LINE_MAX, run

    code = (
        "import sys; w = sys.stdout.buffer.write; "
        "[w(b'x' * (1 << 20)) for _ in range(16)]; w(b'\\nnext line\\n'); w(b'tail')"
    )
    done = run([sys.executable, "-c", code], echo_cmd=False)
    shown = capfdbinary.readouterr().out
    assert len(shown) < 2 * LINE_MAX  # 16 MiB of one line: shown once, cut
    assert shown.count(b"[line cut]") == 1 and b"next line\ntail\n" in shown
    assert done.lines[-2:] == ["next line", "tail"] and len(done.lines[0]) < 2 * LINE_MAX


# --- wheels: what they are, not what their names say -----------------------------------


def test_a_zip_of_many_members_is_refused_before_zipfile_reads_them(tmp_path):
    from farmtool.archives import zip_members

    many = tmp_path / "many-1.0-py3-none-any.whl"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(70_000):  # past 65,535: a zip64 end record
            zf.writestr(f"m/{i}", b"")
    assert zip_members(many, many.name, 100_000) == 70_000
    assert zip_members(many, many.name, 1000) == 1001  # counting stops past the limit
    with pytest.raises(Failure, match="has over 1000 members"):
        check_zip(many, Limits(members=1000))


@pytest.mark.parametrize("said", [1, 0, 65535])
def test_a_zip_whose_end_record_lies_about_its_members_is_counted_entry_by_entry(tmp_path, said):
    """zipfile parses every entry of the directory the end record sizes, whatever
    number that record says: the farm counts them itself."""
    many = tmp_path / "liar-1.0-py3-none-any.whl"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(5000):
            zf.writestr(f"m/{i}", b"")
    data = bytearray(many.read_bytes())
    at = data.rfind(b"PK\x05\x06")
    data[at + 8 : at + 12] = struct.pack("<HH", said, said)  # the end record's counts
    many.write_bytes(bytes(data))
    with pytest.raises(Failure, match="has over 1000 members"):
        check_zip(many, Limits(members=1000))


def _tar_with_extension(path: Path, kind: bytes, declared: int, opener) -> Path:
    """A tar whose first header is an extension (long name, pax) of `declared` bytes."""
    header = bytearray(512)
    header[0:13] = b"././@LongLink"
    header[124:136] = f"{declared:011o}\0".encode()
    header[156:157] = kind
    header[257:263] = b"ustar "
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    with opener(path, "wb") as f:
        f.write(bytes(header))
        left = -(-declared // 512) * 512
        while left:
            chunk = min(left, 1 << 20)
            f.write(bytes(chunk))
            left -= chunk
        f.write(bytes(1024))
    return path


@pytest.mark.parametrize("kind", [b"L", b"K", b"x", b"g"])
@pytest.mark.parametrize("compression", ["gz", "xz", ""])
def test_an_sdist_with_a_huge_extension_header_is_refused_before_tarfile_reads_it(
    tmp_path, kind, compression
):
    """tarfile reads a long name or a pax header whole into memory, on the trusted
    side: an extension header over a MiB fails the build before that."""
    import gzip
    import lzma

    from farmtool.sdist import scan_sdist

    opener = {"gz": gzip.open, "xz": lzma.open, "": open}[compression]
    sdist = _tar_with_extension(tmp_path / f"x-1.0.tar.{compression or 'tar'}", kind,
                                3 << 20, opener)  # fmt: skip
    with pytest.raises(Failure, match="header of 3 MiB, over 1 MiB"):
        scan_sdist(sdist)


def test_an_sdist_declaring_more_than_it_may_unpack_stops_the_walk(tmp_path):
    import gzip

    from farmtool.sdist import scan_sdist

    sdist = _tar_with_extension(tmp_path / "x-1.0.tar.gz", b"0", 8 << 20, gzip.open)
    with pytest.raises(Failure, match="unpacks to over 4 MiB"):
        scan_sdist(sdist, Limits(unpacked=4 << 20))


@pytest.mark.parametrize(
    ("name", "members", "why"),
    [
        ("lies-1.0-py3-none-any.whl", {"lies/_c.cpython-311-x86_64-linux-gnu.so": b"\x7fELF"},
         "is tagged for any platform but holds lies/_c.cpython-311-x86_64-linux-gnu.so"),
        ("lies-1.0-py3-none-any.whl", {"lies/libz.so.1": b"\x7fELF"}, "holds lies/libz.so.1"),
        ("lies-1.0-7-py3-none-any.whl", {"lies/__init__.py": b""}, "carries a build tag (7)"),
    ],
)  # fmt: skip
def test_a_wheel_is_what_it_holds(tmp_path, name, members, why):
    info = "lies-1.0.dist-info/METADATA"
    _wheel(tmp_path / "out", name, {**members, info: b"Name: lies\nVersion: 1.0\n"})
    with pytest.raises(Failure, match=re.escape(why)):
        take_wheel(tmp_path / "out", fresh_dir(tmp_path / "dest"), Limits())


# --- the disk watch: every byte counted, however deep ------------------------------------


def _deep_chain(top: Path, levels: int, name_length: int, payload: int) -> None:
    """A chain of folders (made by descriptors: its path is longer than the system takes)
    with `payload` bytes at the bottom."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    opened = [fd]
    try:
        for i in range(levels):
            name = f"{i:04d}" + "d" * (name_length - 4)
            os.mkdir(name, dir_fd=opened[-1])
            opened.append(os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=opened[-1]))
        out = os.open("payload", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=opened[-1])
        os.write(out, os.urandom(payload))
        os.close(out)
    finally:
        for fd in opened:
            os.close(fd)


@pytest.mark.parametrize(("levels", "name_length"), [(30, 200), (100, 250), (120, 40)])
def test_the_disk_watch_counts_what_lies_past_the_longest_path(tmp_path, levels, name_length):
    from farmtool.files import tree_size
    from farmtool.isolation.host import disk_watch

    (tmp_path / "out").mkdir()
    _deep_chain(tmp_path / "out", levels, name_length, 3 << 20)
    used, entries = tree_size([tmp_path / "out"])
    assert used >= 3 << 20 and entries == levels + 1
    watch = disk_watch((tmp_path / "out",), 1 << 20)
    assert watch is not None
    (tmp_path / "out" / "more").write_bytes(os.urandom(2 << 20))
    assert watch() == "disk"


def test_a_tree_too_deep_to_count_trips_the_disk_limit(tmp_path):
    from farmtool.files import UNCOUNTABLE, WALK_DEPTH, remove_tree, tree_size
    from farmtool.isolation.host import disk_watch

    (tmp_path / "out").mkdir()
    watch = disk_watch((tmp_path / "out",), 1 << 30)
    assert watch is not None
    _deep_chain(tmp_path / "out", WALK_DEPTH + 5, 8, 10)
    assert tree_size([tmp_path / "out"])[0] == UNCOUNTABLE
    assert watch() == "disk"
    remove_tree(tmp_path / "out")


def test_a_zip_sdist_python_cannot_read_is_an_unsafe_sdist(tmp_path):
    from farmtool.sdist import scan_sdist

    sdist = tmp_path / "x-1.0.zip"
    with zipfile.ZipFile(sdist, "w") as zf:
        zf.writestr("x-1.0/setup.py", "")
    data = bytearray(sdist.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    data[central + 14 : central + 16] = struct.pack("<H", (44 << 9) | (0 << 5) | 1)  # month 0
    sdist.write_bytes(bytes(data))
    with pytest.raises(Failure, match="unsafe sdist"):
        scan_sdist(sdist)


def test_a_zip_sdist_whose_end_record_lies_is_counted_entry_by_entry(tmp_path):
    from farmtool.sdist import scan_sdist

    sdist = tmp_path / "x-1.0.zip"
    with zipfile.ZipFile(sdist, "w") as zf:
        for i in range(3000):
            zf.writestr(f"x-1.0/f{i}", "")
    data = bytearray(sdist.read_bytes())
    at = data.rfind(b"PK\x05\x06")
    data[at + 8 : at + 12] = struct.pack("<HH", 1, 1)
    sdist.write_bytes(bytes(data))
    with pytest.raises(Failure, match="over 1000 members"):
        scan_sdist(sdist, Limits(members=1000))
