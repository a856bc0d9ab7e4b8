"""What a change to the registry asks the farm to build.

A merged change builds only what it added: a new package, a new version range,
a new platform or Python, or a platform that now has workers. Everything else
keeps the wheels it has. A pull request's check builds the same set.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry.matching import Served, served_targets
from ..registry.packages import Package, Registry


@dataclass(frozen=True, order=True)
class Target:
    package: str
    platform: str
    python: str
    why: str


def _targets(package: Package | None, served: Served) -> set[tuple[str, str]]:
    if package is None or package.skip is not None:
        return set()
    return set(served_targets(package, served))


# what a build or its tests take from the entry: a pull request changing one of
# these is test-built, though a merged one leaves the published wheels alone
BUILD_SETTINGS = (
    "build_requires",
    "build_env",
    "test_requires",
    "test_command",
    "skip_imports",
)


def _why(old: Package | None, new: Package, settings_count: bool) -> str | None:
    """Why every target of the package is new, or None if only some may be."""
    if old is None:
        return "new package"
    if old.skip is not None:
        return "no longer skipped"
    if (old.versions, old.prereleases) != (new.versions, new.prereleases):
        return f"versions now {new.versions or 'latest'}"
    changed = [f for f in BUILD_SETTINGS if getattr(old, f) != getattr(new, f)]
    if settings_count and changed:
        return f"{', '.join(changed)} changed"
    return None


def added_targets(
    old: Registry | None,
    new: Registry,
    old_served: Served,
    new_served: Served,
    settings_count: bool = False,
) -> list[Target]:
    """The (package, platform, Python) builds that `new` asks for and `old` did not.

    `*_served` are the Pythons the workers of each platform offered (offer), so
    that workers for a platform or Python nobody served build what targets it.
    With `settings_count` (a pull request's check), a package whose build or test
    settings changed is built on all its targets too.
    """
    result = []
    for name, package in new.packages.items():
        before = old.packages.get(name) if old else None
        now = _targets(package, new_served)
        why = _why(before, package, settings_count)
        if why is None:
            now -= _targets(before, old_served)
            why = "new platform or Python"
        result += [Target(name, pl, py, why) for pl, py in now]
    return sorted(result)


def summary(targets: list[Target]) -> str:
    """One line: which packages, how many builds."""
    if not targets:
        return "nothing to build"
    packages = sorted({t.package for t in targets})
    return f"{len(targets)} builds of {len(packages)} packages: {', '.join(packages)}"
