"""The registry as a git repository: the master follows its branch and checks its PRs.

A local git repository stands in for the registry's remote, a fake PyPI serves
the sdists, and a fake GitHub API receives the commit statuses.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import make_farm
from fakegithub import FakeGitHub, pull_request_payload, push_payload, sign
from fakepypi import FakePyPI
from sdists import make_sdist
from wheelfarm.settings import DEFAULT_REGISTRY

pytestmark = pytest.mark.e2e

SECRET = "webhook-secret-for-tests"
REPO = "wheelfarm/registry"


def entry(name: str, test: str | None = None) -> str:
    text = f'  - name: {name}\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n    abi: none\n'
    if test:
        text += f'    test:\n      command: ["python", "-c", "{test}"]\n'
    return text


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def commit(repo: Path, packages: str, message: str) -> str:
    (repo / "packages.yaml").write_text("schema: 1\npackages:\n" + packages, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def upstream(tmp_path) -> Path:
    """The registry's remote: packages.yaml and workers/ on a main branch."""
    repo = tmp_path / "upstream"
    (repo / "workers").mkdir(parents=True)
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "config", "user.email", "maintainer@example.org")
    git(repo, "config", "user.name", "Maintainer")
    (repo / "workers" / "workers.yaml").write_text("schema: 1\nworkers: []\n")
    commit(repo, entry("alpha"), "Start the registry with alpha")
    return repo


@pytest.fixture
def pypi_url(tmp_path):
    pypi, sdists = FakePyPI(), tmp_path / "sdists"
    sdists.mkdir()
    for name in ("alpha", "beta", "gamma"):
        pypi.publish(make_sdist(sdists, name, "1.0", {f"{name}/__init__.py": "X = 1\n"}))
    yield pypi.start()
    pypi.stop()


@pytest.fixture
def registry_farm(farm_factory, tmp_path, upstream, pypi_url):
    def start(**settings):
        settings = {"registry_repo": str(upstream), "registry_poll_interval": 1, **settings}
        return farm_factory(DEFAULT_REGISTRY, pypi_url=pypi_url, settings_overrides=settings)

    return start


def builder_id(farm, name: str) -> int:
    return farm.api("builders", name=name)["builders"][0]["builderid"]


def finished_builds(farm, builder: str) -> list[dict]:
    builds = farm.api(f"builders/{builder_id(farm, builder)}/builds", order="buildid")["builds"]
    return [b for b in builds if b["complete"]]


def wait_for(what, timeout: float = 300, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = what()
        if result:
            return result
        time.sleep(every)
    raise TimeoutError(f"waited {timeout} s for {what}")


def package_builds(farm, package: str) -> list[dict]:
    builds = farm.api("builds", property="*", order="buildid", limit=500)["builds"]
    return [b for b in builds if b["properties"].get("package", [None])[0] == package]


def test_branch_change_reconfigures_and_builds_only_what_it_adds(registry_farm, upstream):
    farm = registry_farm()
    platform_builder = farm.api("builders", name="build-linux-x86_64")["builders"][0]
    assert platform_builder["description"].endswith(": 1 packages")
    assert (farm.settings().checkout_path / "packages.yaml").read_text().count("name:") == 1
    # an operator's "update now" with nothing new: checked, nothing to build
    farm.rpc("forceschedulers/registry-update-now", "force", builderNames=["registry-update"])
    (update,) = wait_for(lambda: finished_builds(farm, "registry-update"))
    assert update["results"] == 0, update["state_string"]

    # a merged change adds beta: the master takes it and builds beta, nothing else
    added = commit(upstream, entry("alpha") + entry("beta"), "Add beta")
    update = wait_for(lambda: finished_builds(farm, "registry-update")[1:])[0]
    assert update["results"] == 0, update["state_string"]
    platform_builder = farm.api("builders", name="build-linux-x86_64")["builders"][0]
    assert platform_builder["description"].endswith(": 2 packages")
    (beta,) = wait_for(lambda: [b for b in package_builds(farm, "beta") if b["complete"]])
    assert beta["results"] == 0, beta["state_string"]
    assert package_builds(farm, "alpha") == []
    cause = beta["properties"]["cause"][0]
    assert cause.startswith(f"registry change {added[:10]}") and "new package" in cause
    # the build shows the change that caused it
    changes = farm.api(f"builds/{beta['buildid']}/changes")["changes"]
    assert [c["revision"] for c in changes] == [added]
    assert (farm.settings().index_path / "beta").is_dir()

    # a broken change is refused and reported; the master keeps the last good one
    commit(upstream, entry("alpha") + entry("beta") + '  - name: "bad name!"\n', "Break it")
    refused = wait_for(lambda: finished_builds(farm, "registry-update")[2:])[0]
    assert refused["results"] == 2
    assert (
        "packages.yaml:" in refused["state_string"]
        and "packages[2].name" in (refused["state_string"])
    )
    assert git(farm.settings().checkout_path, "rev-parse", "HEAD") == added
    platform_builder = farm.api("builders", name="build-linux-x86_64")["builders"][0]
    assert platform_builder["description"].endswith(": 2 packages")
    with pytest.raises(RuntimeError, match="not a package of the registry"):
        farm.force("gamma")
    (alpha,) = farm.force("alpha")  # and it goes on building
    assert wait_for(lambda: [b for b in package_builds(farm, "alpha") if b["complete"]])

    # a merged rollout starts by itself
    (upstream / "rollouts.yaml").write_text(
        "schema: 1\nrollouts:\n  - name: toolchain-next\n    toolchain: next\n"
    )
    commit(upstream, entry("alpha") + entry("beta"), "Roll out the next toolchain")
    update = wait_for(lambda: finished_builds(farm, "registry-update")[3:])[0]
    assert update["results"] == 0, update["state_string"]
    steps = {s["name"]: s for s in farm.api(f"builds/{update['buildid']}/steps")["steps"]}
    assert steps["request builds"]["state_string"] == "started rollouts toolchain-next"
    orchestrate = builder_id(farm, "orchestrate")
    # a build's properties reach the database a moment after the build itself
    rollout = wait_for(
        lambda: [
            b
            for b in farm.api(f"builders/{orchestrate}/builds", property="rollout")["builds"]
            if "rollout" in b["properties"]
        ]
    )
    assert rollout[0]["properties"]["rollout"][0] == "toolchain-next"

    # valid on its own, refused by the master (the local farm already has a worker
    # of that name): the checkout goes back and the master keeps its configuration
    good = git(farm.settings().checkout_path, "rev-parse", "HEAD")
    (upstream / "workers" / "workers.yaml").write_text(
        "schema: 1\nworkers:\n  - name: local\n    owner: A <a@example.org>\n"
        '    platform: linux-x86_64\n    python: ["3.11"]\n'
    )
    commit(upstream, entry("alpha") + entry("beta") + entry("gamma"), "Clash")
    clash = wait_for(lambda: finished_builds(farm, "registry-update")[4:])[0]
    assert clash["results"] == 2
    steps = {s["name"]: s for s in farm.api(f"builds/{clash['buildid']}/steps")["steps"]}
    assert steps["check"]["results"] == 0 and steps["reconfigure"]["results"] == 2
    assert "refused the new configuration" in steps["reconfigure"]["state_string"]
    assert git(farm.settings().checkout_path, "rev-parse", "HEAD") == good
    with pytest.raises(RuntimeError, match="not a package of the registry"):
        farm.force("gamma")


def open_pull_request(upstream: Path, number: int, packages: str) -> str:
    """A PR branch as GitHub keeps it: refs/pull/N/head in the base repository."""
    git(upstream, "checkout", "--quiet", "-b", f"pr-{number}")
    sha = commit(upstream, packages, f"PR {number}")
    git(upstream, "update-ref", f"refs/pull/{number}/head", sha)
    git(upstream, "checkout", "--quiet", "main")
    return sha


def post_hook(
    farm, payload: dict, secret: str = SECRET, event: str = "pull_request"
) -> requests.Response:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-Hub-Signature": sign(body, secret),
    }
    return requests.post(f"{farm.url}change_hook/github", data=body, headers=headers, timeout=30)


def test_pull_request_check_reports_statuses(registry_farm, tmp_path, upstream):
    github = FakeGitHub()
    api = github.start()
    secrets = tmp_path / "farm" / "secrets"  # the farm's secrets dir, filled before it starts
    secrets.mkdir(parents=True)
    for name, value in (("github_webhook_secret", SECRET), ("github_token", "token-for-tests")):
        (secrets / name).write_text(value)
        (secrets / name).chmod(0o600)  # Buildbot refuses secrets others can read
    try:
        # no polling: GitHub's hook tells the master about the branch too
        farm = registry_farm(github_api_url=api, registry_poll_interval=0)

        # a PR adding gamma: checked, test-built, not published; pending then success
        good = open_pull_request(upstream, 7, entry("alpha") + entry("gamma"))
        answer = post_hook(farm, pull_request_payload(7, good, REPO, str(upstream)))
        assert answer.status_code == 200, answer.text
        (check,) = wait_for(lambda: finished_builds(farm, "registry-check"))
        assert check["results"] == 0, check["state_string"]
        (gamma,) = [b for b in package_builds(farm, "gamma") if b["complete"]]
        assert gamma["results"] == 0
        steps = {s["name"]: s for s in farm.api(f"builds/{gamma['buildid']}/steps")["steps"]}
        assert steps["test"]["results"] == 0 and steps["publish"]["results"] == 3  # skipped
        assert not (farm.settings().index_path / "gamma").exists()
        statuses = wait_for(lambda: _final(github.statuses_for(good)))
        assert statuses[0]["state"] == "pending" and statuses[-1]["state"] == "success"
        assert {s["context"] for s in statuses} == {"wheelfarm/registry-check"}
        assert {s["repo"] for s in statuses} == {REPO}
        assert statuses[-1]["authorization"] == "token token-for-tests"
        assert statuses[-1]["description"] == "1 packages test-built; all passed"
        assert statuses[-1]["target_url"].startswith(farm.url)

        # a PR changing alpha's tests so that they fail: alpha is test-built, the
        # status names it, and the test build does not count as alpha's
        bad = open_pull_request(upstream, 8, entry("alpha", test="raise SystemExit(3)"))
        assert post_hook(farm, pull_request_payload(8, bad, REPO, str(upstream))).ok
        statuses = wait_for(lambda: _final(github.statuses_for(bad)))
        assert statuses[0]["state"] == "pending" and statuses[-1]["state"] == "failure"
        assert statuses[-1]["description"] == "1 packages test-built; failed: alpha"
        badge = requests.get(f"{farm.url}badges/alpha.svg", timeout=30).text
        assert ">not built</text>" in badge

        # a payload signed with another secret is refused, and nothing runs
        answer = post_hook(farm, pull_request_payload(9, good, REPO, str(upstream)), "guess")
        assert answer.status_code == 400
        time.sleep(2)
        checks = farm.api(f"builders/{builder_id(farm, 'registry-check')}/buildrequests")
        assert len(checks["buildrequests"]) == 2

        # the PR is merged: GitHub's push event updates the master, which builds gamma
        git(upstream, "merge", "--quiet", "--ff-only", "pr-7")
        answer = post_hook(farm, push_payload(good, REPO, ["packages.yaml"]), event="push")
        assert answer.status_code == 200, answer.text
        (update,) = wait_for(lambda: finished_builds(farm, "registry-update"))
        assert update["results"] == 0, update["state_string"]
        published = wait_for(
            lambda: [b for b in package_builds(farm, "gamma") if b["complete"]][1:]
        )
        assert published[0]["results"] == 0
        assert (farm.settings().index_path / "gamma").is_dir()
    finally:
        github.stop()


def _final(statuses: list[dict]) -> list[dict] | None:
    return statuses if statuses and statuses[-1]["state"] != "pending" else None


def test_registry_settings_point_at_the_checkout(tmp_path):
    farm = make_farm(tmp_path, DEFAULT_REGISTRY, settings_overrides={"registry_repo": "x"})
    settings = farm.settings()
    checkout = settings.basedir / "registry"
    assert settings.registry == checkout / "packages.yaml"
    assert settings.rollouts == checkout / "rollouts.yaml"
    assert checkout / "workers" / "workers.yaml" in settings.workers_files
    assert farm.workers_file in settings.workers_files  # the farm's own worker stays
