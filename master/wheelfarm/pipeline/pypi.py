"""Resolving which sdist to build, from a PEP 691 (JSON simple API) index such as PyPI."""

from __future__ import annotations

from dataclasses import dataclass

import requests
from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename
from packaging.version import Version
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def retrying_session() -> requests.Session:
    """A session whose GETs survive a dropped connection: indexes (PyPI's CDN, a busy
    mirror) reset connections now and then, and one reset must not fail a build."""
    session = requests.Session()
    retry = Retry(connect=3, read=2, status=0, backoff_factor=0.5, allowed_methods={"GET"})
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


class ResolveError(Exception):
    """No sdist can be built: the message is the build's one-line reason."""


@dataclass(frozen=True)
class Sdist:
    name: str
    version: str
    filename: str
    url: str
    sha256: str
    requires_python: str | None


def resolve_sdist(
    index_url: str,
    name: str,
    spec: SpecifierSet | None,
    prereleases: bool = False,
    session: requests.Session | None = None,
    timeout: float = 60,
) -> Sdist:
    """The newest non-yanked sdist of `name` that `spec` admits (None: any)."""
    url = f"{index_url.rstrip('/')}/simple/{canonicalize_name(name)}/"
    http = session or retrying_session()
    try:
        response = http.get(url, headers={"Accept": SIMPLE_JSON}, timeout=timeout)
    except requests.RequestException as e:
        raise ResolveError(f"sdist not found: cannot reach {url}: {e}") from e
    finally:
        if session is None:
            http.close()
    if response.status_code == 404:
        raise ResolveError(f"sdist not found: {name} is not on {index_url}")
    if response.status_code != 200:
        raise ResolveError(f"sdist not found: {url} answered HTTP {response.status_code}")
    candidates: list[tuple[Version, dict]] = []
    for f in response.json().get("files", []):
        if f.get("yanked"):
            continue
        try:
            fname, version = parse_sdist_filename(f["filename"])
        except (InvalidSdistFilename, KeyError):
            continue
        if fname != canonicalize_name(name) or "sha256" not in f.get("hashes", {}):
            continue
        if version.is_prerelease and not prereleases:
            continue
        if spec is not None and not spec.contains(version, prereleases=prereleases):
            continue
        candidates.append((version, f))
    if not candidates:
        wanted = f" matching {spec}" if spec else ""
        raise ResolveError(f"sdist not found: no release of {name}{wanted} has an sdist")
    version, f = max(candidates, key=lambda c: (c[0], c[1]["filename"].endswith(".tar.gz")))
    file_url = requests.compat.urljoin(url, f["url"])
    return Sdist(
        name=canonicalize_name(name),
        version=str(version),
        filename=f["filename"],
        url=file_url,
        sha256=f["hashes"]["sha256"],
        requires_python=f.get("requires-python"),
    )
