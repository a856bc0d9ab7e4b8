"""What a change to the registry asks the farm to build.

A merged change builds only what it added: a new package, a new version range,
a new platform or Python, or a platform that now has workers. Everything else
keeps the wheels it has. A pull request's check builds the same set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .registry import Package, Registry


@dataclass(frozen=True, order=True)
class Target:
    package: str
    platform: str
    python: str
    why: str


def _targets(package: Package | None, platforms: Iterable[str]) -> set[tuple[str, str]]:
    if package is None or package.skip is not None:
        return set()
    served = set(platforms)
    return {(pl, py) for pl in package.platforms if pl in served for py in package.pythons}


def _why(old: Package | None, new: Package) -> str | None:
    """Why every target of the package is new, or None if only some may be."""
    if old is None:
        return "new package"
    if old.skip is not None:
        return "no longer skipped"
    if (old.versions, old.prereleases) != (new.versions, new.prereleases):
        return f"versions now {new.versions or 'latest'}"
    return None


def added_targets(
    old: Registry | None,
    new: Registry,
    old_platforms: Iterable[str],
    new_platforms: Iterable[str],
) -> list[Target]:
    """The (package, platform, Python) builds that `new` asks for and `old` did not.

    `*_platforms` are the platforms that had (have) workers, so that a worker for
    a platform nobody served builds that platform's packages.
    """
    old_platforms, new_platforms = set(old_platforms), set(new_platforms)
    result = []
    for name, package in new.packages.items():
        before = old.packages.get(name) if old else None
        now = _targets(package, new_platforms)
        why = _why(before, package)
        if why is None:
            now -= _targets(before, old_platforms)
            why = "new platform or Python"
        result += [Target(name, pl, py, why) for pl, py in now]
    return sorted(result)


def summary(targets: list[Target]) -> str:
    """One line: which packages, how many builds."""
    if not targets:
        return "nothing to build"
    packages = sorted({t.package for t in targets})
    return f"{len(targets)} builds of {len(packages)} packages: {', '.join(packages)}"
