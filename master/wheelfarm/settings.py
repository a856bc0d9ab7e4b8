"""The master's own settings: where things live, ports, database.

They come from `wheelfarm.json` in the master's basedir (written by
`wheelfarm up`, or by an operator), then from WHEELFARM_* environment
variables, which win. Everything has a default, so a bare basedir works.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from . import paths

SETTINGS_FILE = "wheelfarm.json"
DEFAULT_REGISTRY = paths.REGISTRY
DEFAULT_ROLLOUTS = paths.ROLLOUTS
DEFAULT_WORKERS = paths.WORKERS


@dataclass
class Settings:
    basedir: Path
    registry: Path = DEFAULT_REGISTRY
    rollouts: Path = DEFAULT_ROLLOUTS
    # worker registries: the repo's volunteers, plus e.g. a local farm's own worker
    workers_files: list[Path] = field(default_factory=lambda: [DEFAULT_WORKERS])
    secrets_dir: Path | None = None  # worker passwords: one file per secret, outside the repo
    db_url: str = "sqlite:///state.sqlite"  # relative to basedir; PostgreSQL for production
    www_port: int = 8010
    www_interface: str = "127.0.0.1"
    worker_port: int = 9989
    worker_interface: str = ""  # volunteers connect from elsewhere: all interfaces by default
    buildbot_url: str = ""  # public URL of the UI; derived from the port when empty
    index_dir: Path | None = None  # the farm's package index; default basedir/index
    pypi_url: str = "https://pypi.org"  # where sdists are resolved (tests point it at a fake)
    pypi_watch_interval: int = 60  # seconds between polls for new releases on PyPI; 0: off
    # a campaign marks done, without a build, a node whose wheel the index has for its
    # sdist and toolchain; false: every node is a build (bench/dispatch.py compares)
    campaign_index_check: bool = True
    # fewer database round trips per build (ops/dbtuning.py): a kept SQLite connection,
    # a build's properties in one transaction; false: Buildbot's own (bench/dispatch.py)
    db_tuning: bool = True
    title: str = "wheelfarm"
    # The registry as a git repository (URL or path): the master keeps a checkout
    # of its branch, reads packages.yaml, rollouts.yaml and workers/ from there,
    # and follows the branch (polling, or GitHub's push hook) and pull requests.
    registry_repo: str = ""
    registry_branch: str = "main"
    registry_poll_interval: int = 60  # seconds; 0: only GitHub's webhook
    registry_checkout: Path | None = None  # default basedir/registry
    github_api_url: str = "https://api.github.com"  # tests point it at a fake
    # who may log in and act (web/access.py): a `user:password` file (default
    # secrets_dir/web-users), or GitHub OAuth; admins are users or `org/team`s
    users_file: Path | None = None
    github_client_id: str = ""
    admins: list[str] = field(default_factory=list)
    # mail (see ops/mail.py): no relay, no mail
    smtp_relay: str = ""
    smtp_port: int = 25
    mail_from: str = "wheelfarm@localhost"
    missing_timeout: int = 3600  # seconds a worker may be gone before its owner is told
    missing_mail_to: str = ""  # an address told of every missing worker, e.g. the operators
    # several masters on one PostgreSQL database (see ops/cluster.py); www_port 0: no UI
    multi_master: bool = False
    mq_router_url: str = ""  # a WAMP router (crossbar), e.g. ws://127.0.0.1:8080/ws
    mq_realm: str = "buildbot"
    # seconds a master of a cluster may be silent before another declares it dead
    # (its builds run again, its campaigns resume); 0: Buildbot's own ten minutes
    master_timeout: int = 0
    # Per platform, the image container workers build in, and the wheel policy that image
    # gives (its glibc): {"linux-x86_64": {"image": "...", "policy": "manylinux_2_31_x86_64"}}.
    # Unset: the platform table's manylinux image and policy.
    build_images: dict[str, dict[str, str]] = field(default_factory=dict)
    # web server guards (web/guard.py): failed logins per user in a window (seconds);
    # an address may fail three times as often
    login_max_failures: int = 10
    login_window: int = 300
    # the largest request body of any endpoint (413 beyond); GitHub's webhooks send <= 25 MB
    max_body_bytes: int = 32 * 1024 * 1024
    # uploads are refused while the index's filesystem has less free than this
    min_free_bytes: int = 256 * 1024 * 1024
    # retention (ops/retention.py): every night at retention_hour (the master's local time)
    # Buildbot's janitor deletes step logs and build data older than their horizon
    # (days; 0 keeps them). Builds, wheels, build records and status records stay.
    log_horizon_days: int = 90
    build_data_horizon_days: int = 90
    retention_hour: int = 3
    # What a build's untrusted code may use (docs/volunteers/isolation.md; farmtool/isolation/
    # limits.py): memory and processes at once, CPU seconds per process and wall seconds
    # per phase, for the backend (build_*) and for the import check and test command
    # (test_*); disk a phase may fill; a step's log; the wheel, as a file and unpacked.
    # 0: no limit of that kind.
    build_memory_mb: int = 4096
    build_processes: int = 1024
    build_cpu_seconds: int = 7200
    build_time_seconds: int = 3600
    test_memory_mb: int = 2048
    test_processes: int = 512
    test_cpu_seconds: int = 3600
    test_time_seconds: int = 1800
    disk_mb: int = 8192
    log_mb: int = 16
    wheel_mb: int = 512
    wheel_unpacked_mb: int = 2048

    def __post_init__(self) -> None:
        self.basedir = Path(self.basedir)
        if self.registry_repo:
            # the repo's files come from the checkout unless set on their own
            checkout = self.checkout_path
            if self.registry == DEFAULT_REGISTRY:
                self.registry = checkout / "packages.yaml"
            if self.rollouts == DEFAULT_ROLLOUTS:
                self.rollouts = checkout / "rollouts.yaml"
            self.workers_files = [
                checkout / "workers" / "workers.yaml" if Path(f) == DEFAULT_WORKERS else Path(f)
                for f in self.workers_files
            ]

    @property
    def checkout_path(self) -> Path:
        return Path(self.registry_checkout or self.basedir / "registry")

    # Derived when not set, and not saved, so that changing the port moves them too.
    @property
    def index_path(self) -> Path:
        return Path(self.index_dir) if self.index_dir else self.basedir / "index"

    @property
    def public_url(self) -> str:
        return self.buildbot_url or f"http://127.0.0.1:{self.www_port}/"

    @classmethod
    def load(cls, basedir: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        basedir = Path(basedir).resolve()
        raw: dict = {}
        path = basedir / SETTINGS_FILE
        if path.exists():
            raw = json.loads(path.read_text(encoding="utf-8"))
        hints = get_type_hints(cls)
        for f in fields(cls):
            env = environ.get(f"WHEELFARM_{f.name.upper()}")
            if env is not None:
                raw[f.name] = env.split(os.pathsep) if hints[f.name] in _LISTS else env
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
        raw.pop("basedir", None)
        values: dict[str, Any] = {}
        for name, value in raw.items():
            try:
                values[name] = None if value is None else _CONVERTERS[hints[name]](value)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}: setting {name}: {value!r}: {e}") from e
        return cls(basedir=basedir, **values)

    def save(self) -> Path:
        data = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "basedir":
                continue
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, list):
                value = [str(v) for v in value]
            data[f.name] = value
        path = self.basedir / SETTINGS_FILE
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return path


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("not a boolean (true/false)")


def _build_images(value: object) -> dict[str, dict[str, str]]:
    """{platform: {"image": NAME, "policy": TAG}} (from the environment: that JSON)."""
    data = json.loads(value) if isinstance(value, str) else value
    if not isinstance(data, dict) or not all(
        isinstance(v, dict) and set(v) <= {"image", "policy"} and "image" in v
        for v in data.values()
    ):
        raise ValueError('not {"PLATFORM": {"image": NAME, "policy": TAG}, ...}')
    return {str(k): {kk: str(vv) for kk, vv in v.items()} for k, v in data.items()}


def _strings(value: object) -> list[str]:
    if not isinstance(value, list):
        raise TypeError("not a list")
    return [str(v) for v in value]


# One converter per declared type of a setting (from the JSON file or the environment).
_CONVERTERS: dict[object, Callable[[Any], Any]] = {
    str: str,
    int: int,
    bool: _to_bool,
    Path: Path,
    Path | None: Path,  # None is passed through before
    list[str]: _strings,
    list[Path]: lambda value: [Path(v) for v in _strings(value)],
    dict[str, dict[str, str]]: _build_images,
}
_LISTS = (list[str], list[Path])


# The settings reference (docs/reference/settings.md, written by `python -m
# wheelfarm.cli.docs`): what each setting does, one row per group of settings, in the
# order of their first field above. `default` replaces the fields' own defaults where
# those need words (a default derived at start). A test fails when a field is missing.
@dataclass(frozen=True)
class SettingDoc:
    names: tuple[str, ...]
    text: str
    default: str = ""


SETTING_DOCS: tuple[SettingDoc, ...] = (
    SettingDoc(("registry",), "the package registry, `packages.yaml`"),
    SettingDoc(("rollouts",), "the rollouts file"),
    SettingDoc(
        ("workers_files",),
        "the worker files the master reads (a worker declared in two of them is refused)",
    ),
    SettingDoc(
        ("secrets_dir",),
        "worker passwords, one file per worker named `worker-NAME`, mode 0600, outside"
        " the repo; the secrets `github_webhook_secret`, `github_token` and"
        " `github_client_secret`",
    ),
    SettingDoc(
        ("db_url",),
        "SQLite by default (relative to the basedir); `postgresql://user@host/db` in production",
    ),
    SettingDoc(
        ("www_port",), "web UI and the package index (`/simple/`); 0: no UI (a build-only master)"
    ),
    SettingDoc(
        ("www_interface",), "the address the UI listens on (put a TLS proxy in front of it)"
    ),
    SettingDoc(("worker_port",), "where workers connect"),
    SettingDoc(("worker_interface",), "the address workers connect to", default="all"),
    SettingDoc(
        ("buildbot_url",),
        "the public URL of the UI, used in links and mails",
        default="`http://127.0.0.1:PORT/`",
    ),
    SettingDoc(
        ("index_dir",),
        "the farm's package index (wheels and build records)",
        default="`BASEDIR/index`",
    ),
    SettingDoc(("pypi_url",), "where sdists are resolved: any PEP 691 index"),
    SettingDoc(
        ("pypi_watch_interval",),
        "seconds between polls for new releases on PyPI; 0 turns the watcher off",
    ),
    SettingDoc(
        ("campaign_index_check",),
        "a campaign marks done, without a build, a node whose wheel the index has for its"
        " sdist and toolchain; false: every node is a build (`bench/dispatch.py` compares)",
    ),
    SettingDoc(
        ("db_tuning",),
        "read at start (a reconfig cannot change it): fewer database round trips per build"
        " (`ops/dbtuning.py`): on SQLite one kept connection instead of one per call, on any"
        " database a build's properties in one transaction per flush; false: Buildbot's own"
        " behaviour",
    ),
    SettingDoc(("title",), "the UI's title"),
    SettingDoc(
        ("registry_repo",),
        "git URL (or path) of the registry: the master keeps a checkout of its branch, reads"
        " `packages.yaml`, `rollouts.yaml` and `workers/` from there, and follows the branch"
        " and its pull requests",
        default="none",
    ),
    SettingDoc(("registry_branch",), "the branch of `registry_repo` the master follows"),
    SettingDoc(
        ("registry_poll_interval",),
        "seconds between polls of `registry_repo`; 0: GitHub's webhook only",
    ),
    SettingDoc(
        ("registry_checkout",),
        "the master's checkout of `registry_repo`",
        default="`BASEDIR/registry`",
    ),
    SettingDoc(("github_api_url",), "where commit statuses go (GitHub Enterprise, or a fake)"),
    SettingDoc(
        ("users_file",), "web logins, `name:password` lines", default="`SECRETS_DIR/web-users`"
    ),
    SettingDoc(
        ("github_client_id",), "log in with GitHub (OAuth app; secret `github_client_secret`)"
    ),
    SettingDoc(
        ("admins",),
        "users and GitHub teams (`org/team`) who may do everything (environment: `:`-separated)",
        default="none",
    ),
    SettingDoc(("smtp_relay", "smtp_port"), "mail relay; without one the farm sends no mail"),
    SettingDoc(("mail_from",), "sender of the farm's mail"),
    SettingDoc(("missing_timeout",), "seconds a worker may be gone before its owner is mailed"),
    SettingDoc(
        ("missing_mail_to",),
        "an address (e.g. the operators) told of every missing worker too",
    ),
    SettingDoc(
        ("multi_master", "mq_router_url", "mq_realm"),
        "several masters on one PostgreSQL database, joined by a WAMP router (crossbar),"
        " e.g. `ws://127.0.0.1:8080/ws`",
    ),
    SettingDoc(
        ("master_timeout",),
        "seconds a master of a cluster may be silent before another takes it for dead: its"
        " builds run again, its campaigns resume",
        default="0 (Buildbot's 10 minutes)",
    ),
    SettingDoc(
        ("build_images",),
        'per platform, `{"image": NAME, "policy": TAG}` for container workers (environment:'
        " that JSON)",
        default="the manylinux images",
    ),
    SettingDoc(
        ("login_max_failures", "login_window"),
        "failed logins a user may have in the window (seconds), an address three times as"
        " many; then `/auth/login` answers 429 with Retry-After",
    ),
    SettingDoc(
        ("max_body_bytes",),
        "the largest request body any endpoint takes (GitHub's webhook payloads are at most"
        " 25 MB): a bigger one is answered 413 from its Content-Length, or, chunked, once"
        " past the limit, before it is kept",
    ),
    SettingDoc(
        ("min_free_bytes",),
        "uploads are refused (the build fails with the reason) while the index's filesystem"
        " has less free; `/farm/workers` warns",
    ),
    SettingDoc(
        ("log_horizon_days",), "step logs older than this are deleted every night; 0 keeps them"
    ),
    SettingDoc(
        ("build_data_horizon_days",),
        "Buildbot's build data older than this is deleted every night; 0 keeps it",
    ),
    SettingDoc(("retention_hour",), "the hour (master's local time) the retention job runs"),
    SettingDoc(
        ("build_memory_mb", "build_processes", "build_cpu_seconds", "build_time_seconds"),
        "what a build's backend may use: memory and processes at once, CPU seconds per"
        " process, wall seconds per phase; 0: no limit",
    ),
    SettingDoc(
        ("test_memory_mb", "test_processes", "test_cpu_seconds", "test_time_seconds"),
        "the same for the import check and the test command",
    ),
    SettingDoc(("disk_mb",), "what one untrusted phase may leave in its folders (and its `/tmp`)"),
    SettingDoc(("log_mb",), "a step's log: farmtool shows no more, and the master keeps no more"),
    SettingDoc(
        ("wheel_mb", "wheel_unpacked_mb"),
        "the wheel a build makes (and the upload), and its members unpacked",
    ),
)
