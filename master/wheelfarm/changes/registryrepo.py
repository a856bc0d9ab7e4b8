"""The registry as a git repository: follow its branch, check its pull requests.

A change on the branch (GitPoller, or GitHub's push hook) runs `registry-update`:
fetch, stage the new files beside the live ones, `wheelfarm check` them, plan
what they add, move the live checkout, reconfigure the master (a refused
configuration moves the checkout back), and request only the builds the change
added. A bad change fails that build and nothing else happens.

A pull request (GitHub's hook, signature checked) runs `registry-check`: the
same up to the plan, then test builds of what the PR adds, not published. Its
result goes back to the PR as a commit status.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from buildbot.changes.gitpoller import GitPoller
from buildbot.config.errors import ConfigErrors
from buildbot.plugins import reporters, schedulers, steps, util
from buildbot.process import buildstep, logobserver
from buildbot.process.properties import Properties
from buildbot.process.results import FAILURE, SKIPPED, SUCCESS, Results, worst_status
from buildbot.util import asyncSleep
from twisted.internet import defer, threads

from ..cascade.orchestrate import ORCHESTRATE
from ..pipeline.schedulers import request_properties, triggerable_name
from ..problems import ValidationError
from ..registry.matching import Served, served
from ..registry.packages import Registry, load_registry
from ..registry.rollouts import load_rollouts
from ..registry.workers import load_workers
from ..settings import Settings
from .registrydiff import Target, added_targets, summary

UPDATE = "registry-update"
CHECK = "registry-check"
WEBHOOK_SECRET = "github_webhook_secret"
GITHUB_TOKEN = "github_token"
WHEELFARM = str(Path(sys.executable).with_name("wheelfarm"))
# one registry build at a time: they share the checkout and the staging tree
GIT_LOCK = util.MasterLock("registry-checkout")


def touches_registry(change) -> bool:
    return any(
        f in ("packages.yaml", "rollouts.yaml") or f.startswith("workers/") for f in change.files
    )


def ensure_checkout(settings: Settings) -> None:
    """Clone the registry on first use; the master reads its files from there."""
    checkout = settings.checkout_path
    if (checkout / ".git").exists() or not settings.registry_repo:
        return
    done = subprocess.run(
        [
            "git",
            "clone",
            "--quiet",
            "--branch",
            settings.registry_branch,
            "--",
            settings.registry_repo,
            str(checkout),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise ConfigErrors(
            [f"cannot clone the registry {settings.registry_repo}: {done.stderr.strip()}"]
        )


def _secret_exists(settings: Settings, name: str) -> bool:
    return settings.secrets_dir is not None and (Path(settings.secrets_dir) / name).is_file()


def change_sources(settings: Settings) -> list:
    if not settings.registry_repo or settings.registry_poll_interval <= 0:
        return []
    return [
        GitPoller(
            repourl=settings.registry_repo,
            branches=[settings.registry_branch],
            workdir=str(settings.basedir / "gitpoller-registry"),
            pollInterval=settings.registry_poll_interval,
            pollAtLaunch=True,
            project="registry",
            category="registry",
        )
    ]


def make_schedulers(settings: Settings) -> list:
    if not settings.registry_repo:
        return []
    branch = settings.registry_branch
    return [
        schedulers.SingleBranchScheduler(
            name="registry-branch",
            # the poller's changes, or GitHub's push hook (category None) on the branch
            change_filter=util.ChangeFilter(
                branch=branch, filter_fn=lambda c: c.category in ("registry", None)
            ),
            treeStableTimer=None,
            fileIsImportant=touches_registry,
            builderNames=[UPDATE],
        ),
        schedulers.AnyBranchScheduler(
            name="registry-pull-requests",
            change_filter=util.ChangeFilter(category="pull"),
            treeStableTimer=None,
            builderNames=[CHECK],
        ),
        schedulers.ForceScheduler(
            name="registry-update-now", buttonName="Update now", builderNames=[UPDATE]
        ),
    ]


def www_hooks(settings: Settings) -> dict:
    """GitHub's webhook at /change_hook/github, only with a secret to check."""
    if not settings.registry_repo or not _secret_exists(settings, WEBHOOK_SECRET):
        return {}
    hook = {
        "secret": util.Secret(WEBHOOK_SECRET),
        "strict": True,  # unsigned or badly signed payloads are refused
        "github_api_endpoint": settings.github_api_url,
        "pullrequest_ref": "head",  # the PR's own commit, which statuses name
    }
    if _secret_exists(settings, GITHUB_TOKEN):
        hook["token"] = util.Secret(GITHUB_TOKEN)
    return {"github": hook}


def make_reporters(settings: Settings) -> list:
    """Commit statuses on GitHub for registry checks and updates, given a token."""
    if not settings.registry_repo or not _secret_exists(settings, GITHUB_TOKEN):
        return []
    summary_text = util.Interpolate("%(prop:registry_summary:-done)s")
    return [
        reporters.GitHubStatusPush(
            token=util.Secret(GITHUB_TOKEN),
            baseURL=settings.github_api_url,
            context=util.Interpolate("wheelfarm/%(prop:buildername)s"),
            generators=[
                reporters.BuildRequestGenerator(
                    builders=[CHECK, UPDATE],
                    formatter=reporters.MessageFormatterRenderable("queued"),
                ),
                reporters.BuildStartEndStatusGenerator(
                    builders=[CHECK, UPDATE],
                    start_formatter=reporters.MessageFormatterRenderable("checking"),
                    end_formatter=reporters.MessageFormatterRenderable(summary_text),
                ),
            ],
        )
    ]


def make_builders(
    settings: Settings,
    live: Registry,
    live_served: Served,
    live_rollouts: list[str],
    worker: str,
) -> list:
    if not settings.registry_repo:
        return []
    checkout, stage = settings.checkout_path, settings.basedir / "registry-stage"
    checkout_files = {checkout / "workers" / "workers.yaml"}
    other_workers = [Path(f) for f in settings.workers_files if Path(f) not in checkout_files]

    def pipeline(refspec, check: bool) -> list:
        revision = util.Interpolate("%(prop:revision:~FETCH_HEAD)s")
        fetch = ["fetch", "--quiet", "--no-tags", "--", settings.registry_repo, refspec]
        return [
            _git(checkout, "fetch", fetch),
            steps.SetPropertyFromCommand(
                name="live revision",
                command=["git", "-C", str(checkout), "rev-parse", "HEAD"],
                property="live_revision",
                hideStepIf=True,
                logEnviron=False,
            ),
            _git(
                checkout,
                "unstage",
                ["worktree", "remove", "--force", str(stage)],
                flunkOnFailure=False,
                haltOnFailure=False,
                hideStepIf=True,
            ),
            _git(
                checkout, "stage", ["worktree", "add", "--force", "--detach", str(stage), revision]
            ),
            CheckRegistry(stage),
            PlanChange(stage, live, live_served, live_rollouts, other_workers, check=check),
        ]

    apply = ["checkout", "--quiet", "--detach", util.Property("staged_revision")]
    update = util.BuildFactory(
        [
            *pipeline(settings.registry_branch, check=False),
            _git(checkout, "apply", apply),
            Reconfigure(checkout),
            RequestBuilds(settings.registry, publish=True),
        ]
    )
    pr_ref = util.Interpolate("+%(prop:branch)s:refs/wheelfarm/pr")
    check = util.BuildFactory(
        [*pipeline(pr_ref, check=True), RequestBuilds(stage / "packages.yaml", publish=False)]
    )
    common = {
        "workernames": [worker],
        "locks": [GIT_LOCK.access("exclusive")],
        "tags": ["registry"],
        "collapseRequests": False,
    }
    return [
        util.BuilderConfig(
            name=UPDATE,
            factory=update,
            description="takes a registry change: check, reconfigure, build what it adds",
            **common,
        ),
        util.BuilderConfig(
            name=CHECK,
            factory=check,
            description="checks a pull request to the registry: validation and test builds",
            **common,
        ),
    ]


def _git(checkout: Path, name: str, args: list, **kwargs) -> steps.ShellCommand:
    kwargs.setdefault("haltOnFailure", True)
    kwargs["logEnviron"] = False  # logs are public; the master's environment is not
    return steps.ShellCommand(name=name, command=["git", "-C", str(checkout), *args], **kwargs)


class CheckRegistry(steps.ShellCommand):
    """`wheelfarm check` on the staged files; its first problem is the build's summary."""

    name = "check"

    def __init__(self, stage: Path, **kwargs):
        kwargs.setdefault("haltOnFailure", True)
        command = [WHEELFARM, "check", str(stage / "packages.yaml"), "--workers", stage / "workers"]
        kwargs["logEnviron"] = False
        super().__init__(command=[str(a) for a in command], **kwargs)
        self.problems: list[str] = []
        self.addLogObserver("stdio", logobserver.LineConsumerLogObserver(self._lines))

    def _lines(self):
        while True:
            stream, line = yield
            if stream == "e" and not line.startswith("warning: "):
                self.problems.append(line.strip())

    @defer.inlineCallbacks
    def run(self):
        result = yield super().run()
        if result == SUCCESS:
            return result
        first = self.problems[0] if self.problems else "wheelfarm check failed"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        self.setProperty("registry_summary", f"refused: {first}{more}"[:140], "check")
        self.descriptionDone = [f"refused: {first}{more}"]
        return result


class PlanChange(buildstep.BuildStep):
    """Which builds the staged registry adds to the live one."""

    name = "plan"

    def __init__(
        self,
        stage: Path,
        live: Registry,
        live_served: Served,
        live_rollouts: list[str],
        other_workers: list[Path],
        check: bool,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.stage, self.live, self.live_served = stage, live, live_served
        self.live_rollouts, self.other_workers, self.check = live_rollouts, other_workers, check

    def _plan(self) -> tuple[str, list[Target], list[str]]:
        revision = subprocess.run(
            ["git", "-C", str(self.stage), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        new = load_registry(self.stage / "packages.yaml")
        if self.check:
            # a pull request is test-built where the farm has workers today
            now = self.live_served
        else:
            files = [self.stage / "workers" / "workers.yaml", *self.other_workers]
            now = served([w for f in files if f.exists() for w in load_workers(f)])
        rollouts = load_rollouts(self.stage / "rollouts.yaml", set(new.packages))
        added = [r.name for r in rollouts if r.name not in self.live_rollouts]
        return revision, added_targets(self.live, new, self.live_served, now, self.check), added

    @defer.inlineCallbacks
    def run(self):
        try:
            revision, targets, rollouts = yield threads.deferToThread(self._plan)
        except (ValidationError, subprocess.CalledProcessError) as e:
            self.descriptionDone = [f"cannot plan: {e}"]
            return FAILURE
        self.setProperty("staged_revision", revision, "plan")
        self.setProperty("registry_targets", [list(t.__dict__.values()) for t in targets], "plan")
        self.setProperty("new_rollouts", rollouts, "plan")
        log = yield self.addLog("targets")
        yield log.addStdout(
            "".join(f"{t.package} {t.platform} {t.python}: {t.why}\n" for t in targets)
            + "".join(f"new rollout {name}: starts once merged\n" for name in rollouts)
            or "nothing to build\n"
        )
        self.descriptionDone = [summary(targets)]
        self.setProperty("registry_summary", summary(targets)[:140], "plan")
        return SUCCESS


class Reconfigure(buildstep.BuildStep):
    """Reload the master's configuration from the new checkout; undo it if refused."""

    name = "reconfigure"

    def __init__(self, checkout: Path, **kwargs):
        kwargs.setdefault("haltOnFailure", True)
        super().__init__(**kwargs)
        self.checkout = checkout

    @defer.inlineCallbacks
    def _settled(self):
        while self.master.reconfig_active:
            yield asyncSleep(0.2)

    @defer.inlineCallbacks
    def run(self):
        yield self._settled()
        before = self.master.config_version
        yield self.master.reconfig()
        yield self._settled()
        if self.master.config_version != before:
            self.descriptionDone = ["configuration reloaded"]
            return SUCCESS
        live = self.getProperty("live_revision")
        yield threads.deferToThread(
            subprocess.run,
            ["git", "-C", str(self.checkout), "checkout", "--quiet", "--detach", live],
            check=True,
        )
        reason = "the master refused the new configuration (see its log); kept the old one"
        self.setProperty("registry_summary", reason[:140], "reconfigure")
        self.descriptionDone = [reason]
        return FAILURE


class RequestBuilds(buildstep.BuildStep):
    """Request the planned builds from their platforms' Triggerables.

    The builds carry this build's source stamp, so each shows the registry
    change that asked for it. A pull request's builds are waited for and not
    published; the branch's are left to run.
    """

    name = "request builds"

    def __init__(self, registry: Path, publish: bool, **kwargs):
        super().__init__(**kwargs)
        self.registry, self.publish = registry, publish

    @defer.inlineCallbacks
    def run(self):
        targets = [Target(*t) for t in self.getProperty("registry_targets") or []]
        rollouts = (self.getProperty("new_rollouts") or []) if self.publish else []
        for name in rollouts:  # a merged rollout starts, as from its force form
            self._trigger(ORCHESTRATE, {"campaign_action": "rollout", "rollout": name})
        if not targets:
            self.descriptionDone = [
                f"started rollouts {', '.join(rollouts)}" if rollouts else "nothing to build"
            ]
            return SUCCESS
        registry = yield threads.deferToThread(load_registry, self.registry)
        cause = self._cause()
        waits = []
        for t in targets:
            props = request_properties(
                registry.packages[t.package],
                t.platform,
                t.python,
                f"{cause}: {t.why}",
                rebuild=not self.publish,  # a check builds even what the index has
            )
            props.update(publish=self.publish, reason=cause)
            finished = self._trigger(triggerable_name(t.platform), props)
            if finished is not None:  # else no worker serves the platform (any more)
                waits.append((t, finished))
        if self.publish:
            self.descriptionDone = [f"requested {len(waits)} builds"]
            return SUCCESS
        return (yield self._gather(waits))

    def _trigger(self, scheduler_name: str, props: dict) -> defer.Deferred | None:
        """A request through a Triggerable, with this build's source stamps (its change)."""
        scheduler = self.master.scheduler_manager.namedServices.get(scheduler_name)
        if scheduler is None:
            return None
        properties = Properties()
        properties.update(props, "registry")
        sourcestamps = [
            {k: getattr(ss, k) for k in ("codebase", "repository", "branch", "revision", "project")}
            for ss in self.build.getAllSourceStamps()
        ]
        _, finished = scheduler.trigger(
            waited_for=not self.publish,
            sourcestamps=sourcestamps,
            set_props=properties,
            parent_buildid=self.build.buildid,
            parent_relationship="registry",
        )
        if self.publish:
            finished.addErrback(lambda _: None)  # those builds report for themselves
        return finished

    def _cause(self) -> str:
        revision = (self.getProperty("staged_revision") or "")[:10]
        if self.publish:
            return f"registry change {revision}"
        number = (self.getProperty("branch") or "").split("/")[2:3]
        return f"check of pull request #{number[0] if number else '?'} ({revision})"

    @defer.inlineCallbacks
    def _gather(self, waits):
        outcome: dict[str, int] = {}
        for t, finished in waits:
            try:
                result, _ = yield finished
            except Exception:
                result = FAILURE
            outcome[t.package] = worst_status(outcome.get(t.package, SUCCESS), result)
        lines = [f"{pkg}: {Results[r]}" for pkg, r in sorted(outcome.items())]
        log = yield self.addLog("summary")
        yield log.addStdout("\n".join(lines) + "\n")
        result = SUCCESS
        for r in outcome.values():
            result = worst_status(result, r)
        failed = sorted(p for p, r in outcome.items() if r not in (SUCCESS, SKIPPED))
        text = f"{len(outcome)} packages test-built" + (
            f"; failed: {', '.join(failed)}" if failed else "; all passed"
        )
        self.setProperty("registry_summary", text[:140], "request builds")
        self.descriptionDone = [text]
        return result
