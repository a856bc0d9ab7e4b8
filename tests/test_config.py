"""The Buildbot configuration built from the files (no running master)."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from buildbot.config.errors import ConfigErrors
from twisted.python import log

from conftest import write_registry
from wheelfarm.changes.pypiwatch import PyPIReleaseWatcher
from wheelfarm.config import build_config
from wheelfarm.paths import MASTER_CFG
from wheelfarm.registry.workers import load_workers
from wheelfarm.settings import Settings

BIN = Path(sys.executable).parent
REGISTRY = """\
  - name: six
    platforms: [linux-x86_64, windows-amd64]
  - name: MarkupSafe
    platforms: [linux-x86_64]
"""
WORKERS = """\
schema: 1
workers:
  - name: alice-linux
    owner: Alice <alice@example.org>
    platform: linux-x86_64
    python: ["3.11", "3.12"]
    max_builds: 2
  - name: bob-mac
    owner: Bob <bob@example.org>
    platform: macos-arm64
    python: ["3.12"]
"""


def farm_settings(tmp_path: Path, **kw) -> Settings:
    """Settings for the registry and workers above, written in `tmp_path`."""
    workers = tmp_path / "workers.yaml"
    workers.write_text(WORKERS, encoding="utf-8")
    return Settings(
        basedir=tmp_path,
        registry=write_registry(tmp_path / "packages.yaml", REGISTRY),
        workers_files=[workers],
        secrets_dir=tmp_path / "secrets",
        **kw,
    )


@pytest.fixture
def basedir(tmp_path: Path) -> Path:
    farm_settings(tmp_path).save()
    return tmp_path


def test_one_builder_per_platform_with_workers(basedir):
    config = build_config(basedir)
    builders = {b.name: b for b in config["builders"]}
    # platforms with a worker get a builder; packages are not builders
    assert sorted(builders) == ["build-linux-x86_64", "build-macos-arm64", "orchestrate"]
    # campaigns run on the master's own worker, never on a volunteer's slot
    assert builders["orchestrate"].workernames == ["orchestrator"]
    assert builders["build-linux-x86_64"].workernames == ["alice-linux"]
    from wheelfarm.pipeline.workerapp import zipapp_bytes

    # the worker side every build ships, by its digest (the build record names it)
    shipped = hashlib.sha256(zipapp_bytes()).hexdigest()
    assert builders["build-linux-x86_64"].properties == {
        "platform": "linux-x86_64",
        "policy": "manylinux_2_28_x86_64",
        "container_image": "quay.io/pypa/manylinux_2_28_x86_64",  # for container workers
        "farmtool_sha256": shipped,
    }
    assert builders["build-macos-arm64"].properties == {
        "platform": "macos-arm64",
        "policy": "macosx_11_0_arm64",
        "farmtool_sha256": shipped,
    }
    names = sorted(s.name for s in config["schedulers"])
    platforms = ["trigger-linux-x86_64", "trigger-macos-arm64"]
    assert names == ["force", "orchestrate", "pypi-releases", "rollout", *platforms]
    workers = {w.name: w for w in config["workers"]}
    assert workers["alice-linux"].max_builds == 2


def test_no_worker_step_runs_with_the_registrys_environment(basedir):
    """build.env reaches farmtool as `--env` arguments only: a step's environment would
    be farmtool's own interpreter's and the farm's tools' (the red team ran a CC of its
    package's tree through it)."""
    from buildbot.process.properties import Properties
    from buildbot.test.fake import fakebuild

    config = build_config(basedir)
    (builder,) = [b for b in config["builders"] if b.name == "build-linux-x86_64"]
    build = fakebuild.FakeBuild(props=Properties(build_env={"CC": "/evil/cc"}))
    # the first step resolves the sdist, then adds the pipeline's steps
    (resolve,) = builder.factory.steps
    pipeline = [s.get_step_factory() for s in resolve.kwargs["pipeline"]]
    for step in pipeline:
        assert not step.kwargs.get("env"), step.buildStep().name
    build_step = next(s.buildStep() for s in pipeline if s.buildStep().name == "build")
    args = build_step.command
    rendered = []  # renderables of properties only: each Deferred has fired
    for arg in args:
        build.render(arg).addCallback(rendered.append)
    flat = [a for r in rendered for a in (r if isinstance(r, list) else [r])]
    assert flat[flat.index("--env") : flat.index("--env") + 2] == ["--env", "CC=/evil/cc"]


def test_config_loads_without_secrets_and_warns(basedir):
    messages: list[str] = []
    log.addObserver(lambda event: messages.append(" ".join(map(str, event.get("message", ())))))
    config = build_config(basedir)
    # no secret: a random password, so that worker cannot log in, and a warning
    passwords = {w.name: w.password for w in config["workers"] if w.name != "orchestrator"}
    assert passwords["alice-linux"] != passwords["bob-mac"]
    assert all(isinstance(p, str) and len(p) >= 32 for p in passwords.values())
    assert any("worker 'alice-linux' cannot log in" in m for m in messages)


def test_secret_used_when_present(basedir):
    secrets = basedir / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "worker-alice-linux").write_text("s3cret\n")
    (secrets / "worker-alice-linux").chmod(0o600)
    config = build_config(basedir)
    alice = next(w for w in config["workers"] if w.name == "alice-linux")
    assert "secret" in repr(alice.password).lower()  # a Secret renderable, not the text
    assert "s3cret" not in repr(alice.password)


def test_buildbot_checkconfig_accepts_it(basedir):
    (basedir / "master.cfg").write_text(MASTER_CFG.read_text())
    done = subprocess.run(
        [BIN / "buildbot", "checkconfig", basedir], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Config file is good!" in done.stdout


def test_the_shipped_repository_loads_before_any_volunteer_joins(tmp_path):
    """`buildbot checkconfig` on the repository's own files: no worker is declared yet."""
    shipped = Settings(basedir=tmp_path)  # packages.yaml, workers/workers.yaml of the repo
    assert not load_workers(shipped.workers_files[0])
    (tmp_path / "master.cfg").write_text(MASTER_CFG.read_text())
    done = subprocess.run(
        [BIN / "buildbot", "checkconfig", tmp_path], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Config file is good!" in done.stdout
    # the campaign builder is there, waiting for platforms to gain workers
    config = build_config(tmp_path)
    assert [b.name for b in config["builders"]] == ["orchestrate"]
    assert "force" not in {s.name for s in config["schedulers"]}


def test_bad_registry_is_a_config_error_per_problem(basedir):
    write_registry(basedir / "packages.yaml", "  - name: six\n    platforms: [amiga]\n")
    with pytest.raises(ConfigErrors) as info:
        build_config(basedir)
    assert [e for e in info.value.errors if "packages.yaml:4: packages[0].platforms[0]" in e]


def test_a_refused_configuration_changes_nothing_that_runs(tmp_path):
    """The web guards and Buildbot's patched queries change when Buildbot takes a
    configuration (a service's reconfigService), never while one is read: a registry
    that is refused leaves the running guard's limits as they were."""
    from buildbot.data.resultspec import ResultSpec

    from wheelfarm.buildbot_internals import APPLY_TO_SQL_QUERY, count_queries_with
    from wheelfarm.web.guard import FarmRequest

    running = FarmRequest.max_body_bytes
    count_queries_with(APPLY_TO_SQL_QUERY)  # as before any farm configuration ran
    settings = farm_settings(tmp_path, max_body_bytes=running + 12345)
    write_registry(settings.registry, "  - name: six\n    platforms: [amiga]\n")
    with pytest.raises(ConfigErrors):
        build_config(tmp_path, settings)
    assert FarmRequest.max_body_bytes == running
    assert ResultSpec.applyToSQLQuery is APPLY_TO_SQL_QUERY
    # a good one builds the service that will apply them, with the new value
    write_registry(settings.registry, REGISTRY)
    config = build_config(tmp_path, settings)
    guard = next(s for s in config["services"] if s.name == "wheelfarm-web-guard")
    assert FarmRequest.max_body_bytes == running  # not yet: Buildbot has not taken it
    assert guard.getConfigDict()["kwargs"]["max_body_bytes"] == running + 12345


@pytest.mark.parametrize(
    ("version", "refused"),
    [("4.3.0", False), ("4.3.2", False), ("4.4.0", True), ("5.0.0", True), ("4.2.1", True),
     ("not-a-version", True)],
)  # fmt: skip
def test_another_buildbot_is_refused_until_its_internals_are_read(version, refused):
    from wheelfarm.buildbot_internals import version_problem

    problem = version_problem(version)
    assert (problem is not None) == refused
    if refused:
        assert version in problem and "buildbot_internals.py" in problem or "cannot" in problem


def test_environment_overrides_settings(basedir):
    settings = Settings.load(basedir, {"WHEELFARM_WWW_PORT": "8123", "WHEELFARM_DB_URL": "x://"})
    assert settings.www_port == 8123 and settings.db_url == "x://"
    assert settings.public_url == "http://127.0.0.1:8123/"


# the PyPI release watcher: on by default, off with interval 0
def test_the_watcher_follows_the_configured_pypi(tmp_path):
    config = build_config(tmp_path, farm_settings(tmp_path, pypi_url="http://127.0.0.1:1/"))
    (watcher,) = config["change_source"]
    assert isinstance(watcher, PyPIReleaseWatcher)
    assert watcher.pypi_url == "http://127.0.0.1:1/" and watcher.interval == 60
    assert "six" in watcher.registry.packages


def test_interval_zero_turns_the_watcher_off(tmp_path):
    config = build_config(tmp_path, farm_settings(tmp_path, pypi_watch_interval=0))
    assert config["change_source"] == []
    assert "pypi-releases" not in {s.name for s in config["schedulers"]}


def test_the_interval_comes_from_the_environment(tmp_path):
    farm_settings(tmp_path).save()
    loaded = Settings.load(tmp_path, environ={"WHEELFARM_PYPI_WATCH_INTERVAL": "5"})
    assert loaded.pypi_watch_interval == 5


def test_settings_are_converted_by_their_declared_type(tmp_path):
    (tmp_path / "wheelfarm.json").write_text('{"www_port": "8011", "multi_master": "false"}')
    env = {"WHEELFARM_ADMINS": "alice:wheelfarm/ops", "WHEELFARM_INDEX_DIR": "/srv/index"}
    settings = Settings.load(tmp_path, env)
    assert settings.www_port == 8011 and settings.multi_master is False
    assert settings.admins == ["alice", "wheelfarm/ops"]
    assert settings.index_dir == Path("/srv/index")
    with pytest.raises(ValueError, match=r"setting multi_master: 'perhaps'"):
        Settings.load(tmp_path, {"WHEELFARM_MULTI_MASTER": "perhaps"})
    with pytest.raises(ValueError, match=r"setting www_port: 'http'"):
        Settings.load(tmp_path, {"WHEELFARM_WWW_PORT": "http"})


def test_a_build_image_brings_its_own_policy(tmp_path):
    image = {"image": "localhost/wheelfarm-bullseye-amd64", "policy": "manylinux_2_31_x86_64"}
    settings = farm_settings(tmp_path, build_images={"linux-x86_64": image})
    builders = {b.name: b for b in build_config(tmp_path, settings)["builders"]}
    linux = builders["build-linux-x86_64"]
    assert linux.properties["container_image"] == "localhost/wheelfarm-bullseye-amd64"
    assert linux.properties["policy"] == "manylinux_2_31_x86_64"
    assert "(manylinux_2_31_x86_64)" in linux.description
    with pytest.raises(ValueError, match="setting build_images"):
        Settings.load(tmp_path, {"WHEELFARM_BUILD_IMAGES": '{"linux-x86_64": "just-a-name"}'})


def test_worker_in_two_files_refused_with_both_places(tmp_path):
    settings = farm_settings(tmp_path)
    more = tmp_path / "more-workers.yaml"
    more.write_text(WORKERS, encoding="utf-8")
    settings.workers_files.append(more)
    with pytest.raises(ConfigErrors) as e:
        build_config(tmp_path, settings)
    assert e.value.errors == [
        f"{more}:3: workers[0].name: worker 'alice-linux' is declared in two files: "
        f"first in {tmp_path / 'workers.yaml'}:3",
        f"{more}:8: workers[1].name: worker 'bob-mac' is declared in two files: "
        f"first in {tmp_path / 'workers.yaml'}:8",
    ]


def test_a_value_that_can_only_fail_is_refused_by_the_master_too(tmp_path):
    settings = farm_settings(tmp_path)
    write_registry(settings.registry, "  - name: six\n    versions: '>=1,<0'\n")
    with pytest.raises(ConfigErrors) as e:
        build_config(tmp_path, settings)
    assert e.value.errors == [
        f"{settings.registry}:4: packages[0].versions: '>=1,<0' admits no version: "
        "its bounds do not overlap"
    ]


def step_log_lines(tmp_path: Path, packages: int) -> list[str]:
    """What Buildbot's `releaseLocks(<step>)` line says of each step of every builder."""
    body = "".join(f"  - name: pkg{i}\n    platforms: [linux-x86_64]\n" for i in range(packages))
    settings = farm_settings(tmp_path)
    settings.registry = write_registry(tmp_path / "big.yaml", body)
    settings.rollouts = tmp_path / "rollouts.yaml"  # one rollout naming every package
    names = ", ".join(f"pkg{i}" for i in range(packages))
    settings.rollouts.write_text(f"schema: 1\nrollouts:\n  - name: all\n    packages: [{names}]\n")
    lines = []
    for builder in build_config(tmp_path, settings)["builders"]:
        steps = [f.buildStep() for f in builder.factory.steps]
        for step in steps:
            steps += getattr(step, "pipeline", [])  # the steps resolve adds
        lines += [f"releaseLocks({step}): []" for step in steps]
    return lines


def test_step_log_lines_do_not_grow_with_the_registry(tmp_path):
    # Buildbot logs `releaseLocks(<the step>)` per step, and a step prints as its
    # constructor's arguments: the registry's repr made each line ~40 KB at 27 packages
    small, big = step_log_lines(tmp_path, 3), step_log_lines(tmp_path, 3000)
    assert len(small) == len(big) > 10
    # the same lines, but for numbers (a count of packages, an object's address)
    assert [re.sub(r"0x[0-9a-f]+|\d+", "N", x) for x in small] == [
        re.sub(r"0x[0-9a-f]+|\d+", "N", x) for x in big
    ]
    assert max(len(line) for line in big) < 8000
