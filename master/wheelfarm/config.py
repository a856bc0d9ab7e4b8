"""Files -> validated objects -> Buildbot's BuildmasterConfig.

`master/master.cfg` calls `build_config(basedir)`. A bad registry or worker
file raises, and Buildbot then refuses the whole new configuration: a running
master keeps its last good one.
"""

from __future__ import annotations

import secrets as _secrets
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from buildbot.config.errors import ConfigErrors
from buildbot.plugins import secrets, util, worker
from buildbot.worker.local import LocalWorker
from twisted.python import log

from .buildbot_internals import quarantine, version_problem
from .cascade.campaign import cascade_action
from .cascade.orchestrate import ORCHESTRATE, ORCHESTRATOR, orchestrator_factory
from .cascade.prebuilt import Prebuilt
from .cascade.store import CampaignStore
from .changes import registryrepo
from .changes.pypiwatch import release_watch
from .index.store import Index
from .ops.cluster import cluster_config, cluster_services
from .ops.dbreconnect import RetryDroppedConnections
from .ops.dbtuning import BatchedBuildProperties, sqlite_engine_kwargs
from .ops.historydb import HistoryIndexes
from .ops.mail import mail_services, missing_worker_options
from .ops.retention import retention_configurators
from .pipeline.factory import build_factory
from .pipeline.publish import Downstream
from .pipeline.schedulers import collapse_same_target, make_schedulers, triggerable_name
from .pipeline.steps import StepLimits
from .pipeline.transfer import IncomingSweeper
from .pipeline.workerapp import worker_app
from .problems import ValidationError
from .registry.matching import can_take, downtime_ends, prefer_native, served
from .registry.packages import Registry, load_registry
from .registry.platforms import PLATFORMS, Platform
from .registry.rollouts import Rollout, load_rollouts
from .registry.workers import WorkerEntry, load_worker_files, password_secret_name
from .settings import Settings
from .state.db import StateDB, engine_options
from .state.status import StatusService
from .web import guard as webguard
from .web.access import www_access
from .web.badges import BadgeService
from .web.site import IndexService, farm_services


def build_config(basedir: str | Path, settings: Settings | None = None) -> dict:
    settings = settings or Settings.load(basedir)
    if problem := version_problem():
        raise ConfigErrors([f"wheelfarm: {problem}"])
    registryrepo.ensure_checkout(settings)
    try:
        registry = load_registry(settings.registry)
        entries = load_worker_files(settings.workers_files)
        rollouts = load_rollouts(settings.rollouts, set(registry.packages))
    except ValidationError as e:
        # one line per problem in the master's log; Buildbot keeps the old config
        raise ConfigErrors([str(p) for p in e.problems]) from e

    # the farm's own records, in Buildbot's database: every master of a cluster sees them
    store = CampaignStore(StateDB.open(settings.db_url, settings.basedir))
    builders = _builders(registry, entries, settings, store)
    platforms = {b.properties["platform"]: b.name for b in builders}
    offered = served(entries)
    pages: dict[str, Any] = {
        "registry": registry,
        "index_dir": str(settings.index_path),
        "base_url": settings.public_url,
        "served": offered,  # statuses count what the workers offer
    }
    # Always there, on the master's own worker: a farm with no volunteers yet still
    # loads (Buildbot refuses a configuration without builders), and its cascades and
    # rollouts wait for platforms to gain workers.
    prebuilt = (
        Prebuilt(settings.pypi_url, Index(settings.index_path))
        if settings.campaign_index_check
        else None
    )
    builders.append(_orchestrator(registry, store, platforms, rollouts, prebuilt))
    builders += registryrepo.make_builders(
        settings, registry, offered, [r.name for r in rollouts], ORCHESTRATOR
    )
    release_sources, release_schedulers = release_watch(settings, platforms, registry, offered)
    return {
        "title": settings.title,
        "titleURL": settings.public_url,
        "buildbotURL": settings.public_url,
        "buildbotNetUsageData": None,
        "db": {
            "db_url": settings.db_url,
            # a dropped connection is replaced before use (a database restart, a failover)
            "engine_kwargs": {
                **engine_options(settings.db_url),
                **(sqlite_engine_kwargs(settings.db_url) if settings.db_tuning else {}),
            },
        },
        "protocols": {"pb": {"port": _endpoint(settings.worker_port, settings.worker_interface)}},
        "secretsProviders": _secret_providers(settings),
        "workers": [_worker(e, settings) for e in entries]
        + [LocalWorker(ORCHESTRATOR, max_builds=50)],
        "builders": builders,
        "change_source": release_sources + registryrepo.change_sources(settings),
        "schedulers": make_schedulers(platforms, registry, [r.name for r in rollouts], offered)
        + release_schedulers
        + registryrepo.make_schedulers(settings),
        "collapseRequests": collapse_same_target,
        **cluster_config(settings),
        # logs and build data past their horizon are deleted every night
        "configurators": retention_configurators(settings),
        "www": {
            # a build-only master of a cluster serves no UI
            "port": _endpoint(settings.www_port, settings.www_interface)
            if settings.www_port
            else None,
            "plugins": {"waterfall_view": {}, "console_view": {}, "grid_view": {}, "badges": {}},
            # the grid shows 5 releases: it needs no 1,000 builds, buildsets and requests
            # (each fetched with its properties or sourcestamps) to draw them
            "ui_default_config": {"Grid.buildFetchLimit": 200, "Grid.changeFetchLimit": 30},
            "change_hook_dialects": registryrepo.www_hooks(settings),
            **www_access(settings, registry),
        },
        "services": [
            IndexService(name="wheelfarm-index", index_dir=str(settings.index_path)),
            # the /farm/ pages: campaigns, packages, workers
            *farm_services(entries, store, min_free_bytes=settings.min_free_bytes, **pages),
            BadgeService(name="wheelfarm-badges", campaigns=store, **pages),
            StatusService(basedir=str(settings.basedir), db_url=settings.db_url),
            HistoryIndexes(),  # and Buildbot's list queries count without sorting
            webguard.guard_service(settings),  # cookie flags, login throttle, body limit
            *([BatchedBuildProperties()] if settings.db_tuning else []),
            RetryDroppedConnections(),  # Buildbot's calls through a dropped connection
            *registryrepo.make_reporters(settings),
            IncomingSweeper(name="wheelfarm-incoming", index_dir=str(settings.index_path)),
            *mail_services(settings),
            *cluster_services(settings),
        ],
    }


def _endpoint(port: int, interface: str) -> str:
    return f"tcp:{port}:interface={interface}" if interface else f"tcp:{port}"


def _secret_providers(settings: Settings) -> list:
    if settings.secrets_dir and Path(settings.secrets_dir).is_dir():
        return [secrets.SecretInAFile(dirname=str(settings.secrets_dir))]
    return []


def _worker(entry: WorkerEntry, settings: Settings) -> worker.Worker:
    secret = password_secret_name(entry.name)
    secret_file = Path(settings.secrets_dir or "/nonexistent") / secret
    if secret_file.is_file():
        password = util.Secret(secret)
    else:
        # The config must load without secrets (CI, checkconfig): such a worker
        # gets a random password nobody knows, so it cannot log in.
        log.msg(
            f"wheelfarm: WARNING: no secret {secret!r} in {settings.secrets_dir}: "
            f"worker {entry.name!r} cannot log in"
        )
        password = _secrets.token_urlsafe(32)
    return worker.Worker(
        entry.name,
        password,
        max_builds=entry.max_builds,
        properties=_worker_properties(entry),
        **missing_worker_options(entry, settings),
    )


def _worker_properties(entry: WorkerEntry) -> dict:
    props: dict[str, Any] = {"platform": entry.platform, "pythons": list(entry.pythons)}
    props["isolation"] = entry.isolation  # how its builds sandbox the package's own code
    if entry.container:
        props["container_engine"] = entry.container  # every step in the platform's build image
    if entry.emulated:
        props["emulated"] = True  # the platform's image, run under QEMU
    return props


def _orchestrator(
    registry: Registry,
    store: CampaignStore,
    platforms: dict[str, str],
    rollouts: list[Rollout],
    prebuilt: Prebuilt | None,
):
    """The builder that runs campaigns, on the master's own worker."""
    triggers = {platform: triggerable_name(platform) for platform in platforms}
    return util.BuilderConfig(
        name=ORCHESTRATE,
        workernames=[ORCHESTRATOR],
        factory=orchestrator_factory(registry, store, triggers, rollouts, prebuilt),
        collapseRequests=False,
        tags=["campaigns"],
        description="cascades and rollouts: rebuilds in dependency order",
    )


def _builders(
    registry: Registry, entries: list[WorkerEntry], settings: Settings, store: CampaignStore
) -> list:
    """One real builder per platform that has workers; packages are properties."""
    app = worker_app(settings.basedir)
    factory = build_factory(
        settings.pypi_url,
        Index(settings.index_path),
        f"{settings.public_url}simple/",
        Downstream(partial(cascade_action, campaigns=store.all), ORCHESTRATE),
        app,
        step_limits(settings),
        registry,
        min_free_bytes=settings.min_free_bytes,
    )
    by_name = {e.name: e for e in entries}

    def worker_can_take(builder, wfb, request) -> bool:
        entry = by_name.get(wfb.worker.workername)
        if entry is None:
            return False
        now = datetime.now(UTC)
        ends = downtime_ends(entry, now)
        if ends is not None:  # back when the window closes, with no poller
            quarantine(wfb.worker, (ends - now).total_seconds())
            return False
        return can_take(entry, request.properties.getProperty("python"), now)

    result = []
    for platform in PLATFORMS.values():
        names = [e.name for e in entries if e.platform == platform.name]
        if not names:
            continue
        properties = {
            "platform": platform.name,
            "farmtool_sha256": app.sha256,  # which worker side built it: the build record says
            **_build_image(platform, settings),
        }
        result.append(
            util.BuilderConfig(
                name=platform.builder_name,
                workernames=names,
                factory=factory,
                properties=properties,
                tags=["platform", platform.name],
                canStartBuild=worker_can_take,
                nextWorker=prefer_native(entries),
                description=f"wheels for {platform.name} ({properties['policy']}): "
                f"{len(registry.for_platform(platform.name))} packages",
            )
        )
    return result


MB = 1 << 20


def step_limits(settings: Settings) -> StepLimits:
    """The settings' limits, as farmtool takes them (bytes, seconds); 0 is no limit."""
    s = settings

    def set_(values: dict[str, int]) -> dict[str, int]:
        return {key: value for key, value in values.items() if value > 0}

    return StepLimits(
        build=set_({"memory": s.build_memory_mb * MB, "processes": s.build_processes,
                    "cpu": s.build_cpu_seconds, "time": s.build_time_seconds}),
        test=set_({"memory": s.test_memory_mb * MB, "processes": s.test_processes,
                   "cpu": s.test_cpu_seconds, "time": s.test_time_seconds}),
        shared=set_({"disk": s.disk_mb * MB, "output": s.log_mb * MB, "wheel": s.wheel_mb * MB,
                     "unpacked": s.wheel_unpacked_mb * MB}),
        log_bytes=s.log_mb * MB or 1 << 40,
        upload_bytes=(s.wheel_mb * MB + MB) if s.wheel_mb else 1 << 40,  # the wheel, in a tar
    )  # fmt: skip


def _build_image(platform: Platform, settings: Settings) -> dict[str, str]:
    """The image container workers build in, and the policy its wheels meet: an image
    with a newer glibc than the platform's policy needs a newer policy (it follows)."""
    chosen = settings.build_images.get(platform.name, {})
    image = chosen.get("image") or platform.manylinux_image
    return {
        "policy": chosen.get("policy") or platform.policy,
        **({"container_image": image} if image else {}),
    }
