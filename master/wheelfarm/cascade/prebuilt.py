"""Which campaign nodes need no build: the index already has their wheel.

A rollout over the registry mostly meets wheels the farm has: their builds would end
after `resolve` as skipped, yet each one costs a Buildbot build on a volunteer's
builder (about 0.4 s of the master's time, see bench/dispatch.py). The orchestrator
asks here first, with the rule the resolve step applies (publish.already_built), and
marks such nodes done at once. Blocking I/O (PyPI, the index's files): call it in a
thread.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ..build.publish import already_built, version_spec
from ..build.pypi import ResolveError, Sdist, resolve_sdist, retrying_session
from ..index.store import Index


class Prebuilt:
    """The index's wheel for a build request, if a build would make nothing new.

    Resolves each (package, version spec) once per instance (one per campaign run): a
    package's nodes on every platform and Python share its sdist.
    """

    def __init__(self, pypi_url: str, index: Index) -> None:
        self.pypi_url = pypi_url
        self.index = index
        self._sdists: dict[tuple[str, str, bool], Sdist | None] = {}
        self._local = threading.local()  # a session per thread: connections are reused

    def find(self, request: Mapping[str, Any]) -> str | None:
        """The file name of the wheel a build of `request` would find in the index, or
        None: build it (a rebuild or verify build, or anything the resolve step would
        fail on, which the build then reports)."""
        if request.get("rebuild") or request.get("verify"):
            return None
        sdist = self._sdist(
            request["package"], request.get("version_spec") or "", bool(request.get("prereleases"))
        )
        if sdist is None:
            return None
        built = already_built(
            self.index, sdist, request["python"], request["platform"], request["toolchain_key"]
        )
        return built[0]["filename"] if built else None

    def _sdist(self, package: str, raw_spec: str, prereleases: bool) -> Sdist | None:
        key = (package, raw_spec, prereleases)
        if key not in self._sdists:
            session = getattr(self._local, "session", None)
            if session is None:
                session = self._local.session = retrying_session()
            try:
                spec = version_spec(raw_spec)
                found: Sdist | None = resolve_sdist(
                    self.pypi_url, package, spec, prereleases, session=session
                )
            except (ResolveError, ValueError):  # an odd spec or answer: the build says why
                found = None
            self._sdists[key] = found
        return self._sdists[key]
