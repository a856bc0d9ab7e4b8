"""Make small, real sdists for tests: setuptools projects written straight into a tar.gz.

    from sdists import c_extension, make_sdist

    sdist = make_sdist(tmp_path, "demo", "1.0", {"demo/__init__.py": "X = 1\n"})
    native = make_sdist(
        tmp_path, "speedy", "1.0",
        {"speedy/__init__.py": "", "speedy/_speed.c": c_extension("_speed")},
        ext_modules={"speedy._speed": ["speedy/_speed.c"]},
    )

`make_wheel` writes a pure wheel the same way (for a package index in a test), and
`make_rust_sdist` a maturin project (a Rust library the package calls through cffi).

No build tool is needed: the archive is written directly, laid out as `pip` and
`build` expect (`NAME-VERSION/` with `pyproject.toml`, `PKG-INFO` and, for C
extensions or a custom `setup_py`, `setup.py`). Packages are the folders of `files`
that have an `__init__.py`; top-level `.py` files are single-file modules.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

# A fixed mtime for every member, so SOURCE_DATE_EPOCH derived from it is known.
MTIME = 1_700_000_000

# A minimal C extension module (see c_extension()).
_C_EXTENSION = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
{includes}
static PyObject *call(PyObject *self, PyObject *args) {{
    {body}
    Py_RETURN_NONE;
}}
static PyMethodDef methods[] = {{{{"call", call, METH_NOARGS, NULL}}, {{NULL, NULL, 0, NULL}}}};
static struct PyModuleDef def = {{PyModuleDef_HEAD_INIT, "{module}", NULL, -1, methods}};
PyMODINIT_FUNC PyInit_{module}(void) {{ return PyModule_Create(&def); }}
"""


def c_extension(module: str, body: str = "", includes: str = "") -> str:
    """C source of an extension module named `module` whose `call()` runs `body`."""
    return _C_EXTENSION.format(module=module, body=body, includes=includes)


def make_sdist(
    dest: Path,
    name: str,
    version: str = "1.0",
    files: Mapping[str, str] | None = None,
    *,
    build_requires: Iterable[str] = ("setuptools>=61",),
    dependencies: Iterable[str] = (),
    ext_modules: Mapping[str, list[str]] | None = None,
    setup_py: str | None = None,
    extra_members: Mapping[str, str] | None = None,
) -> Path:
    """Write `dest/NAME-VERSION.tar.gz` and return its path.

    files: path inside the project -> text (e.g. {"pkg/__init__.py": ""}).
    build_requires: the `[build-system] requires` list.
    dependencies: the project's runtime requirements (Requires-Dist).
    ext_modules: dotted module name -> its C source files (paths in `files`).
    setup_py: a setup.py to use as is (for a build that does something unusual).
    extra_members: raw archive member names -> text, added as given: for hostile
        sdists (e.g. {"../evil.txt": "x"}).
    """
    files = dict(files or {})
    dist = re.sub(r"[-_.]+", "_", name).lower()
    root = f"{dist}-{version}"
    packages = sorted(
        str(Path(p).parent).replace("/", ".") for p in files if Path(p).name == "__init__.py"
    )
    modules = sorted(p[:-3] for p in files if "/" not in p and p.endswith(".py"))
    modules = [m for m in modules if m != "setup"]
    toml = json.dumps  # a JSON string or list of strings is valid TOML
    pyproject = (
        f"[build-system]\nrequires = {toml(list(build_requires))}\n"
        'build-backend = "setuptools.build_meta"\n\n'
        f"[project]\nname = {toml(name)}\nversion = {toml(version)}\n"
        f"dependencies = {toml(list(dependencies))}\n\n"
        f"[tool.setuptools]\npackages = {toml(packages)}\npy-modules = {toml(modules)}\n"
    )
    members = {"pyproject.toml": pyproject, "PKG-INFO": _pkg_info(name, version, dependencies)}
    if ext_modules and setup_py is None:
        exts = ", ".join(f"Extension({mod!r}, {srcs!r})" for mod, srcs in ext_modules.items())
        setup_py = f"from setuptools import Extension, setup\n\nsetup(ext_modules=[{exts}])\n"
    if setup_py is not None:
        members["setup.py"] = setup_py
    members.update(files)

    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{root}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, text in members.items():
            _add(tar, f"{root}/{member}", text)
        for member, text in (extra_members or {}).items():
            _add(tar, member, text)
    return path


# A Rust library with C functions, built by maturin with cffi bindings.
RUST_LIB = """\
#[no_mangle]
pub extern "C" fn {name}_add(a: i32, b: i32) -> i32 {{
    // std, as real crates use it (its thread-locals link glibc's pthread_key_*)
    std::thread_local!(static CALLS: std::cell::Cell<u32> = std::cell::Cell::new(0));
    CALLS.with(|c| c.set(c.get() + 1));
    a + b
}}
"""
# ... and one more, from a crate of a registry (see tests/fakecrates.py) that has `twice`
RUST_DEP_FN = """\
#[no_mangle]
pub extern "C" fn {name}_twice(x: i32) -> i32 {{
    {crate}::twice(x)
}}
"""


def make_rust_sdist(
    dest: Path,
    name: str,
    version: str = "1.0",
    build_requires: Iterable[str] = (),
    crate: tuple[str, str, str] | None = None,
    programs: Mapping[str, str] | None = None,
) -> Path:
    """Write a maturin sdist `dest/NAME-VERSION.tar.gz`: a Rust cdylib whose
    `NAME_add(a, b)` the package exposes through cffi (`NAME.lib.NAME_add`).

    crate: (crate name, its registry's name, the `.cargo/config.toml` naming that
    registry) of a dependency with `twice(x)`, which `NAME_twice(x)` calls: the build
    must fetch it, as a real one fetches its crates from crates.io.
    programs: more members (path -> text), executable (a cargo configuration may name
    them).
    """
    toml = json.dumps
    requires = ["maturin>=1,<2", "cffi", *build_requires]
    pyproject = (
        f'[build-system]\nrequires = {toml(requires)}\nbuild-backend = "maturin"\n\n'
        f"[project]\nname = {toml(name)}\nversion = {toml(version)}\n"
        'dependencies = ["cffi"]\n\n[tool.maturin]\nbindings = "cffi"\n'
    )
    cargo = (
        f"[package]\nname = {toml(name)}\nversion = {toml(version + '.0')}\n"
        'edition = "2021"\n\n[lib]\ncrate-type = ["cdylib"]\n'
    )
    lib = RUST_LIB.format(name=name)
    members = {"pyproject.toml": pyproject, "PKG-INFO": _pkg_info(name, version, ["cffi"])}
    if crate:
        dep, registry, config = crate
        cargo += f'\n[dependencies]\n{dep} = {{ version = "1", registry = "{registry}" }}\n'
        lib += RUST_DEP_FN.format(name=name, crate=dep)
        members[".cargo/config.toml"] = config
    members.update({"Cargo.toml": cargo, "src/lib.rs": lib})
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{name}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, text in members.items():
            _add(tar, f"{name}-{version}/{member}", text)
        for member, text in (programs or {}).items():
            _add(tar, f"{name}-{version}/{member}", text, 0o755)
    return path


def _pkg_info(name: str, version: str, dependencies: Iterable[str]) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {d}" for d in dependencies]
    return "\n".join(lines) + "\n"


def _add(tar: tarfile.TarFile, member: str, text: str, mode: int = 0o644) -> None:
    data = text.encode()
    info = tarfile.TarInfo(member)
    info.size = len(data)
    info.mtime = MTIME
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def make_wheel(
    dest: Path,
    name: str,
    version: str = "1.0",
    files: Mapping[str, str] | None = None,
    *,
    dependencies: Iterable[str] = (),
) -> Path:
    """Write a pure `dest/NAME-VERSION-py3-none-any.whl` (with METADATA, WHEEL, RECORD).

    files: path inside the wheel -> text; by default `NAME/__init__.py` holding
    `VERSION = "<version>"`.
    """
    dist = re.sub(r"[-_.]+", "_", name).lower()
    info = f"{dist}-{version}.dist-info"
    members = dict(files or {f"{dist}/__init__.py": f"VERSION = {version!r}\n"})
    members[f"{info}/METADATA"] = _pkg_info(name, version, dependencies)
    members[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for member, text in members.items():
        digest = hashlib.sha256(text.encode()).digest()
        b64 = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.append(f"{member},sha256={b64},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    members[f"{info}/RECORD"] = "\n".join(record) + "\n"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in members.items():
            zf.writestr(member, text)
    return path
