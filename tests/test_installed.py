"""The package works installed from its wheel, not only as the checkout's editable
install: it finds its data (templates, the worker tools' lock) inside itself."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, os, sys, wheelfarm
from wheelfarm import paths
from wheelfarm.pipeline.toollock import worker_lock
from wheelfarm.pipeline.workerapp import zipapp_bytes
from wheelfarm.web.badges import badge_svg
print(json.dumps({
    "package": wheelfarm.__file__,
    "checkout": str(paths.CHECKOUT),
    "lock_is_link": os.path.islink(paths.WORKER_LOCK),
    "tools": sorted(worker_lock().versions),
    "badge": badge_svg("built").decode()[:200],
    "zipapp": len(zipapp_bytes()),
}))
"""


def test_an_installed_wheel_finds_its_own_data(tmp_path):
    out = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = out.glob("wheelfarm-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert "wheelfarm/data/worker-requirements.txt" in names
    assert "wheelfarm/web/templates/badge.svg" in names
    assert "farmtool/cli.py" in names

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "WHEELFARM_CHECKOUT"}
    env["PYTHONPATH"] = str(target)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    import json

    facts = json.loads(done.stdout)
    assert Path(facts["package"]).is_relative_to(target)
    assert facts["checkout"] == str(elsewhere)  # no checkout: the current directory
    assert facts["lock_is_link"] is False  # the wheel holds the file itself
    assert {"uv", "build", "auditwheel"} <= set(facts["tools"])
    assert facts["badge"].startswith("<svg")
    assert facts["zipapp"] > 10_000
