"""Build and test environments, made by the trusted side alone.

An environment is a fresh venv into which uv installs exactly the requirements it is
given, **from wheels only** (`--no-build`: installing a wheel runs none of its code),
copied from the worker's cache (never hard-linked: no inode of the cache is in a
build's view), the farm's index first and PyPI second, with the requirements after
`--`. A requirement that has only an sdist is built into a wheel first, offline in a
sandbox of its own (build.py), and installed from the folder of such wheels. Every
untrusted phase then sees the venv read-only.

The venv is always made anew for an install: once a wheel is in it, its `.pth`
files would run whenever its Python starts, and uv starts it to install more.
The facts about an environment are read right after the trusted install, before any
untrusted phase ran (`env_facts`).
"""

from __future__ import annotations

import base64
import csv
import email.parser
import hashlib
import io
import json
import os
import re
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from .facts import Failure, fail
from .files import read_bounded
from .isolation import Place
from .processes import Result, error_line
from .tags import expanded_tags
from .tools import venv_python

# uv's own words for a requirement it has no wheel for (`--no-build`)
NEEDS_BUILD = re.compile(r"Wheels are required for `([^`]+)`")
MAX_SDIST_BUILDS = 6  # sdists among one environment's requirements, recursively
METADATA_MAX = 16 << 20
RECORD_MAX = 64 << 20  # a RECORD over it fails the build: its files would go unchecked
# the frontend where the master names no pins (farmtool run by hand)
FRONTEND = ("build", "packaging", "pyproject-hooks")


def uv_install(place: Place) -> list[str]:
    """uv installing into a venv by the trusted side: no config file of anyone's, no
    builds, copies."""
    return [place.uv, "pip", "install", "--no-config", "--no-build", "--link-mode", "copy"]


def install_tool(place: Place, folder: Path, pins: Sequence[str], index: Sequence[str]) -> dict:
    """The build frontend (build, packaging, pyproject_hooks at the lock's versions) in
    `folder`, for the sandboxes to read and the trusted side to parse requirements with."""
    place.prepare([folder])
    argv = [*uv_install(place), "--quiet", "--python", place.python, "--target", str(folder)]
    argv += [*index, "--", *(pins or FRONTEND)]
    if pins:  # exact pins: the worker's cache has them after the first build
        offline = argv[:3] + ["--offline"] + argv[3:]
        if place.trusted(offline, writable=(folder,), cache=True, quiet=True).rc == 0:
            return installed_versions(folder)
        place.prepare([folder])
    done = place.trusted(argv, writable=(folder,), cache=True)
    if done.rc:
        fail(f"cannot install the build frontend: {error_line(done.lines)}")
    return installed_versions(folder)


def make_env(
    place: Place,
    venv: Path,
    requirements: Sequence[str],
    index: Sequence[str],
    wheels: Path,
    what: str,
    build_missing: Callable[[str], None],
    files: Sequence[Path] = (),
) -> None:
    """A fresh venv holding `requirements` (parsed, see requirements.py) and the local
    wheel `files` farmtool chose; `build_missing(name)` turns a requirement that has only
    an sdist into a wheel in `wheels`, and the install is tried again."""
    built: set[str] = set()
    for _ in range(MAX_SDIST_BUILDS + 1):
        done = _install(place, venv, requirements, index, wheels, files)
        if done.rc == 0:
            return
        text = "\n".join(done.lines)
        needed = [n for n in dict.fromkeys(NEEDS_BUILD.findall(text)) if n not in built]
        if not needed or len(built) >= MAX_SDIST_BUILDS:
            fail(f"{what}: {error_line(done.lines) or f'uv exited {done.rc}'}")
        for name in needed:
            build_missing(name)
            built.add(name)
    fail(f"{what}: more than {MAX_SDIST_BUILDS} requirements need building from sdists")


def _install(
    place: Place,
    venv: Path,
    requirements: Sequence[str],
    index: Sequence[str],
    wheels: Path,
    files: Sequence[Path],
) -> Result:
    place.prepare([venv])
    make = [place.uv, "venv", "--quiet", "--no-config", str(venv), "--python", place.python]
    if not requirements and not files:
        return place.trusted(make, writable=(venv,), network=False)
    argv = [*uv_install(place), "--python", str(venv_python(venv)), *index]
    if wheels.is_dir() and any(wheels.iterdir()):
        # wheels built here from sdists: never from, nor into, the worker's cache, which
        # would give the next build this one's under the same folder and name
        argv.append("--no-cache")
    argv += ["--find-links", str(wheels), "--", *requirements, *map(str, files)]
    return place.trusted_all([make, argv], writable=(venv,), cache=True)


def site_packages(venv: Path) -> list[Path]:
    """Every site folder of the venv, each once (uv makes `lib64` a link to `lib`): not
    only the one its Python reads, since a wheel's `.data/data/` may make others, or
    rewrite pyvenv.cfg to name another version; `installed` looks at all of them."""
    root = os.path.realpath(venv)
    found: dict[str, Path] = {}
    for pattern in ("lib*/python3*/site-packages", "Lib/site-packages"):
        for site in venv.glob(pattern):
            real = os.path.realpath(site)
            if real.startswith(root + os.sep) and os.path.isdir(real):
                found.setdefault(real, Path(real))
    return sorted(found.values())


def env_facts(venv: Path, index_url: str | None, built_here: set[str]) -> dict[str, dict]:
    """Each distribution of a venv the trusted side just made: version, wheel tags,
    METADATA sha256, and the farm's wheel it is (`from: farm`), else `from: elsewhere`
    (PyPI, or `built_here` from its sdist in this build)."""
    facts: dict[str, dict] = {}
    for info in installed(site_packages(venv)):
        try:
            data = read_bounded(info / "METADATA", METADATA_MAX)
            wheel_info = read_bounded(info / "WHEEL", 1 << 20).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 -- a broken dist-info is no fact
            continue
        headers = email.parser.BytesParser().parsebytes(data, headersonly=True)
        if not headers["Name"] or not headers["Version"]:
            continue
        name = re.sub(r"[-_.]+", "-", str(headers["Name"])).lower()
        tags = set(re.findall(r"(?m)^Tag:\s*(\S+)\s*$", wheel_info))
        digest = hashlib.sha256(data).hexdigest()
        entry: dict = {"version": str(headers["Version"]), "tags": sorted(tags)}
        entry["metadata_sha256"] = digest
        found = farm_wheel(index_url, name, digest, tags) if index_url else None
        entry.update(found or {})
        entry["from"] = "farm" if found else "elsewhere"
        if name in built_here:
            entry["built_from_sdist"] = True
        facts[name] = entry
    return facts


def installed(sites: list[Path]) -> list[Path]:
    """The dist-info folders of these site folders that an installer made for a wheel of
    their own: one whose own RECORD lists its METADATA, with that file's hash, and no
    other RECORD does. A dist-info another distribution's RECORD lists came out of that
    one's wheel (its `.data/` may write anywhere in the venv) and says nothing of what is
    installed; one that also has a RECORD of its own is a forgery, or one wheel writing
    over another's files, and fails the build. RECORD paths are relative to their site
    folder and may climb out of it: each is compared as the file it names."""
    listed: dict[str, list[Path]] = {}  # a file -> the dist-infos whose RECORD lists it
    hashes: dict[tuple[Path, str], str] = {}
    infos: list[Path] = []
    for site in sites:
        for info in sorted(site.glob("*.dist-info")):
            try:
                text = read_bounded(info / "RECORD", RECORD_MAX).decode("utf-8", "replace")
            except Failure as e:
                if (info / "RECORD").exists() or (info / "RECORD").is_symlink():
                    fail(f"cannot read what {info.name} installed: {e}")
                continue  # no RECORD: no installer made it
            infos.append(info)
            for row in csv.reader(io.StringIO(text)):
                if not row:
                    continue
                path = os.path.realpath(os.path.join(site, row[0]))
                listed.setdefault(path, []).append(info)
                if len(row) > 1 and row[1]:
                    hashes[(info, path)] = row[1]
    found = []
    for info in infos:
        metadata = os.path.realpath(info / "METADATA")
        owners = listed.get(metadata, [])
        if info not in owners:
            continue  # its own RECORD does not list its METADATA
        others = sorted({o.name for o in owners if o != info})
        if others:
            fail(
                f"{others[0]} writes the dist-info of another distribution, {info.name}: "
                "a wheel may not say what else is installed"
            )
        if not _hash_matches(metadata, hashes.get((info, metadata))):
            fail(f"{info.name}/METADATA is not what its wheel's RECORD says")
        found.append(info)
    return found


def _hash_matches(path: str, recorded: str | None) -> bool:
    if not recorded or "=" not in recorded:
        return False
    algorithm, _, digest = recorded.partition("=")
    if algorithm not in ("sha256", "sha384", "sha512"):
        return False
    actual = hashlib.new(algorithm, read_bounded(path, METADATA_MAX)).digest()
    return base64.urlsafe_b64encode(actual).rstrip(b"=").decode() == digest


def installed_versions(folder: Path) -> dict[str, str]:
    """name -> version of what a venv (or a --target folder) holds."""
    found = {}
    for meta in installed([folder, *site_packages(folder)]):
        name, _, version = meta.name[: -len(".dist-info")].partition("-")
        found[name.lower().replace("_", "-")] = version
    return dict(sorted(found.items()))


def farm_wheel(index_url: str, name: str, metadata_sha256: str, tags: set[str]) -> dict | None:
    """The farm's wheel whose METADATA is the installed one, with its sha256; None if none.

    Installers copy METADATA byte for byte, and the index publishes each wheel's
    METADATA sha256 (PEP 658) and tags (its name), so this names the exact file that
    was installed without trusting any tool's output.
    """
    page = simple_page(index_url, name)
    for entry in page.get("files", []) if isinstance(page, dict) else []:
        filename = entry.get("filename", "")
        meta = entry.get("core-metadata") or entry.get("dist-info-metadata") or {}
        if not filename.endswith(".whl") or not isinstance(meta, dict):
            continue
        if meta.get("sha256") == metadata_sha256 and expanded_tags(filename) == tags:
            return {"wheel": filename, "sha256": entry.get("hashes", {}).get("sha256")}
    return None


def simple_page(index_url: str, name: str, limit: int = 64 << 20) -> dict:
    """A project's PEP 691 page on an index ({} where it has none)."""
    url = f"{index_url.rstrip('/')}/{name}/"
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            page = json.loads(response.read(limit))
    except (OSError, ValueError):  # 404: the index has none (HTTPError is an OSError)
        return {}
    return page if isinstance(page, dict) else {}
