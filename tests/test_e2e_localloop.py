"""The maintainer's local loop: `wheelfarm up`, edit packages.yaml, `wheelfarm up` again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from conftest import free_port, write_registry
from wheelfarm.cli.localfarm import LocalFarm

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
SIX = """\
  - name: six
    versions: "<2"
    platforms: [linux-x86_64]
    python: ["3.11"]
    abi: none
"""
IDNA = """\
  - name: idna
    platforms: [linux-x86_64]
    python: ["3.11"]
    abi: none
"""


def test_up_again_on_a_running_farm_reloads_it_and_builds_only_what_was_added(tmp_path):
    home, registry = tmp_path / "farm", write_registry(tmp_path / "packages.yaml", SIX)
    ports = ["--port", str(free_port()), "--worker-port", str(free_port())]

    def up() -> subprocess.CompletedProcess:
        return subprocess.run(
            [BIN / "wheelfarm", "--home", home, *ports, "--registry", registry, "up"],
            capture_output=True,
            text=True,
            timeout=600,
            env={k: v for k, v in os.environ.items() if not k.startswith("WHEELFARM_")},
        )

    farm = LocalFarm(home=home, www_port=int(ports[1]), worker_port=int(ports[3]))
    try:
        first = up()
        assert first.returncode == 0, first.stdout + first.stderr
        assert "1 builds requested" in first.stdout and "1 built" in first.stdout

        # a maintainer adds a package while the farm runs, and runs `up` again
        write_registry(registry, SIX + IDNA)
        second = up()
        assert second.returncode == 0, second.stdout + second.stderr
        assert "Traceback" not in second.stderr
        assert "reloading its configuration" in second.stdout
        assert "1 builds requested" in second.stdout  # idna only: six is not asked again
        idna = [ln for ln in second.stdout.splitlines() if "idna" in ln and "ok" in ln]
        assert idna, second.stdout
        builds = farm.api("builds", property="package")["builds"]
        assert sorted(b["properties"]["package"][0] for b in builds) == ["idna", "six"]

        # nothing changed: nothing is requested
        third = up()
        assert third.returncode == 0 and "nothing new in the registry" in third.stdout
        # a refused registry keeps the farm on its last good configuration, and says so
        registry.write_text("schema: 1\npackages:\n  - name: [oops]\n", encoding="utf-8")
        fourth = up()
        assert fourth.returncode == 1 and "Traceback" not in fourth.stderr
        assert "packages.yaml:3" in fourth.stderr
        assert farm.master_running()
        # ... its last good registry, which has idna
        assert requests.get(f"{farm.url}farm/packages/idna", timeout=30).status_code == 200
    finally:
        farm.stop()
