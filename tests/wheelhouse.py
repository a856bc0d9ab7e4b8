"""The unit tests' own package index: locked wheels on disk, so `make test-fast` needs no network.

`make wheelhouse` runs this file once (with network, like `make venv`): it downloads
the wheels of NAMES at the versions and hashes of requirements.lock into
`.venv/wheelhouse/` and writes a PEP 503 file index over them (`simple/NAME/`). The
tests point uv and pip at `index_url()` (a file:// URL) instead of PyPI.

    python tests/wheelhouse.py            # make it (skipped when it is up to date)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
# What the unit tests install: the build backend of the sdists they make (setuptools),
# the PEP 517 frontend farmtool installs per build (build and its dependencies), and
# real PyPI wheels the index tests serve (a C extension, a pure one, an old-metadata one).
NAMES = ("setuptools", "build", "packaging", "pyproject-hooks", "markupsafe", "idna", "six")


def directory() -> Path:
    return Path(sys.prefix) / "wheelhouse"


def index_url() -> str:
    return (directory() / "simple").as_uri() + "/"


def locked_blocks(lock_text: str, names: tuple[str, ...]) -> str:
    """The requirement blocks (pin, marker, hashes) of `names` in an exported lock."""
    blocks = re.split(r"\n(?=\S)", lock_text)
    wanted = []
    for block in blocks:
        match = re.match(r"([A-Za-z0-9._-]+)==", block)
        if match and match[1].lower().replace("_", "-") in names:
            # "# via ..." comments are dropped: pip reads them as the block's end anyway
            wanted.append(
                "\n".join(ln for ln in block.splitlines() if not ln.lstrip().startswith("#"))
            )
    return "\n".join(wanted) + "\n"


def make(dest: Path) -> None:
    stamp = dest / ".lock-copy"
    lock_text = LOCK.read_text(encoding="utf-8")
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == lock_text:
        return
    shutil.rmtree(dest, ignore_errors=True)  # a new lock: none of the old wheels stay
    dest.mkdir(parents=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as reqs:
        reqs.write(locked_blocks(lock_text, NAMES))
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
         "--only-binary", ":all:", "--dest", dest, "-r", reqs.name],
        check=True,
    )  # fmt: skip
    Path(reqs.name).unlink()
    simple = dest / "simple"
    for wheel in sorted(dest.glob("*.whl")):
        project = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
        page = simple / project
        page.mkdir(parents=True, exist_ok=True)
        (page / wheel.name).symlink_to(wheel)
        links = "".join(f'<a href="{w.name}">{w.name}</a>\n' for w in sorted(page.glob("*.whl")))
        (page / "index.html").write_text(links, encoding="utf-8")
    stamp.write_text(lock_text, encoding="utf-8")


if __name__ == "__main__":
    make(directory())
    print(f"wheelhouse: {directory()}")
