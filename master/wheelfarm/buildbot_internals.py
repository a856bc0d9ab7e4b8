"""Every use of Buildbot's internals, in one module, for the Buildbot they were written
against: a private database method, two replaced attributes, and the www service's
root resource. Each is a decision taken by reading Buildbot 4.3's source; another
Buildbot may have changed any of them, so `version_problem()` names a Buildbot other
than the one tested and the configuration refuses to load with it (an upgrade means
reading this module again against the new source, then changing `TESTED`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import buildbot
from buildbot.data.resultspec import ResultSpec
from buildbot.www.service import BuildbotSite
from packaging.version import Version
from twisted.web import resource

TESTED = "4.3"  # major.minor of the Buildbot this module was read against

# Buildbot's own, kept before any replacement
APPLY_TO_SQL_QUERY = ResultSpec.applyToSQLQuery
REQUEST_FACTORY = BuildbotSite.requestFactory


def version_problem(version: str = buildbot.version) -> str | None:
    """Why this Buildbot is not the one the farm's uses of its internals were read for."""
    try:
        release = Version(version).release[:2]
    except Exception:  # noqa: BLE001 -- an unreleased or odd version string
        return f"Buildbot {version} cannot be read as a version; the farm needs {TESTED}.x"
    if ".".join(map(str, release)) != TESTED:
        return (
            f"Buildbot {version} is not {TESTED}.x, which wheelfarm/buildbot_internals.py "
            "was written against: read it against the new Buildbot before you change TESTED"
        )
    return None


def unclaim_requests(db: Any, brids: list[int], masterid: int):
    """Unclaim `brids` claimed by `masterid` (a dead master): Buildbot 4.3's housekeeping
    unclaims only the claims of the master doing it."""
    return db.buildrequests._unclaim_buildrequests_for_master(brids, masterid)


def count_queries_with(apply: Callable) -> None:
    """Buildbot's data API builds its list queries (and their counts) with
    ResultSpec.applyToSQLQuery: `apply` replaces it (idempotent)."""
    ResultSpec.applyToSQLQuery = apply


def requests_made_by(factory: type) -> None:
    """Buildbot's www is a twisted.web Site whose channels make requests with the site's
    `requestFactory`: every request of this process's web server is a `factory`."""
    BuildbotSite.requestFactory = factory


def www_root(www: Any) -> resource.Resource | None:
    """The resource at `/` of the master's web server (Buildbot's UI plugin's), where
    the farm's pages are put; None where the master serves no UI."""
    root = getattr(www, "root", None)
    if root is None:
        try:
            root = www.apps.get(www.base_plugin_name).resource
        except Exception:  # noqa: BLE001 -- no UI plugin installed: no web at all
            return None
    return root


def quarantine(worker: Any, seconds: float) -> None:
    """Buildbot starts no build on a worker in quarantine, and offers it its builders'
    requests again when the quarantine ends (`exitQuarantine`): for `seconds`, here,
    rather than Buildbot's doubling back-off."""
    if worker.quarantine_timer:
        return
    worker.quarantine_timeout = max(1.0, seconds)
    worker.putInQuarantine()
