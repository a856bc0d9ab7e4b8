"""ABI pins ("run_exports" for wheels): what a compiled wheel requires of what it was built against.

When registry package A, with an ABI (`abi:` major, minor or every-release, or its own
`run_exports` rule), was in the build environment of B and B's wheel is not pure, the
published wheel of B requires A within A's ABI range, intersected with B's own
requirement on A:

    abi: major          built against 2.1.3 -> A>=2.1.3,<3
    abi: minor          built against 2.1.3 -> A>=2.1.3,<2.2
    abi: every-release  built against 2.1.3 -> A==2.1.3
    run_exports: ">=1.25,<{next_major}"      -> A>=1.25,<3  (numpy's C API runs on older numpy)

Placeholders in a `run_exports` rule: {version} (2.1.3), {major} (2), {minor} (2.1),
{next_major} (3), {next_minor} (2.2).

Installers take one set of metadata per *version* of a project (pip and uv both pick
the best file of a version and never look at the others), so two builds of B 1.0
pinned to different ABIs of A must be two versions: the pinned wheel gets a PEP 440
local version label naming what it was built against, `1.0+abicore.1.0`, in its
file name, its METADATA and its .dist-info directory. A resolver then finds the old
pair or the new pair, never a mixed one, and `abiuser==1.0` still matches both.

Rewriting a wheel with its pins, at publish, is `index/pinning.py`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, Specifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

DEFAULT_EXPORTS = {
    "major": ">={version},<{next_major}",
    "minor": ">={version},<{next_minor}",
    "every-release": "=={version}",
}
PLACEHOLDERS = ("version", "major", "minor", "next_major", "next_minor")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SAMPLES = ("2.1.3", "1.0", "0.9.1rc1", "2024.10.1.post2")  # to validate a rule with


class PinError(ValueError):
    """The pins cannot be written: e.g. B's own requirement excludes what it was built against."""


@dataclass(frozen=True)
class Pin:
    name: str  # normalised
    built_against: str  # the version in the build environment
    abi_key: str  # e.g. "2" (major), "2.1" (minor)
    specifier: str  # the range written into Requires-Dist, e.g. ">=2.1.3,<3"

    @property
    def requirement(self) -> str:
        return f"{self.name}{self.specifier}"


# -- the rule and its arithmetic


def export_rule(abi: str | None, run_exports: str | None) -> str | None:
    """The export rule of a registry package: its own, or its `abi` key's default.

    An unset `abi` exports nothing: the default ABI key drives cascades, but a pin
    is a runtime requirement, only added for packages that declare an ABI (so build
    tools such as Cython never become a wheel's runtime dependency).
    """
    if abi == "none":
        return None
    if run_exports:
        return run_exports
    return DEFAULT_EXPORTS.get(abi or "")


def abi_key(abi: str | None, version: str) -> str:
    v = Version(version)
    if abi == "major":
        return str(v.major)
    if abi == "every-release":
        return str(v)
    return f"{v.major}.{v.minor}"


def render(rule: str, version: str) -> SpecifierSet:
    """The rule's range for a build against `version`; InvalidSpecifier if it is none."""
    v = Version(version)
    values = {
        "version": str(v),
        "major": str(v.major),
        "minor": f"{v.major}.{v.minor}",
        "next_major": str(v.major + 1),
        "next_minor": f"{v.major}.{v.minor + 1}",
    }
    text = _PLACEHOLDER.sub(lambda m: values[m[1]], rule)
    clauses = [c.strip() for c in text.split(",")]
    return SpecifierSet(",".join(str(Specifier(c)) for c in clauses))


def rule_error(rule: str) -> str | None:
    """Why a `run_exports` rule is unusable, or None (for the registry's validation)."""
    unknown = [m for m in _PLACEHOLDER.findall(rule) if m not in PLACEHOLDERS]
    if unknown:
        known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
        return f"unknown placeholder {{{unknown[0]}}} in {rule!r} (known: {known})"
    if "{" in _PLACEHOLDER.sub("", rule) or "}" in _PLACEHOLDER.sub("", rule):
        return f"unbalanced braces in {rule!r}"
    try:
        for sample in _SAMPLES:
            render(rule, sample)
    except InvalidSpecifier:
        return f'{rule!r} is not a version specifier (e.g. ">={{version}},<{{next_major}}")'
    return None


def _bound(spec: Specifier) -> Version | None:
    try:
        return Version(spec.version)
    except InvalidVersion:
        return None


def intersect(*specs: SpecifierSet) -> str:
    """One specifier string admitting what all of `specs` admit, bounds tightened.

    The tightest lower bound first, then the tightest upper bound, then every other
    clause (==, !=, ~=, ===) sorted: `>=2.1.3,<2.2` rather than packaging's `<2.2,>=2.1.3`.
    """
    lower: tuple[Version, bool, Specifier] | None = None  # (bound, inclusive, clause)
    upper: tuple[Version, bool, Specifier] | None = None
    others: set[str] = set()
    for spec_set in specs:
        for spec in spec_set:
            bound = _bound(spec)
            if spec.operator in (">=", ">") and bound is not None and "*" not in spec.version:
                inclusive = spec.operator == ">="
                if lower is None or (bound, not inclusive) > (lower[0], not lower[1]):
                    lower = (bound, inclusive, spec)
            elif spec.operator in ("<", "<=") and bound is not None and "*" not in spec.version:
                inclusive = spec.operator == "<="
                if upper is None or (bound, inclusive) < (upper[0], upper[1]):
                    upper = (bound, inclusive, spec)
            else:
                others.add(str(spec))
    clauses = [str(b[2]) for b in (lower, upper) if b is not None] + sorted(others)
    every = SpecifierSet(",".join(clauses))
    for clause in sorted(others):
        exact = Specifier(clause)
        if exact.operator == "==" and "*" not in exact.version:
            if every.contains(exact.version, prereleases=True):
                return clause  # one version: the other clauses say nothing more
    return ",".join(clauses)


def pin_for(
    name: str, version: str, abi: str | None, rule: str, own: SpecifierSet | None = None
) -> Pin:
    """The pin of a build against `name` `version`, with B's own requirement `own`.

    A local label of `version` (A's own pinned build, `2.0+c.1.0`) is left out: A's ABI
    is its public version's, and `>=` clauses cannot hold a local version.
    """
    version = Version(version).public
    exported = render(rule, version)
    if not exported.contains(version, prereleases=True):
        raise PinError(f"{name}'s export rule {rule!r} excludes {version}, built against")
    if own is not None and not own.contains(version, prereleases=True):
        raise PinError(
            f"built against {name} {version}, which its own requirement {name}{own} excludes"
        )
    parts = [exported] + ([own] if own is not None else [])
    return Pin(
        canonicalize_name(name), str(Version(version)), abi_key(abi, version), intersect(*parts)
    )


def local_label(pins: list[Pin]) -> str:
    """`abicore.1.0` for a build against abicore 1.0: names what the wheel was built
    against, and sorts higher for a newer one (so a resolver prefers the newest pair).

    The full version, not only its ABI key: two builds against 1.0 and 1.1 (one ABI)
    pin differently (>=1.0 and >=1.1), so they must be two versions too.
    """
    parts = []
    for pin in sorted(pins, key=lambda p: p.name):
        parts.append(re.sub(r"[^a-z0-9]", "", pin.name) or "abi")
        parts.extend(s for s in re.split(r"[^A-Za-z0-9]+", pin.built_against.lower()) if s)
    return ".".join(parts)
