"""Publishing a wheel with its ABI pins: the rewrite (METADATA, the dist-info name,
RECORD) and what a build's record says it was built against.

The rules (which range a pin allows, the local version label) are the registry's,
in `registry/pins.py`. The rewrite uses the standard library and `packaging` only,
and is deterministic: the same wheel and pins give the same bytes.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from ..registry.pins import Pin, PinError, export_rule, local_label, pin_for


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
