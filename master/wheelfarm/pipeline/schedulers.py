"""How builds are requested: the force form, per-platform triggerables, and the
rules that keep requests for different targets apart.

A request's properties carry everything its build needs (package, version
spec, platform, Python, the registry's build settings, and why it was asked
for), taken from the registry when the request is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from buildbot.plugins import schedulers, util
from buildbot.process.buildrequest import BuildRequest
from buildbot.process.properties import Properties
from buildbot.schedulers.forcesched import CollectedValidationError, ValidationErrorCollector
from packaging.utils import canonicalize_name
from twisted.internet import defer

from ..registry.matching import Served, served_targets
from ..registry.packages import Package, Registry
from ..registry.platforms import PLATFORMS

# Requests are the same work only when all of these match (see collapse_same_target).
TARGET_PROPERTIES = (
    "package",
    "version_spec",
    "platform",
    "python",
    "rebuild",
    "publish",
    "verify",
)


def request_properties(
    package: Package,
    platform: str,
    python: str,
    cause: str,
    version_spec: str | None = None,
    rebuild: bool = False,
) -> dict:
    """The properties of one build request, from the registry entry."""
    if version_spec is None:
        version_spec = str(package.versions) if package.versions else "latest"
    return {
        "package": package.name,
        "platform": platform,
        "python": python,
        "version_spec": version_spec,
        "prereleases": package.prereleases,
        "build_requires": list(package.build_requires),
        "build_env": dict(package.build_env),
        "build_system": [
            f"{manager}:{name}" for manager, names in package.build_system for name in names
        ],
        "test_requires": list(package.test_requires),
        "test_command": list(package.test_command),
        "skip_imports": list(package.skip_imports),
        "toolchain_key": PLATFORMS[platform].toolchain_key,
        "abi": package.abi,
        "cause": cause,
        "rebuild": rebuild,
    }


# buildset id -> its target; a buildset's properties never change, so this can be kept
_targets: dict[int, tuple] = {}


@defer.inlineCallbacks
def _target(master, buildsetid: int):
    if buildsetid not in _targets:
        props = yield master.data.get(("buildsets", buildsetid, "properties"))
        if len(_targets) > 100_000:
            _targets.clear()
        _targets[buildsetid] = tuple((props.get(k) or (None,))[0] for k in TARGET_PROPERTIES)
    return _targets[buildsetid]


@defer.inlineCallbacks
def collapse_same_target(master, builder, req1: dict, req2: dict):
    """Collapse two pending requests only if they would build the same wheel.

    Buildbot's default merges any two requests with compatible source stamps,
    which here would merge requests for different packages into one build. It is
    asked for every pair of pending requests, so the cheap, cached test goes first.
    """
    target1 = yield _target(master, req1["buildsetid"])
    target2 = yield _target(master, req2["buildsetid"])
    if target1 != target2:
        return False
    same_sources = yield BuildRequest.canBeCollapsed(master, req1, req2)
    return bool(same_sources)


if TYPE_CHECKING:  # to the checker, a mixin extends what it is mixed into
    from buildbot.schedulers.forcesched import ForceScheduler as _Scheduler
else:
    _Scheduler = object


class KeepsFarmArgs(_Scheduler):
    """For schedulers built with the farm's builders, registry and served Pythons.

    Buildbot reconfigures a service by calling these with the constructor's
    arguments: the farm's own ones are kept as attributes, not passed on.
    """

    def checkConfig(self, builderNames, builders=None, registry=None, served=None, **kwargs):
        self.builders, self.registry, self.served = builders, registry, served
        return super().checkConfig(builderNames, **kwargs)

    def reconfigService(self, builderNames, builders=None, registry=None, served=None, **kwargs):
        self.builders, self.registry, self.served = builders, registry, served
        return super().reconfigService(builderNames, **kwargs)


class PackageForceScheduler(KeepsFarmArgs, schedulers.ForceScheduler):
    """The force form: a package, a version, platforms and Pythons.

    One buildset is made per (platform, Python), so each build carries its own
    target in its properties.
    """

    def __init__(
        self,
        name: str,
        builders: dict[str, str],
        registry: Registry,
        served: Served | None = None,
        **kwargs,
    ):
        platforms = sorted(builders)
        pythons = sorted({py for p in registry.packages.values() for py in p.pythons})
        kwargs.setdefault(
            "properties",
            [
                util.StringParameter(name="package", label="Package", required=True, size=30),
                util.StringParameter(
                    name="version",
                    label="Version or specifier (empty: the registry's)",
                    default="",
                    size=20,
                ),
                util.ChoiceStringParameter(
                    name="platforms",
                    label="Platforms (none: all the package targets)",
                    choices=platforms,
                    multiple=True,
                    default=[],
                    strict=True,
                ),
                util.ChoiceStringParameter(
                    name="pythons",
                    label="Pythons (none: all the package targets)",
                    choices=pythons,
                    multiple=True,
                    default=[],
                    strict=True,
                ),
                util.BooleanParameter(name="rebuild", label="Rebuild even if built", default=False),
                util.BooleanParameter(
                    name="verify",
                    label="Verify: build again, publish nothing, compare with the published wheel",
                    default=False,
                ),
            ],
        )
        kwargs.setdefault("codebases", [_hidden_codebase()])
        super().__init__(
            name,
            builderNames=list(builders.values()),
            builders=builders,
            registry=registry,
            served=served,
            **kwargs,
        )

    @defer.inlineCallbacks
    def force(self, owner, builderNames=None, builderid=None, **kwargs):
        requested_builders = yield self.computeBuilderNames(builderNames, builderid)
        kwargs = {k: v if isinstance(v, list) else [v] for k, v in kwargs.items()}
        collector = ValidationErrorCollector()
        reason = yield collector.collectValidationErrors(
            self.reason.fullName, self.reason.getFromKwargs, kwargs
        )
        if owner is None or owner == "anonymous":
            owner = yield collector.collectValidationErrors(
                self.username.fullName, self.username.getFromKwargs, kwargs
            )
        props, _, _ = yield self.gatherPropertiesAndChanges(collector, **kwargs)
        collector.maybeRaiseCollectedErrors()

        name = canonicalize_name(props.getProperty("package", "").strip())
        package = self.registry.packages.get(name)
        if package is None:
            raise CollectedValidationError(
                {"package": f"'{name}' is not a package of the registry"}
            )
        platforms = props.getProperty("platforms") or [
            p for p, b in self.builders.items() if b in requested_builders
        ]
        targets = [p for p in platforms if p in package.platforms and p in self.builders]
        pythons = [py for py in props.getProperty("pythons") or package.pythons]
        pairs = [
            (platform, python)
            for platform, python in served_targets(package, self.served or {})
            if platform in targets and python in pythons
        ]
        if not pairs:
            offered = "; ".join(
                f"{p}: {', '.join(sorted(self.served[p])) or 'none'}" for p in sorted(self.served)
            )
            raise CollectedValidationError(
                {
                    "platforms": f"{package.name} targets platforms {', '.join(package.platforms)}"
                    f" and Pythons {', '.join(package.pythons)}: none of those was asked for"
                    f" and offered by a worker (workers offer {offered or 'nothing'})"
                }
            )
        cause = f"forced by {owner}: {reason}"
        made = []
        for platform, python in pairs:
            properties = request_properties(
                package,
                platform,
                python,
                cause,
                version_spec=props.getProperty("version") or None,
                rebuild=bool(props.getProperty("rebuild")),
            )
            properties.update(owner=owner, reason=reason)
            if props.getProperty("verify"):  # steps.VerifyWheel: compare, never publish
                properties.update(verify=True, publish=False, rebuild=True)
            bb_props = Properties()
            bb_props.update(properties, "Force Build Form")
            made.append(
                (
                    yield self.addBuildsetForSourceStampsWithDefaults(
                        reason=cause,
                        sourcestamps=[],
                        properties=bb_props,
                        builderNames=[self.builders[platform]],
                    )
                )
            )
        # Like ForceScheduler: the first buildset and its requests (the UI uses
        # those), then every build request made, for API clients.
        bsid, brids = made[0]
        return bsid, brids, [brid for _, r in made for brid in r.values()]


def _hidden_codebase():
    # Builds take no source checkout: hide the branch/revision fields of the form.
    return util.CodebaseParameter(
        codebase="",
        branch=util.FixedParameter(name="branch", default=""),
        revision=util.FixedParameter(name="revision", default=""),
        repository=util.FixedParameter(name="repository", default=""),
        project=util.FixedParameter(name="project", default=""),
    )


def triggerable_name(platform: str) -> str:
    return f"trigger-{platform}"


def make_schedulers(
    builders: dict[str, str], registry: Registry, rollouts: list[str], served: Served
) -> list:
    """builders: platform name -> the real builder that builds it (none: no workers yet)."""
    result: list = []
    if builders:
        result.append(PackageForceScheduler("force", builders, registry, served))
    result += [
        schedulers.Triggerable(name=triggerable_name(platform), builderNames=[builder])
        for platform, builder in builders.items()
    ]
    result.append(schedulers.Triggerable(name="orchestrate", builderNames=["orchestrate"]))
    if rollouts:
        result.append(
            schedulers.ForceScheduler(
                name="rollout",
                buttonName="Start a rollout",
                builderNames=["orchestrate"],
                codebases=[_hidden_codebase()],
                properties=[
                    util.ChoiceStringParameter(
                        name="rollout",
                        label="Rollout (rollouts.yaml)",
                        choices=rollouts,
                        default=rollouts[0],
                    ),
                    util.FixedParameter(name="campaign_action", default="rollout"),
                ],
            )
        )
    return result
