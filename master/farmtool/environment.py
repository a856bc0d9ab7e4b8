"""The environments commands get: the farm's tools keep what they need of the
worker's; untrusted code gets an explicit one, never the worker's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What the farm's own tools (uv) keep of the worker's environment: what they need to
# run and to reach an index (the operator's index settings, certificates, proxy).
TOOL_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "TEMP", "TMP",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "all_proxy", "no_proxy",
    "SOURCE_DATE_EPOCH", "CONTAINERS_CONF",
)  # fmt: skip
TOOL_ENV_PREFIXES = ("UV_", "PIP_", "XDG_", "LC_")
PROXY_ENV = tuple(n for n in TOOL_ENV if n.lower().endswith("_proxy"))
# What untrusted code (a build backend, the import check, a test command) gets from
# the worker: what programs need to run and compile, never credentials, proxies
# (they may embed a password) or tool settings. The farm adds HOME, TMPDIR, the
# venv's PATH and SOURCE_DATE_EPOCH; the registry adds its `build.env` by name.
UNTRUSTED_ENV = (
    "PATH", "LANG", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "MACOSX_DEPLOYMENT_TARGET", "SDKROOT", "DEVELOPER_DIR",
    # Windows: Python and MSVC do not start without these
    "SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT", "NUMBER_OF_PROCESSORS",
    "PROCESSOR_ARCHITECTURE", "PROGRAMDATA", "PROGRAMFILES", "PROGRAMFILES(X86)",
    "PROGRAMW6432", "COMMONPROGRAMFILES", "COMMONPROGRAMFILES(X86)",
)  # fmt: skip
UNTRUSTED_ENV_PREFIXES = ("LC_",)
SANDBOX_TMP = "/tmp"  # every sandbox's own, empty, bounded
SANDBOX_HOME = "/tmp/home"
# The registry's `build.env`, which the master sets in the step's environment: set aside
# at start (`set_aside`), out of this process's own, so that nothing trusted (the farm's
# tools, `$CC --version` in the build record, a temporary file, the worker's cache)
# ever takes a package's word for where or what it is; only untrusted phases get them.
REGISTRY_ENV: dict[str, str] = {}


def set_aside(names: Iterable[str]) -> None:
    for name in names:
        if ENV_NAME.fullmatch(name) and name in os.environ:
            REGISTRY_ENV[name] = os.environ.pop(name)


def pick_env(names: Iterable[str], prefixes: tuple[str, ...] = ()) -> dict[str, str]:
    wanted = set(names)
    return {k: v for k, v in os.environ.items() if k in wanted or k.startswith(prefixes)}


def tool_env(**extra: str) -> dict[str, str]:
    return {**pick_env(TOOL_ENV, TOOL_ENV_PREFIXES), **extra}


def untrusted_env(
    sandboxed: bool,
    home: Path,
    pass_names: Iterable[str] = (),
    bins: Sequence[str | os.PathLike] = (),
    pycache: Path | None = None,
) -> dict[str, str]:
    """The whole environment of untrusted code: never the worker's. `pass_names`: the
    registry's variables it gets (set aside at start).

    `bins` go first on PATH (a venv's, then a toolchain's); `pycache` is where its
    Pythons write bytecode (PYTHONPYCACHEPREFIX), since its venv is read-only; `home`
    is its own $HOME where nothing sandboxes it (a sandbox has its own /tmp).
    """
    env = pick_env(UNTRUSTED_ENV, UNTRUSTED_ENV_PREFIXES)
    env.update({n: REGISTRY_ENV[n] for n in pass_names if n in REGISTRY_ENV})
    if "SOURCE_DATE_EPOCH" in os.environ:  # the operator's, for reproducible builds
        env["SOURCE_DATE_EPOCH"] = os.environ["SOURCE_DATE_EPOCH"]
    if sandboxed:
        env.update(HOME=SANDBOX_HOME, TMPDIR=SANDBOX_TMP, TEMP=SANDBOX_TMP, TMP=SANDBOX_TMP)
    else:
        env.update(HOME=str(home.absolute()))
    if pycache is not None:
        env["PYTHONPYCACHEPREFIX"] = str(pycache.absolute())
    if bins:
        env["PATH"] = os.pathsep.join([*map(str, bins), *filter(None, [env.get("PATH")])])
    return env
