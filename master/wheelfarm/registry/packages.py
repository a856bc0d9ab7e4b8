"""The package registry, packages.yaml: what the farm builds, for which platforms and Pythons.

    # yaml-language-server: $schema=./packages.schema.json
    schema: 1
    packages:
      - name: MarkupSafe
        versions: ">=2.0,<4"          # or "latest" (the default)
        platforms: [linux-x86_64]     # default: every platform
        python: ["3.12", "3.13"]      # default: every supported Python
        build: {requires: ["cython>=3"], env: {CFLAGS: "-O2"}}
        test: {requires: [pytest], command: [python, -m, pytest, --pyargs, markupsafe]}
        depends: [six]                # other registry packages
        abi: minor                    # major, minor, every-release or none
        run_exports: ">=1.25,<{next_major}"  # what wheels built against it require of it
        maintainers: [octocat]        # GitHub handles
        skip: "needs libfoo"          # the reason it is not built

The first line lets editors check the file as people type, against packages.schema.json,
which json_schema() generates (`python -m wheelfarm.registry.schema > packages.schema.json`).
load_registry() is the authority: it also checks what a JSON schema cannot (specifier
and requirement syntax, duplicates after normalisation, unknown dependencies, cycles).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, Specifier, SpecifierSet
from packaging.utils import InvalidName, NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from ..problems import FieldPath
from ..problems import ValidationError as ValidationError  # re-exported for callers
from . import pins, safeyaml
from .depends import find_cycles, forward_edges
from .fields import Fields, did_you_mean, unknown_platform, unsupported_python
from .platforms import PLATFORMS, SUPPORTED_PYTHONS

KEYS = (
    "name",
    "versions",
    "prereleases",
    "platforms",
    "python",
    "build",
    "test",
    "depends",
    "abi",
    "run_exports",
    "maintainers",
    "skip",
)
BUILD_KEYS = ("requires", "env", "system")
# System packages a build needs, per package manager (cibuildwheel's before-all,
# conda-forge's host requirements): names only, never a command line.
SYSTEM_MANAGERS = {
    "apt": re.compile(r"[a-z0-9][a-z0-9+.-]{0,99}"),  # Debian's names
    "dnf": re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]{0,99}"),  # the manylinux images'
    "brew": re.compile(r"[a-z0-9][a-z0-9@+._-]{0,99}"),
}
TEST_KEYS = ("requires", "command", "skip_imports")
ABI_KINDS = ("major", "minor", "every-release", "none")
# Names end up in paths, URLs and build commands; refuse anything a shell would interpret.
SHELL_METACHARACTERS = frozenset(" \t\n;&|$`<>()[]{}*?!~#'\"\\")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# build.env names a registry entry may not set: they change how programs load or find
# code (the dynamic loader, Python's import system, shells), where installers fetch
# from, or what the farm itself sets for the build (PATH, HOME, VIRTUAL_ENV).
FORBIDDEN_ENV = frozenset(
    (
        "PATH",
        "HOME",
        "VIRTUAL_ENV",
        "GCONV_PATH",
        "GLIBC_TUNABLES",
        "LOCPATH",
        "BASH_ENV",
        "ENV",
        "IFS",
        "PERL5LIB",
        "PERL5OPT",
        "RUBYOPT",
        "NODE_OPTIONS",
    )
)
# PYTHON: every setting of the interpreter (PYTHONPATH, PYTHONPYCACHEPREFIX, ...);
# WHEELFARM_: the worker's own settings (its tools, cache, Rust, builds' user)
FORBIDDEN_ENV_PREFIXES = ("LD_", "DYLD_", "PIP_", "UV_", "PYTHON", "WHEELFARM_")
GITHUB_HANDLE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
# PEP 508 names, for the JSON schema only; Python code asks packaging.
NAME_PATTERN = r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$"
# PEP 508 sets no bound; no project on PyPI has a name this long, and names end up in
# paths, URLs, builder names and force forms, so a longer one can only fail later.
MAX_NAME_LENGTH = 100


@dataclass(frozen=True)
class Package:
    name: str  # PEP 503 normalised
    display_name: str  # as written
    versions: SpecifierSet | None  # None means "latest"
    prereleases: bool
    platforms: tuple[str, ...]
    pythons: tuple[str, ...]
    build_requires: tuple[str, ...]
    build_env: tuple[tuple[str, str], ...]
    test_requires: tuple[str, ...]
    test_command: tuple[str, ...]  # empty: only check that the package imports
    skip_imports: tuple[str, ...]  # modules (or packages) the import check leaves out
    depends: tuple[str, ...]  # normalised names
    abi: str | None
    maintainers: tuple[str, ...]
    skip: str | None
    line: int  # of the entry in the file
    # what a wheel built against this package requires of it (pins.py); None: the
    # default of its `abi`
    run_exports: str | None = None
    # system packages its build needs, per manager: (("apt", ("libyaml-dev",)), ...)
    build_system: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Registry:
    path: Path
    packages: dict[str, Package]  # by normalised name, in file order

    def __repr__(self) -> str:
        # Buildbot logs a step as its arguments (`releaseLocks(...)`, per step): a line
        # of bounded size, not the whole registry
        return f"<Registry {str(self.path)!r}: {len(self.packages)} packages>"

    def for_platform(self, platform: str) -> list[Package]:
        """The packages to build on `platform`: not skipped, targeting it."""
        return [p for p in self.packages.values() if p.skip is None and platform in p.platforms]


def load_registry(path: str | os.PathLike[str]) -> Registry:
    """Read and validate a registry, raising ValidationError listing every problem."""
    doc = safeyaml.load(path)
    fields = Fields(doc, os.fspath(path))
    entries = fields.top_level(doc.data, "packages")
    # every name first, so `depends` can be checked as each entry is read
    names = {
        canonicalize_name(e["name"])
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("name"), str)
    }
    packages: dict[str, Package] = {}
    index: dict[str, int] = {}  # name -> position in the file, for messages
    for i, entry in enumerate(entries):
        package = _read_package(fields, ("packages", i), entry, names)
        if package is None:
            continue
        if package.name in packages:
            first = packages[package.name]
            message = f"duplicate of packages[{index[package.name]}] ({first.display_name!r}, "
            message += f"line {first.line})"
            if first.display_name != package.display_name:
                message += " after PEP 503 normalisation"
            fields.error(("packages", i, "name"), message)
            continue
        packages[package.name] = package
        index[package.name] = i
    registry = Registry(Path(path), packages)
    for cycle in find_cycles(forward_edges(registry.packages)):
        if len(cycle) < 2:
            continue  # depending on itself is reported where it is read
        start = min(range(len(cycle)), key=lambda k: index[cycle[k]])  # first in the file
        cycle = cycle[start:] + cycle[:start]
        shown = " -> ".join(packages[n].display_name for n in [*cycle, cycle[0]])
        fields.error(("packages", index[cycle[0]], "depends"), f"dependency cycle: {shown}")
    fields.raise_problems()
    return registry


def _read_package(
    fields: Fields, path: FieldPath, value: Any, names: set[NormalizedName]
) -> Package | None:
    """One entry of `packages`; None if it has no usable name (other problems are recorded)."""
    entry = fields.mapping(path, value, KEYS, required=("name",))
    if entry is None:
        return None
    string, strings = fields.string, fields.strings
    key = partial(fields.get, entry, path)  # read one key of this entry, or its default
    display_name = key("name", string, None, check=_name_error)
    name = canonicalize_name(display_name) if display_name else None

    def depends_error(dep: str) -> str | None:
        if canonicalize_name(dep) == name:
            return "a package cannot depend on itself"
        if canonicalize_name(dep) not in names:
            return f"{dep!r} is not a package in this registry{did_you_mean(dep, names)}"
        return None

    build: dict[str, Any] = key("build", fields.mapping, {}, known=BUILD_KEYS)
    build_key = partial(fields.get, build, (*path, "build"))
    test: dict[str, Any] = key("test", fields.mapping, {}, known=TEST_KEYS)
    test_key = partial(fields.get, test, (*path, "test"))
    versions = key("versions", string, "latest", check=_specifier_error)
    depends: tuple[str, ...] = key("depends", strings, (), check=depends_error)
    package = Package(
        name=name or "",
        display_name=display_name or "",
        versions=None if versions == "latest" else SpecifierSet(versions),
        prereleases=key("prereleases", fields.boolean, False),
        platforms=key(
            "platforms", strings, tuple(PLATFORMS), check=unknown_platform, nonempty=True
        ),
        pythons=key("python", strings, SUPPORTED_PYTHONS, check=unsupported_python, nonempty=True),
        build_requires=build_key("requires", strings, (), check=_requirement_error),
        build_env=build_key("env", _read_env, (), fields=fields),
        test_requires=test_key("requires", strings, (), check=_requirement_error),
        test_command=test_key("command", _read_command, (), fields=fields),
        skip_imports=test_key("skip_imports", strings, (), check=_module_error),
        depends=tuple(canonicalize_name(d) for d in depends),
        abi=key("abi", string, None, check=_abi_error),
        maintainers=key("maintainers", strings, (), check=_handle_error),
        skip=key("skip", string, None, check=_skip_error),
        line=fields.doc.line(path),
        run_exports=key("run_exports", string, None, check=pins.rule_error),
        build_system=build_key("system", _read_system, (), fields=fields),
    )
    if package.run_exports is not None and package.abi == "none":
        fields.error(
            (*path, "run_exports"),
            "abi: none means nothing is built against this package's ABI: "
            "remove run_exports or set abi",
        )
    return package if name else None


def _read_command(path: FieldPath, value: Any, fields: Fields) -> tuple[str, ...] | None:
    # An argv list runs without a shell, so nothing in it can be interpreted as shell syntax.
    if isinstance(value, str):
        fields.error(path, "must be a list of arguments, not a shell string")
        return None
    command = fields.strings(path, value, check=_argument_error, nonempty=True)
    if command is None or len(command) != len(value):
        return None  # the problems are recorded
    message = _program_error(command)
    if message:
        fields.error((*path, 0), message)
        return None
    return command


def _argument_error(argument: str) -> str | None:
    # an argv item cannot hold a NUL: the worker could never start the command
    return "contains a NUL character" if "\0" in argument else None


def _program_error(command: tuple[str, ...]) -> str | None:
    if command and not command[0].strip():
        return "the program (its first item) must not be empty"
    return None


def _read_system(
    path: FieldPath, value: Any, fields: Fields
) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    """`{apt: [libyaml-dev], dnf: [libyaml-devel], brew: [libyaml]}`: names only."""
    managers = fields.mapping(path, value, known=SYSTEM_MANAGERS)
    if managers is None:
        return None
    found = []
    for manager, names in managers.items():
        pattern = SYSTEM_MANAGERS.get(manager)
        if pattern is None:
            continue  # reported as an unknown key

        def name_error(name: str, pattern: re.Pattern = pattern, manager: str = manager):
            if pattern.fullmatch(name):
                return None
            return f"{name!r} is not a {manager} package name"

        good = fields.strings((*path, manager), names, check=name_error, nonempty=True)
        if good:
            found.append((manager, good))
    return tuple(found)


def _read_env(path: FieldPath, value: Any, fields: Fields) -> tuple[tuple[str, str], ...] | None:
    env = fields.mapping(path, value)
    if env is None:
        return None
    good = []
    for key, val in env.items():
        if not ENV_NAME.fullmatch(key):
            fields.error((*path, key), f"{key!r} is not a valid environment variable name")
        elif key.upper() in FORBIDDEN_ENV or key.upper().startswith(FORBIDDEN_ENV_PREFIXES):
            fields.error(
                (*path, key),
                f"{key!r} changes how programs load or find code: a build may not set it",
            )
        elif fields.string((*path, key), val, check=_env_value_error) is not None:
            good.append((key, val))
    return tuple(good)


def _env_value_error(value: str) -> str | None:
    if "\0" in value:  # no C program could receive it, and it would cut the value short
        return "contains a NUL byte"
    if "\n" in value or "\r" in value:  # a container takes variables from a file of lines
        return "contains a line break"
    return None


def _name_error(name: str) -> str | None:
    if len(name) > MAX_NAME_LENGTH:
        return f"{name[:20]!r}... is {len(name)} characters long (at most {MAX_NAME_LENGTH})"
    # Checked before the PEP 508 rule, which would refuse these too, but less helpfully.
    bad = next((c for c in name if c in SHELL_METACHARACTERS), None)
    if bad is not None:
        return f"{name!r} contains the shell metacharacter {bad!r}"
    try:
        canonicalize_name(name, validate=True)
    except InvalidName:
        return f"{name!r} is not a valid PEP 508 project name"
    return None


@lru_cache(maxsize=4096)  # parsing is slow and registries repeat the same strings
def _specifier_error(text: str) -> str | None:
    if text == "latest":
        return None
    try:
        # SpecifierSet quietly skips empty clauses (">=2.0,,"); a typo there should not pass.
        for clause in text.split(","):
            Specifier(clause.strip())
    except InvalidSpecifier:
        hint = f" (did you mean '=={text}'?)" if _is_version(text) else ""
        return f"{text!r} is not a valid version specifier{hint}"
    if not satisfiable(SpecifierSet(text)):
        return f"{text!r} admits no version: its bounds do not overlap"
    return None


def satisfiable(spec: SpecifierSet) -> bool:
    """False only when no version can satisfy `spec`: its bounds leave an empty interval.

    Sound, not complete: every clause is widened to an interval of public versions
    (a local version counts as its public one), `!=` is ignored, and a set with
    `===` or a local version is taken as satisfiable. An empty intersection of
    supersets is empty, so a False is always right.
    """
    low: tuple[Version, bool] | None = None  # (bound, inclusive)
    high: tuple[Version, bool] | None = None
    for clause in spec:
        op, text = clause.operator, clause.version
        if op == "===" or "+" in text:
            return True
        if op == "!=":
            continue
        if text.endswith(".*"):  # ==X.*: from X.dev0 up to the next X, excluded
            start = Version(text[:-2])
            first = Version(f"{text[:-2]}.dev0")
            bounds = [(first, True, True), (_next_release(start, len(start.release)), False, False)]
        else:
            v = Version(text)
            bounds = {
                "==": [(v, True, True), (v, True, False)],
                ">=": [(v, True, True)],
                ">": [(v, False, True)],
                "<=": [(v, True, False)],
                "<": [(v, False, False)],
            }.get(op, [])
            if op == "~=":  # ~=X.Y.Z: >=X.Y.Z and ==X.Y.*
                bounds = [(v, True, True), (_next_release(v, len(v.release) - 1), False, False)]
        for version, inclusive, is_low in bounds:
            if is_low and (low is None or (version, not inclusive) > (low[0], not low[1])):
                low = (version, inclusive)
            if not is_low and (high is None or (version, inclusive) < high):
                high = (version, inclusive)
    if low is None or high is None:
        return True
    return low[0] < high[0] or (low[0] == high[0] and low[1] and high[1])


def _next_release(v: Version, length: int) -> Version:
    """The first version after every one whose release starts with v's first `length`
    numbers: 1.4 (length 2) -> 1.5.dev0."""
    release = [*v.release[:length]]
    release[-1] += 1
    epoch = f"{v.epoch}!" if v.epoch else ""
    return Version(f"{epoch}{'.'.join(map(str, release))}.dev0")


def _is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


@lru_cache(maxsize=4096)
def _requirement_error(text: str) -> str | None:
    try:
        requirement = Requirement(text)
    except InvalidRequirement as e:
        return f"{text!r} is not a valid PEP 508 requirement: {str(e).splitlines()[0]}"
    if requirement.url:
        # a build would fetch and run whatever that URL serves, bypassing every index
        return f"{text!r} is a direct URL requirement: name a project and versions instead"
    return None


def _module_error(name: str) -> str | None:
    if all(part.isidentifier() for part in name.split(".")):
        return None
    return f"{name!r} is not a dotted module name"


def _abi_error(value: str) -> str | None:
    return None if value in ABI_KINDS else f"unknown abi {value!r} (one of: {', '.join(ABI_KINDS)})"


def _handle_error(handle: str) -> str | None:
    return None if GITHUB_HANDLE.fullmatch(handle) else f"{handle!r} is not a valid GitHub handle"


def _skip_error(reason: str) -> str | None:
    return None if reason.strip() else "must say why the package is skipped"
