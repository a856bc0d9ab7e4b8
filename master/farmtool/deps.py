"""An sdist among the requirements of a build or a test environment: the trusted side
finds it on the indexes (the farm's first, as uv does), downloads it with the
sha256 the index published, and the build stage builds it into a wheel offline."""

from __future__ import annotations

import re
from pathlib import Path

from .facts import fail
from .sdist import download
from .venvs import simple_page

SDIST_SUFFIXES = (".tar.gz", ".zip")


def find_sdist(indexes: list[str], name: str, specifier, python: str) -> tuple[str, str, str]:
    """(url, filename, sha256) of the newest sdist of `name` that `specifier` admits and
    that says it runs on Python `python`, from the first index that has the project."""
    from packaging.specifiers import SpecifierSet
    from packaging.utils import InvalidSdistFilename, parse_sdist_filename

    for index in indexes:
        page = simple_page(index, name)
        files = page.get("files") if isinstance(page, dict) else None
        if not files:
            continue
        candidates = []
        for entry in files:
            filename = str(entry.get("filename", ""))
            sha256 = (entry.get("hashes") or {}).get("sha256")
            if not filename.endswith(SDIST_SUFFIXES) or entry.get("yanked") or not sha256:
                continue
            try:
                _, version = parse_sdist_filename(filename)
            except InvalidSdistFilename:
                continue
            needs = entry.get("requires-python") or ""
            try:
                runs_here = not needs or SpecifierSet(needs).contains(python, prereleases=True)
            except ValueError:
                runs_here = True
            if runs_here and (specifier is None or specifier.contains(version)):
                url = _absolute(index, name, str(entry.get("url", "")))
                candidates.append((version, url, filename, sha256))
        if candidates:
            version, url, filename, sha256 = max(candidates, key=lambda c: c[0])
            return url, filename, sha256
        break  # the first index that has the project is the one (as uv takes it)
    fail(f"no sdist of {name} on the indexes to build a wheel from")


def _absolute(index: str, name: str, url: str) -> str:
    from urllib.parse import urljoin

    return urljoin(f"{index.rstrip('/')}/{name}/", url)


def fetch_sdist(indexes: list[str], name: str, specifier, python: str, dest: Path) -> Path:
    url, filename, sha256 = find_sdist(indexes, name, specifier, python)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+!-]*", filename):
        fail(f"no usable sdist of {name}: file name {filename!r}")
    dest.mkdir(parents=True, exist_ok=True)
    return download(url, sha256, dest / filename)
