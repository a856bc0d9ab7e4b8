"""What a person sees in a browser: Debian's chromium, headless, against a running farm.

Buildbot's UI is a JavaScript application: `--dump-dom` prints the page after its
scripts ran, `--screenshot` saves what it looks like (in test-artifacts/).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ARTIFACTS, campaigns, wait_builds, write_registry
from fakepypi import FakePyPI
from sdists import make_sdist

pytestmark = pytest.mark.e2e

REGISTRY = """\
  - name: good
    platforms: [linux-x86_64]
    python: ['3.11']
  - name: bad
    platforms: [linux-x86_64]
    python: ['3.11']
"""
ROLLOUTS = """\
schema: 1
rollouts:
  - name: toolchain-2099
    description: every package with the 2099.1 toolchain
    toolchain: "2099.1"
"""


class Chromium:
    def __init__(self, profile: Path) -> None:
        binary = shutil.which("chromium")
        assert binary, "Debian's chromium is needed: `make test` installs it (apt-get)"
        self.argv = [
            binary,
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--window-size=1400,1000",
            "--virtual-time-budget=20000",  # let the UI's scripts fetch and render
        ]

    def dom(self, url: str) -> str:
        done = subprocess.run(
            [*self.argv, "--dump-dom", url], capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def screenshot(self, url: str, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"browser-{name}.png"
        path.unlink(missing_ok=True)
        subprocess.run(
            [*self.argv, f"--screenshot={path}", url], capture_output=True, timeout=180, check=True
        )
        assert path.stat().st_size > 1000, f"no screenshot of {url}"
        return path


def wait_campaign(farm, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        builders = {b["name"]: b["builderid"] for b in farm.api("builders")["builders"]}
        builds = farm.api("builds", builderid=builders["orchestrate"])["builds"]
        if builds and all(b["complete"] for b in builds):
            return
        time.sleep(1)
    raise TimeoutError("the rollout did not finish")


def test_waterfall_package_pages_badge_and_rollout_in_a_browser(farm_factory, tmp_path):
    pypi = FakePyPI()
    sdists = tmp_path / "sdists"
    pypi.publish(make_sdist(sdists, "good", "1.0", {"good/__init__.py": "X = 1\n"}))
    broken = {"bad/__init__.py": "raise RuntimeError('boom at import')\n"}
    pypi.publish(make_sdist(sdists, "bad", "1.0", broken))
    (tmp_path / "rollouts.yaml").write_text(ROLLOUTS)
    farm = farm_factory(
        write_registry(tmp_path / "packages.yaml", REGISTRY),
        rollouts=tmp_path / "rollouts.yaml",
        pypi_url=pypi.start(),
    )
    chromium = Chromium(tmp_path / "chromium-profile")
    try:
        wait_builds(farm, farm.force("good") + farm.force("bad"))
        farm.rpc("forceschedulers/rollout", "force", builderNames=["orchestrate"])
        wait_campaign(farm)

        # Buildbot's waterfall: a column per platform, green and red builds
        waterfall = chromium.dom(f"{farm.url}#/waterfall")
        assert "build-linux-x86_64" in waterfall and " · linux-x86_64" not in waterfall
        assert "results_SUCCESS" in waterfall and "results_FAILURE" in waterfall
        chromium.screenshot(f"{farm.url}#/waterfall", "waterfall")
        # its home page: the recent builds, each naming its package, version and Python
        home = chromium.dom(f"{farm.url}#/")
        assert "good 1.0 py3.11: build successful" in home
        assert "bad 1.0 py3.11: " in home and "import failed" in home
        chromium.screenshot(f"{farm.url}#/", "home")

        # the farm's pages: the list, a green package and a red one, each with its badge
        listing = chromium.dom(f"{farm.url}farm/packages/")
        assert "2 packages" in listing and '<img alt="badge"' in listing
        chromium.screenshot(f"{farm.url}farm/packages/", "packages")
        good = chromium.dom(f"{farm.url}farm/packages/good")
        assert "<h1>good</h1>" in good
        assert 'class="cell built"' in good and 'class="cell failed"' not in good
        assert 'src="../../badges/good.svg"' in good
        chromium.screenshot(f"{farm.url}farm/packages/good", "package-good")
        bad = chromium.dom(f"{farm.url}farm/packages/bad")
        assert 'class="cell failed"' in bad and "failed at step test" in bad
        chromium.screenshot(f"{farm.url}farm/packages/bad", "package-bad")
        badge = chromium.dom(f"{farm.url}badges/good.svg")
        assert "<svg" in badge and ">built</text>" in badge

        # the rollout's page
        (record,) = campaigns(farm, "rollout-toolchain-2099-")
        rollout = chromium.dom(f"{farm.url}farm/campaigns/{record.id}")
        assert "every package with the 2099.1 toolchain" in rollout and "of 2 builds" in rollout
        chromium.screenshot(f"{farm.url}farm/campaigns/{record.id}", "rollout")
    finally:
        pypi.stop()
