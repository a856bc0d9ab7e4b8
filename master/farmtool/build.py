"""The build step: an sdist to a wheel, the backend sandboxed and offline.

    trusted: unpack the sdist, install the frontend, read [build-system] requires,
             make the build venv from wheels (an sdist among them: built first, the
             same way, in a folder of its own), fetch a Rust sdist's crates
             (sandboxed, user-mode network)
    untrusted: the frontend asks the backend for more requirements and builds,
             writing only the source tree, its output folder, its answers and bytecode
    trusted: install what the backend asked for (a fresh venv), ask again; copy the
             one wheel out of the output folder and check it

The build record's facts (what the venv held, the frontend's version, the toolchain)
come from the trusted side, read before the backend ran, never from its folders.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import NamedTuple

from .environment import untrusted_env
from .facts import FACTS, fail
from .files import fresh_dir, one_file, read_bounded
from .isolation import Phase, Place
from .isolation.limits import Limits
from .layout import (
    BUILD_ENV,
    BUILD_OUT,
    BUILD_RESULT,
    BUILD_SRC,
    BUILD_TOOL,
    CARGO_HOME,
    DEPS,
    HOME,
    PYCACHE,
    WHEELS,
)  # fmt: skip
from .places import place_for
from .processes import error_line, say
from .requirements import canonical, names, plain, specifier_of, use_packaging
from .rust import RUST_BACKENDS, Rust, cargo_manifests, crates_env, rust_toolchain
from .sdist import declared_build_requires, unpack_sdist
from .system import system_packages
from .tags import wheel_project
from .toolchain import python_version
from .tools import venv_python
from .venvs import env_facts, install_tool, make_env
from .wheels import take_wheel

MAX_DEPTH = 3  # an sdist among the requirements of an sdist among the requirements...

# Runs with the build venv's Python and the `build` library from BUILD_TOOL on
# sys.path while it is imported (not PYTHONPATH: the backend, which runs in its own
# process, never sees it, and neither does the check of what is installed).
HELPER = r"""
import json, subprocess, sys
tool, src, step, result = sys.argv[1:5]
sys.path.insert(0, tool)
import build, build._util, packaging.markers, packaging.requirements, packaging.specifiers
builder = build.ProjectBuilder(src, python_executable=sys.executable)
sys.path.remove(tool)


def missing(requirement):
    try:
        return any(build.check_dependency(requirement))
    except Exception:  # not a requirement: the trusted side names it in its refusal
        return True


try:
    if step == "system":
        out = {"requires": sorted(builder.build_system_requires)}
    else:
        dynamic = sorted(builder.get_requires_for_build("wheel"))
        wanted = [r for r in dynamic if missing(r)]
        if wanted:  # the trusted side checks and installs these, and asks again
            out = {"missing": wanted}
        else:
            out = {"wheel": builder.build("wheel", sys.argv[5])}
except build.BuildBackendException as e:
    # The backend printed why (that is the line to report), unless it never ran.
    print(f"BuildBackendException: {e}", file=sys.stderr)
    if not isinstance(e.exception, subprocess.CalledProcessError):
        print(f"{type(e.exception).__name__}: {e.exception}", file=sys.stderr)
    sys.exit(3)
except build.BuildException as e:
    print(f"BuildException: {e}", file=sys.stderr)
    sys.exit(3)
with open(result, "w") as f:
    json.dump(out, f)
"""


class Context(NamedTuple):
    """What every build of this step shares (the package's, and its sdist requirements')."""

    place: Place
    limits: Limits
    index_args: list[str]  # uv's index options: the farm's, then PyPI's
    indexes: list[str]  # the same, as URLs, for finding an sdist (and the default index)
    python: str  # X.Y[t]
    farm_index: str | None  # to name the farm's wheels among the build venv's
    tool: Path
    wheels: Path
    pass_env: list[str]
    rust_here: bool  # whether builds may use the worker's Rust (not another arch's image)
    built_here: set[str]


def build_sdist(
    ctx: Context, sdist: Path, work: Path, extra: list[str], dest: Path, depth: int = 0
) -> tuple[Path, dict, Rust | None]:
    """Build `sdist` in folder `work`; the checked wheel lands in `dest`. Returns it with
    the facts of the build venv it was built in, and the Rust toolchain it had."""
    place = ctx.place
    work = work.absolute()  # every command gets absolute paths: they run from elsewhere
    src_root, venv, out = work / BUILD_SRC, work / BUILD_ENV, work / BUILD_OUT
    result, pycache, cargo_home = work / BUILD_RESULT, work / PYCACHE, work / CARGO_HOME
    src, newest = unpack_sdist(sdist, src_root, ctx.limits)
    place.prepare([out, result, pycache])
    place.own([src_root])
    # Rust backends (maturin, setuptools-rust) run the worker's toolchain, read-only; it is
    # looked for only where the sdist has Rust code
    rust = rust_toolchain() if ctx.rust_here and cargo_manifests(src) else None
    if rust:
        say(f"rust: {rust.version} in {rust.root}")
    bins: list[str | Path] = [venv_python(venv).parent]
    if rust:
        bins.append(rust.bin)
    env = untrusted_env(place.sandboxed, work / HOME, ctx.pass_env, bins, pycache)
    if "SOURCE_DATE_EPOCH" not in env and newest:
        # builds that honour it (setuptools, hatchling, flit...) then give the same bytes
        env["SOURCE_DATE_EPOCH"] = str(newest)
        say(f"SOURCE_DATE_EPOCH={newest} (the newest file of the sdist)")
    if not place.sandboxed:
        fresh_dir(work / HOME)
    writable: tuple[Path, ...] = (src_root, out, result, pycache)
    readable = rust.mounts() if rust else ()
    requirements: list[str] = []

    def missing(name: str) -> None:
        build_requirement(ctx, name, requirements, depth)

    def helper(step: str, *more: str) -> dict:
        answer = result / f"{step}.json"
        args = [str(ctx.tool), str(src), step, str(answer), *more]
        python = str(venv_python(venv))
        argv = [python, "-I", "-X", f"pycache_prefix={pycache}", "-c", HELPER, *args]
        shown = (python, "-I", "-c", f"<build helper: {step}>", *args)
        phase = Phase("build backend", argv, src, env, writable, readable, shown=shown)
        done = place.untrusted(phase, ctx.limits)
        if done.reason:
            fail(f"build failed: {done.reason}")
        if done.rc:
            fail(f"build failed: {error_line(done.lines) or f'{step} step exited {done.rc}'}")
        try:
            value = json.loads(read_bounded(answer, 1 << 20))
        except ValueError:
            value = None
        if not isinstance(value, dict):
            fail(f"build failed: the build helper's {step} answer is not a JSON object")
        return value

    declared = declared_build_requires(src)
    if declared is None:  # a Python without tomllib: the sandboxed frontend reads it
        make_env(place, venv, [], ctx.index_args, ctx.wheels, "cannot make the build venv", missing)
        declared = helper("system").get("requires")
    requirements = [*plain(declared or [], "[build-system] requires"), *extra]
    what = "cannot install build requirements"
    make_env(place, venv, requirements, ctx.index_args, ctx.wheels, what, missing)
    # the build record's facts: read now, from what the trusted side installed
    farm = ctx.farm_index if depth == 0 else None
    facts = env_facts(venv, farm, ctx.built_here)
    if rust:
        if fetch_crates(ctx, rust, src, src_root, cargo_home, env, requirements):
            env.update(CARGO_HOME=str(cargo_home), CARGO_NET_OFFLINE="true")
            writable = (*writable, cargo_home)  # cargo writes its home while it builds
    for _ in range(3):
        answer = helper("wheel", str(out))
        if "wheel" in answer:
            break
        asked = plain(_strings(answer.get("missing")), "the backend's build requirements")
        requirements = list(dict.fromkeys([*requirements, *asked]))
        make_env(place, venv, requirements, ctx.index_args, ctx.wheels, what, missing)
        facts = env_facts(venv, farm, ctx.built_here)
    else:
        fail(f"build failed: backend requirements stay missing: {', '.join(asked)}")
    return take_wheel(out, dest, ctx.limits), facts, rust


def build_requirement(ctx: Context, name: str, requirements: list[str], depth: int) -> None:
    """An sdist among `requirements` (uv found no wheel of `name`): built offline into a
    wheel of ctx.wheels, from the sdist the indexes offer (see deps.py)."""
    from .deps import fetch_sdist

    project = canonical(name)
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", project):
        fail(f"cannot install build requirements: no wheel of {name!r}")
    if depth >= MAX_DEPTH:
        fail(f"cannot install build requirements: {project} needs building {MAX_DEPTH} deep")
    work = Path(DEPS).absolute() / f"{len(ctx.built_here)}-{project}"
    fresh_dir(work)
    say(f"{project} has no wheel for this Python and platform: building its sdist (offline)")
    sdist = fetch_sdist(
        ctx.indexes, project, specifier_of(requirements, project), ctx.python, work / "sdist"
    )
    wheel, _, _ = build_sdist(ctx, sdist, work, [], ctx.wheels, depth + 1)
    if wheel_project(wheel.name) != project:
        fail(f"cannot install build requirements: the sdist of {project} built {wheel.name}")
    ctx.built_here.add(project)
    say(f"built {wheel.name} from its sdist")


def fetch_crates(
    ctx: Context, rust: Rust, src: Path, src_root: Path, home: Path, env: dict,
    requirements: list[str],
) -> bool:  # fmt: skip
    """Download the crates the sdist's Rust code needs (`cargo fetch`: it runs none of
    their code, but reads the package's Cargo.toml and may write its Cargo.lock), in a
    sandbox with user-mode networking, into a cargo home of this build's own. A failed
    fetch fails the build where the backend is a Rust one; elsewhere a Cargo.toml may
    be a test fixture, and the build goes on."""
    place = ctx.place
    if not place.sandboxed:
        return False  # unsandboxed, the backend has the network itself
    manifests = cargo_manifests(src)
    if not manifests:
        return False
    place.prepare([home])
    rust_backend = bool(names(requirements) & set(RUST_BACKENDS))
    fetch_env = {**env, **crates_env(home)}
    for manifest in manifests:
        argv = [str(rust.bin / "cargo"), "fetch", "--manifest-path", str(manifest)]
        phase = Phase("crates fetch", argv, manifest.parent, fetch_env, (src_root, home),
                      rust.mounts(), network=True)  # fmt: skip
        done = place.untrusted(phase, ctx.limits)
        if done.rc and rust_backend:
            why = done.reason or error_line(done.lines) or f"cargo fetch exited {done.rc}"
            fail(f"cannot fetch crates: {why}")
        if done.rc:
            say(f"cargo fetch of {manifest.relative_to(src)} failed: the build goes on")
    return True


def _strings(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        fail("build failed: the build helper's answer is not a list of strings")
    return value


def cmd_build(args: argparse.Namespace) -> None:
    """Build a wheel from the one sdist in --sdist-dir into --out (see the module)."""
    limits = Limits.parse(args.limit)
    sdist = one_file(Path(args.sdist_dir), "*", "sdist")
    place = place_for(args, python_version())
    FACTS["isolation"] = place.isolation
    # a container's derived image; on a worker's own system, only checked
    place.with_system_packages(system_packages(args.system))
    index = index_options(args.index_url, args.extra_index_url)
    tool = Path(BUILD_TOOL).absolute()
    frontend = install_tool(place, tool, args.frontend, [])
    use_packaging(tool)
    extra = plain(args.requires, "the registry's build.requires")
    wheels = Path(WHEELS).absolute()
    place.prepare([wheels, Path(DEPS).absolute()])
    indexes = [u for u in (args.index_url, args.extra_index_url, default_index()) if u]
    rust_here = not getattr(args, "container_arch", None)  # this toolchain runs here only
    ctx = Context(place, limits, index, indexes, python_version(), args.index_url, tool,
                  wheels, args.pass_env, rust_here, set())  # fmt: skip
    out = fresh_dir(Path(args.out).absolute())
    try:
        wheel, facts, rust = build_sdist(ctx, sdist, Path.cwd(), extra, out)
        info = place.toolchain()
    finally:
        place.close()
    if rust:
        info["rustc"] = rust.version  # the backend could run it; the farm found it
    info["build"] = frontend.get("build")
    info["build_deps"] = {name: entry["version"] for name, entry in sorted(facts.items())}
    info["build_env"] = facts
    FACTS["toolchain"] = info
    say("toolchain: " + json.dumps(info, sort_keys=True))
    FACTS["summary"] = f"built {wheel.name}"
    say(f"built {wheel.name}")


def index_options(farm: str | None, pypi: str | None) -> list[str]:
    """uv's index options: the farm's first, then PyPI's, then uv's default.

    uv takes a package from the first index that has it, so a registry package the
    farm has built comes from the farm; one it has not comes from PyPI, and the build
    record says so. The default index stays last: where `--extra-index-url` is a
    test's PyPI with only a few sdists, the build tools still come from the real one.
    """
    found: list[str] = []
    for url in (farm, pypi):
        if url:
            found += ["--index", url]
    return found


def default_index() -> str:
    return (
        os.environ.get("UV_DEFAULT_INDEX")
        or os.environ.get("UV_INDEX_URL")
        or ("https://pypi.org/simple/")
    )
