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

The rewrite (METADATA, the dist-info name, RECORD) uses the standard library and
`packaging` only, and is deterministic: the same wheel and pins give the same bytes.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, Specifier, SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
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


# -- the wheel


def _urlsafe(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def rewrite_metadata(text: str, version: str, pins: list[Pin]) -> str:
    """METADATA with the new version and the pins; every other line kept as it was.

    B's unconditional requirements on a pinned package are replaced by the pin (which
    is already intersected with them); conditional ones (markers, extras) stay: a
    resolver intersects them with the pin.
    """
    head, sep, body = text.partition("\n\n")
    lines = head.split("\n")
    pinned = {p.name: p for p in pins}
    out: list[str] = []
    last_requires = None
    for line in lines:
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "version" and not line[:1].isspace():
            out.append(f"Version: {version}")
            continue
        if key == "requires-dist":
            try:
                req = Requirement(value.strip())
            except InvalidRequirement:
                req = None
            if (
                req is not None
                and canonicalize_name(req.name) in pinned
                and req.marker is None
                and not req.extras
            ):
                continue  # merged into the pin
            out.append(line)
            last_requires = len(out)
            continue
        out.append(line)
    new = [f"Requires-Dist: {p.requirement}" for p in sorted(pins, key=lambda p: p.name)]
    if last_requires is None:
        # after the last header line (before a trailing empty one, if the file has no body)
        at = len(out)
        while at and out[at - 1] == "":
            at -= 1
        last_requires = at
    out[last_requires:last_requires] = new
    return "\n".join(out) + sep + body


def own_requirements(metadata: str) -> dict[str, SpecifierSet]:
    """B's unconditional, extra-less requirements by normalised name (from METADATA text)."""
    found: dict[str, SpecifierSet] = {}
    head = metadata.partition("\n\n")[0]
    for line in head.split("\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() != "requires-dist":
            continue
        try:
            req = Requirement(value.strip())
        except InvalidRequirement:
            continue
        if req.marker is None and not req.extras:
            name = canonicalize_name(req.name)
            found[name] = found.get(name, SpecifierSet()) & req.specifier
    return found


def is_pure(filename: str) -> bool:
    return all(t.platform == "any" for t in parse_wheel_filename(filename)[3])


def read_wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        name = _dist_info(zf) + "/METADATA"
        return zf.read(name).decode("utf-8")


def _dist_info(zf: zipfile.ZipFile) -> str:
    tops = {n.split("/")[0] for n in zf.namelist() if "/" in n}
    found = sorted(t for t in tops if t.endswith(".dist-info"))
    if len(found) != 1:
        raise PinError(f"{len(found)} .dist-info directories in the wheel")
    return found[0]


def rewrite_wheel(wheel: Path, dest_dir: Path, pins: list[Pin]) -> Path:
    """Write the pinned wheel (new version, METADATA, dist-info name, RECORD) into dest_dir.

    Entries keep their order, timestamps, permissions and compression; RECORD lists
    the new hashes. Returns the new wheel's path.
    """
    version = parse_wheel_filename(wheel.name)[1]
    label = local_label(pins)
    new_version = Version(f"{version}.{label}" if version.local else f"{version}+{label}")
    stem = wheel.name[: -len(".whl")].split("-")
    dist = stem[0]
    tail = stem[2:]  # [build], python, abi, platform
    new_name = "-".join([dist, str(new_version), *tail]) + ".whl"
    with zipfile.ZipFile(wheel) as zf:
        old_info = _dist_info(zf)
        old_prefix = old_info[: -len(".dist-info")]
        new_prefix = f"{old_prefix.rsplit('-', 1)[0]}-{new_version}"
        renames = {f"{old_prefix}.dist-info": f"{new_prefix}.dist-info"}
        renames[f"{old_prefix}.data"] = f"{new_prefix}.data"

        def renamed(path: str) -> str:
            top, slash, rest = path.partition("/")
            return renames.get(top, top) + slash + rest if slash else path

        metadata = zf.read(f"{old_info}/METADATA").decode("utf-8")
        own = own_requirements(metadata)
        for pin in pins:
            if pin.name in own and not own[pin.name].contains(pin.built_against, prereleases=True):
                raise PinError(
                    f"built against {pin.name} {pin.built_against}, which its own "
                    f"requirement {pin.name}{own[pin.name]} excludes"
                )
        new_metadata = rewrite_metadata(metadata, str(new_version), pins).encode("utf-8")
        record_name = f"{old_info}/RECORD"
        contents: dict[str, bytes] = {}
        infos = zf.infolist()
        for info in infos:
            if info.filename == record_name:
                continue
            data = new_metadata if info.filename == f"{old_info}/METADATA" else zf.read(info)
            contents[info.filename] = data
        rows = []
        for info in infos:
            if info.filename == record_name or info.is_dir():
                continue
            data = contents[info.filename]
            rows.append(
                [
                    renamed(info.filename),
                    f"sha256={_urlsafe(hashlib.sha256(data).digest())}",
                    str(len(data)),
                ]
            )
        rows.append([renamed(record_name), "", ""])
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        contents[record_name] = buf.getvalue().encode("utf-8")
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / new_name
        with zipfile.ZipFile(target, "w") as out:
            for info in infos:
                new_info = zipfile.ZipInfo(renamed(info.filename), info.date_time)
                new_info.compress_type = info.compress_type
                new_info.external_attr = info.external_attr
                new_info.create_system = info.create_system
                out.writestr(new_info, contents.get(info.filename, b""))
    return target


# -- on the master, at publish


NOT_FROM_THE_FARM = (
    "not a wheel of this farm (PyPI's, or built from its sdist in the build environment)"
)


def built_against(build_env: dict[str, dict], registry: Mapping[str, Any], package: str) -> dict:
    """The registry packages of a build's environment, for its record.

    `build_env` is what farmtool found in the build's venv (name -> version, tags,
    and the farm's wheel with its sha256 when it was one); `registry` maps the
    registry's names to its entries.
    """
    found = {}
    for name, fact in sorted(build_env.items()):
        name = canonicalize_name(name)
        if name not in registry or name == canonicalize_name(package):
            continue
        entry = {"version": fact.get("version"), "from": fact.get("from")}
        if fact.get("from") == "farm":
            entry.update(wheel=fact.get("wheel"), sha256=fact.get("sha256"))
        else:
            entry["note"] = NOT_FROM_THE_FARM
        found[name] = entry
    return found


def pin_wheel(
    wheel: Path, built: dict[str, dict], registry: Mapping[str, Any], dest_dir: Path
) -> tuple[Path, list[Pin]]:
    """The wheel to publish and its pins: `wheel` itself when nothing is pinned.

    A pure wheel is never pinned (no compiled code, no ABI). PinError when a pin
    contradicts the wheel's own requirements.
    """
    if is_pure(wheel.name):
        return wheel, []
    own = own_requirements(read_wheel_metadata(wheel))
    found = []
    for name, entry in sorted(built.items()):
        package = registry[name]
        rule = export_rule(package.abi, getattr(package, "run_exports", None))
        if rule is None or not entry.get("version"):
            continue
        found.append(pin_for(name, entry["version"], package.abi, rule, own.get(name)))
    if not found:
        return wheel, []
    return rewrite_wheel(wheel, dest_dir, found), found
