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

from .facts import fail
from .files import read_bounded
from .isolation import Place
from .processes import Result, error_line
from .tags import expanded_tags
from .tools import venv_python

# uv's own words for a requirement it has no wheel for (`--no-build`)
NEEDS_BUILD = re.compile(r"Wheels are required for `([^`]+)`")
MAX_SDIST_BUILDS = 6  # sdists among one environment's requirements, recursively
METADATA_MAX = 16 << 20
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
    """The venv's own site folder, the one its Python reads: named by the version in
    pyvenv.cfg, never found by a glob (a wheel's `.data/data/` may make a
    `lib/python3.99/site-packages` beside it, with any dist-info in it)."""
    version = _venv_version(venv)
    found = [venv / "Lib" / "site-packages"]
    if version:
        found += [venv / "lib" / f"python{version}{t}" / "site-packages" for t in ("", "t")]
    return [p for p in found if p.is_dir() and not p.is_symlink()]


def _venv_version(venv: Path) -> str | None:
    """`3.11` from the venv's pyvenv.cfg (`version_info = 3.11.2`, or `version`)."""
    try:
        text = read_bounded(venv / "pyvenv.cfg", 1 << 16).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 -- not a venv (a --target folder)
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version_info", "version"):
            match = re.match(r"\s*(\d+\.\d+)", value)
            if match:
                return match[1]
    return None


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
    """The dist-info folders of the venv's site folders that installers made: one whose
    files another distribution's RECORD lists came out of that one's wheel (its
    `.data/purelib` or `.data/data` may hold any folder, another site folder too), and
    says nothing of what is installed. RECORD paths are relative to their site folder and
    may climb out of it (`../../../`): each is compared as the path it names."""
    records: dict[Path, set[str]] = {}
    for site in sites:
        for info in sorted(site.glob("*.dist-info")):
            try:
                text = read_bounded(info / "RECORD", 64 << 20).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001 -- no RECORD: no installer made it
                continue
            records[info] = {
                os.path.normpath(os.path.join(site, row[0]))
                for row in csv.reader(io.StringIO(text))
                if row
            }
    return [
        info
        for info, listed in records.items()
        if str(info / "METADATA") in listed
        and not any(str(info / "METADATA") in other for o, other in records.items() if o != info)
    ]


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
