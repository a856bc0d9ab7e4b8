"""The test step: the wheel with its dependencies and the test requirements in a
fresh venv (made by the trusted side, as build.py makes one), then every module it
ships imported and the registry's test command run, both sandboxed and offline."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from .build import Context, build_requirement, default_index, index_options
from .environment import untrusted_env
from .facts import FACTS, fail
from .files import fresh_dir, one_file, read_text_bounded
from .isolation import Phase, Place
from .isolation.limits import Limits
from .layout import DEPS, HOME, PYCACHE, TEST_ENV, TEST_RUN, TEST_TOOL, TEST_WHEELS
from .places import place_for
from .processes import say
from .requirements import plain, use_packaging
from .system import system_packages
from .toolchain import python_version
from .tools import venv_python
from .venvs import install_tool, make_env
from .wheels import check_zip, wheel_modules

# Runs in the test venv from an empty directory: imports each module in turn and
# appends one JSON line per step to the result file, so a crash names its module.
IMPORT_HELPER = r"""
import importlib, json, re, sys, traceback
PLATFORM = re.compile(r"assert\s*\(?\s*(sys\.platform|os\.name|platform\.system\(\))")
# what only another build of CPython has: free-threading, a debug build
FLAVOUR = re.compile(r"Py_GIL_DISABLED|_is_gil_enabled|Py_DEBUG|gettotalrefcount")
result, modules = sys.argv[1], json.load(open(sys.argv[2]))
with open(result, "a") as out:
    for module in modules:
        out.write(json.dumps({"module": module, "status": "start"}) + "\n")
        out.flush()
        try:
            importlib.import_module(module)
            rec = {"module": module, "status": "ok"}
        except BaseException as e:
            lines = [l for l in str(e).splitlines() if l.strip()]
            rec = {"module": module, "status": "error", "type": type(e).__name__,
                   "message": lines[-1].strip()[:2000] if lines else ""}
            if isinstance(e, ModuleNotFoundError):
                rec["missing"] = e.name
            elif isinstance(e, ImportError) and e.name:
                # `from pkg import _ext_of_another_platform`: Python tried pkg._ext as a
                # submodule first; if pkg never mentions the name, it was a module.
                m = re.match(r"cannot import name '(\w+)' from '([\w.]+)'", str(e))
                pkg = sys.modules.get(e.name)
                if m and m[2] == e.name and hasattr(pkg, "__path__"):
                    try:
                        with open(pkg.__file__, encoding="utf-8") as f:
                            source = f.read()
                    except (OSError, TypeError, ValueError):
                        source = ""
                    if not re.search(r"\b%s\b" % re.escape(m[1]), source):
                        rec["missing"] = e.name + "." + m[1]
            if isinstance(e, ImportError) and "does not define module export function" in str(e):
                # a shared library the package loads itself (maturin's cffi bindings
                # ship lib<crate>.so), not an extension module: CPython says so
                rec["library"] = True
            frames = traceback.extract_tb(e.__traceback__)
            if isinstance(e, AssertionError) and frames and PLATFORM.match(frames[-1].line or ""):
                rec["platform"] = frames[-1].line
            else:
                flavour = FLAVOUR.search((frames[-1].line or "" if frames else "") + " " + str(e))
                if flavour:
                    rec["flavour"] = flavour[0]
                elif type(e).__name__ == "SkipTest":  # a test module that says "not here"
                    rec["flavour"] = f"SkipTest: {rec['message']}"
            text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            rec["traceback"] = [l[:500] for l in text.rstrip().splitlines()[-12:]]
        out.write(json.dumps(rec) + "\n")
        out.flush()
"""


def skipped_by(module: str, skips: list[str]) -> bool:
    return any(module == s or module.startswith(s + ".") for s in skips)


def import_all(
    place: Place, python: Path, modules: list[str], shipped: set[str], env: dict,
    run_dir: Path, writable: tuple[Path, ...], limits: Limits,
) -> tuple[list[str], list[str], list[str]]:  # fmt: skip
    """Import each module in the test venv; return (imported, skipped, failures)."""
    listing, result = run_dir / "modules.json", run_dir / "imports.jsonl"
    listing.write_text(json.dumps(modules), encoding="utf-8")
    place.own([run_dir])
    argv = [str(python), "-I", "-c", IMPORT_HELPER, str(result), str(listing)]
    shown = (str(python), "-I", "-c", "<import each module>", str(result), str(listing))
    phase = Phase("import check", argv, run_dir, env, writable, shown=shown)
    done = place.untrusted(phase, limits)
    records = []
    text = read_text_bounded(result, 64 << 20) if result.exists() or result.is_symlink() else ""
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:  # half a line, from an interpreter that died writing it
            continue
        if isinstance(rec, dict) and isinstance(rec.get("module"), str):
            records.append(rec)
    imported, skipped, failures = [], [], []
    finished = {r["module"] for r in records if r.get("status") != "start"}
    for rec in records:
        module = rec["module"]
        if rec.get("status") == "ok":
            imported.append(module)
        elif rec.get("status") == "error":
            missing, plat, flavour = rec.get("missing"), rec.get("platform"), rec.get("flavour")
            if missing and missing not in shipped:
                # an optional dependency, or another platform's module: not this wheel's fault
                say(f"skipped import: {module} (needs {missing})")
                skipped.append(module)
            elif plat:
                say(f"skipped import: {module} (needs {str(plat).removeprefix('assert').strip()})")
                skipped.append(module)
            elif rec.get("library") is True:
                say(f"skipped import: {module} (a shared library, not an extension module)")
                skipped.append(module)
            elif flavour:
                # e.g. a test module of the free-threaded build, asserting Py_GIL_DISABLED
                say(f"skipped import: {module} (another interpreter flavour: {flavour})")
                skipped.append(module)
            else:
                message = re.sub(r"^(/\S+|[A-Za-z]:\\\S+): ", "", str(rec.get("message", "")))
                message = re.sub(r" \((/|[A-Za-z]:\\)[^()]*\)$", "", message)
                failures.append(f"{module}: {rec.get('type')}: {message}"[:300].rstrip(": "))
                say(f"import of {module} failed:")
                for line in (rec.get("traceback") or [])[:12]:
                    say(f"    {str(line)[:500]}")
    started = [r["module"] for r in records if r.get("status") == "start"]
    if done.reason:
        failures.append(f"{started[-1] if started else 'imports'}: {done.reason}")
    elif started and started[-1] not in finished:  # the interpreter died in this import
        why = f"signal {-done.rc}" if done.rc < 0 else f"exit {done.rc}"
        failures.append(f"{started[-1]}: interpreter died ({why})")
    elif done.rc and not failures:
        failures.append(f"import run failed (exit {done.rc})")
    return imported, skipped, failures


def cmd_test(args: argparse.Namespace) -> None:
    """Install the wheel with its dependencies in a fresh venv, import all, run the tests."""
    limits = Limits.parse(args.limit)
    if args.import_timeout:
        limits = limits.with_(time=min(limits.time or args.import_timeout, args.import_timeout))
    place = place_for(args, python_version())
    FACTS["isolation"] = place.isolation
    place.with_system_packages(system_packages(args.system))
    wheel = one_file(Path(args.wheel_dir), "*.whl", "wheel").absolute()
    check_zip(wheel, limits)
    tool = Path(TEST_TOOL).absolute()
    install_tool(place, tool, args.frontend, [])
    use_packaging(tool)
    requires = plain(args.requires, "the registry's test.requires", "install failed")
    index = index_options(args.index_url, args.extra_index_url)
    wheels = Path(TEST_WHEELS).absolute()
    place.prepare([wheels, Path(DEPS).absolute()])
    indexes = [u for u in (args.index_url, args.extra_index_url, default_index()) if u]
    rust_here = not getattr(args, "container_arch", None)
    ctx = Context(place, limits, index, indexes, python_version(), None, tool, wheels, [],
                  rust_here, set())  # fmt: skip
    venv = Path(TEST_ENV).absolute()
    try:
        make_env(place, venv, requires, index, wheels, "install failed",
                 lambda name: build_requirement(ctx, name, requires, 0), files=[wheel])  # fmt: skip
        run_checks(args, place, venv, wheel, limits)
    finally:
        place.close()


def run_checks(args: argparse.Namespace, place: Place, venv: Path, wheel: Path, limits: Limits):
    modules = wheel_modules(wheel)
    shipped: set[str] = set()
    for m in modules:
        parts = m.split(".")
        shipped.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    to_import, skipped = [], []
    for m in modules:
        if m.split(".")[-1] == "__main__":
            continue  # importing it runs the package's command line
        if skipped_by(m, args.skip_import):
            say(f"skipped import: {m} (--skip-import)")
            skipped.append(m)
        else:
            to_import.append(m)
    # the imports and the tests run from a folder of their own, the only one they may
    # write (and their bytecode's), without network: what they need is installed above
    run_dir, pycache = Path(TEST_RUN).absolute(), Path(PYCACHE).absolute()
    place.prepare([run_dir, pycache])
    home = Path(HOME).absolute()
    if not place.sandboxed:
        fresh_dir(home)
    python = venv_python(venv)
    env = untrusted_env(place.sandboxed, home, (), [python.parent], pycache)
    writable = (run_dir, pycache)
    imported, not_needed, failures = import_all(
        place, python, to_import, shipped, env, run_dir, writable, limits
    )
    skipped += not_needed
    if failures:
        shown = failures[:8] + ([f"... {len(failures) - 8} more"] if len(failures) > 8 else [])
        fail(f"import failed: {'; '.join(shown)}")
    summary = f"imported {len(imported)} modules"
    if skipped:
        summary += f" ({len(skipped)} skipped: {', '.join(skipped)})"
    say(summary)
    FACTS["summary"] = summary
    if args.command:
        command = list(args.command)
        if command[0] == "python":
            command[0] = str(python)
        elif (python.parent / command[0]).exists():
            command[0] = str(python.parent / command[0])
        test_limits = Limits.parse(args.limit)  # the whole test step's, not the imports'
        done = place.untrusted(Phase("tests", command, run_dir, env, writable), test_limits)
        if done.reason:
            fail(f"tests failed: {done.reason}")
        if done.rc:
            fail(f"tests failed (exit {done.rc})")
        say("tests passed")
        FACTS["summary"] = f"{summary}; tests passed"
