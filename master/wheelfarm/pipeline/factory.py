"""The build of one (package, version, platform, Python), as one Buildbot factory.

Every builder of the farm runs the same factory; what it builds comes from the
build's properties (package, version_spec, python, platform, ...), so the
registry can grow without adding builders. Worker-side steps run `farmtool.pyz`
(shipped into each build) with argument lists, never a shell line.

    resolve (master) -> fetch -> build -> repair -> check -> test -> upload
    -> metadata (master) -> publish (master)

Cascades are the cascade stage's business: the composition root (config.py) hands
the factory a `Downstream` hook, so this stage never imports it.

`resolve` adds the other steps only when there is work: a build whose wheel is
already in the index (same sdist sha256 and toolchain key) ends there and
shows as skipped; `rebuild` forces it.
"""

from __future__ import annotations

from buildbot.plugins import steps, util
from buildbot.process.results import SKIPPED, SUCCESS

from ..index.store import Index
from ..registry.packages import Registry
from .publish import (
    CascadeCheck,
    CheckMetadata,
    Downstream,
    PublishWheel,
    ResolveSdist,
    VerifyWheel,
)
from .steps import (
    BUILT_DIR,
    FARMTOOL,
    REPAIRED_DIR,
    SDIST_DIR,
    FarmCommand,
    PackageBuild,
    StepLimits,
    container_args,
    env_args,
    incoming_dir,
    isolation_args,
    platform_args,
    repeat_option,
    test_command_args,
)
from .toollock import worker_lock
from .transfer import FarmUpload, RemoveIncoming, TimedFileDownload
from .workerapp import WorkerApp

# The PEP 517 frontend each build installs (and parses requirements with), as locked.
FRONTEND = ("build", "packaging", "pyproject-hooks")


def publishing(step) -> bool:
    """Test builds (a registry pull request's) check everything but publish nothing."""
    return step.getProperty("publish") is not False


def build_factory(
    pypi_url: str,
    index: Index,
    farm_index_url: str,
    downstream: Downstream,
    app: WorkerApp,
    limits: StepLimits,
    registry: Registry | None = None,
    min_free_bytes: int = 0,  # the upload is refused when the index has less free
) -> util.BuildFactory:
    pypi_simple = f"{pypi_url.rstrip('/')}/simple/"
    factory = util.BuildFactory()
    factory.buildClass = PackageBuild
    frontend = [a for d in FRONTEND for a in ("--frontend", worker_lock().requirement(d))]
    system = repeat_option("--system", "build_system")
    logs = {"log_bytes": limits.log_bytes}
    pipeline = [
        TimedFileDownload(
            name="farmtool",
            mastersrc=str(app.path),
            workerdest=FARMTOOL,
            hideStepIf=lambda results, step: results == SUCCESS,
        ),
        FarmCommand(
            "fetch",
            [
                *("--url", util.Property("sdist_url")),
                *("--sha256", util.Property("sdist_sha256")),
                *("--filename", util.Property("sdist_filename")),
                *("--dest", SDIST_DIR),
            ],
            **logs,
        ),
        FarmCommand(
            "build",
            [
                *("--sdist-dir", SDIST_DIR, "--out", BUILT_DIR),
                *frontend,
                repeat_option("--requires", "build_requires"),
                system,
                *("--index-url", farm_index_url, "--extra-index-url", pypi_simple),
                *limits.args("build"),
                env_args,
                isolation_args,
                container_args,
            ],
            **logs,
        ),
        FarmCommand(
            "repair",
            [
                platform_args,
                "--in",
                BUILT_DIR,
                "--out",
                REPAIRED_DIR,
                system,
                *limits.args("repair"),
                container_args,
            ],  # fmt: skip
            **logs,
        ),
        FarmCommand(
            "check",
            ["--wheel-dir", REPAIRED_DIR, platform_args, system, container_args],
            **logs,
        ),
        FarmCommand(
            "test",
            [
                *("--wheel-dir", REPAIRED_DIR),
                *frontend,
                *("--index-url", farm_index_url, "--extra-index-url", pypi_simple),
                repeat_option("--requires", "test_requires"),
                repeat_option("--skip-import", "skip_imports"),
                system,
                *limits.args("test"),
                isolation_args,
                container_args,
                test_command_args,
            ],
            **logs,
        ),
        FarmUpload(
            index=index,
            min_free_bytes=min_free_bytes,
            maxsize=limits.upload_bytes,
            workersrc=REPAIRED_DIR,
            masterdest=util.renderer(lambda props: incoming_dir(props, index)),
        ),
        CheckMetadata(index=index, registry=registry),
        PublishWheel(index=index, registry=registry, doStepIf=publishing),
        VerifyWheel(
            index=index,
            registry=registry,
            doStepIf=lambda step: bool(step.getProperty("verify")),
            hideStepIf=lambda results, step: results == SKIPPED,
        ),
        CascadeCheck(index=index, downstream=downstream, doStepIf=publishing),
        steps.Trigger(
            name="start campaign",
            schedulerNames=[downstream.scheduler],
            waitForFinish=False,  # the campaign runs on the master's own worker
            doStepIf=lambda step: bool(step.getProperty("campaign_action")),
            hideStepIf=lambda results, step: results == SKIPPED,
            set_properties={
                "campaign_action": util.Property("campaign_action"),
                "root": util.Property("package"),
                "version": util.Property("version"),
                "platform": util.Property("platform"),
                "python": util.Property("python"),
            },
        ),
        RemoveIncoming(index=index),
    ]
    factory.addStep(ResolveSdist(pypi_url=pypi_url, index=index, pipeline=pipeline))
    return factory
