"""Who may press the buttons: the `auth` and `authz` of Buildbot's www.

Anyone may read everything. Logged-in users get roles:

- "admins": a user named in the `admins` setting, or a member of a GitHub team
  (`org/team`) named there: may do anything (rollouts, workers, any package);
- a package's `maintainers` (registry, GitHub handles) may force, rebuild and
  stop builds of that package only.

Locally the users file (`user:password` lines, read at each login) logs people
in; with `github_client_id` set, GitHub does (secret `github_client_secret`).
"""

from __future__ import annotations

from pathlib import Path

from buildbot.plugins import util
from buildbot.www.auth import NoAuth
from buildbot.www.authz.endpointmatchers import EndpointMatcherBase, Match
from buildbot.www.authz.roles import RolesFromBase, RolesFromOwner
from packaging.utils import canonicalize_name
from twisted.internet import defer
from twisted.python import log

from ..registry.packages import Registry
from ..settings import Settings
from .guard import ThrottledHTPasswdAuth

ADMINS = "admins"
MAINTAINER = "maintainer"
PACKAGE_FORCE_SCHEDULER = "force"
USERS_FILE = "web-users"  # in the secrets dir, unless the settings name another file


class PackageMatch(Match):
    """A match whose "owner" is the package acted on, for MaintainerRoles."""

    def __init__(self, master, package: str | None) -> None:
        super().__init__(master)
        self.package = package

    def getOwner(self):
        return defer.succeed(f"package:{canonicalize_name(self.package)}" if self.package else None)


class AdminRoles(RolesFromBase):
    """ "admins" for the users and GitHub teams (`org/team`) the settings name."""

    def __init__(self, admins: list[str]) -> None:
        super().__init__()
        self.admins = set(admins)

    def getRolesFromUser(self, userDetails: dict) -> list[str]:
        names = {userDetails.get("username")} | set(userDetails.get("groups") or ())
        return [ADMINS] if names & self.admins else []


class MaintainerRoles(RolesFromOwner):
    """ "maintainer" when the user maintains the package a PackageMatch names."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(MAINTAINER)
        self.registry = registry

    def getRolesFromUser(self, userDetails: dict, owner: str | None = None) -> list[str]:
        user = userDetails.get("username")
        if not user or not owner or not owner.startswith("package:"):
            return []
        package = self.registry.packages.get(owner[len("package:") :])
        maintainers = {m.lower() for m in package.maintainers} if package else set()
        return [MAINTAINER] if user.lower() in maintainers else []  # GitHub handles ignore case


class PackageForceMatcher(EndpointMatcherBase):
    """The package force form: the package comes from the posted `package` field."""

    def match_ForceSchedulerEndpoint_force(self, epobject, epdict, options):
        if epdict.get("schedulername") != PACKAGE_FORCE_SCHEDULER:
            return defer.succeed(None)
        package = options.get("package")
        if isinstance(package, list):
            package = package[0] if package else None
        return defer.succeed(PackageMatch(self.master, str(package or "").strip() or None))


class PackageBuildMatcher(EndpointMatcherBase):
    """Stop or rebuild a wheel build, or cancel its request: the `package` property."""

    @defer.inlineCallbacks
    def _build(self, epobject, epdict, options):
        build = yield epobject.get({}, epdict)
        if build is None:
            return None
        props = yield self.master.data.get(("builds", build["buildid"], "properties"))
        return self._match(props)

    @defer.inlineCallbacks
    def match_BuildRequestEndpoint_stop(self, epobject, epdict, options):
        request = yield epobject.get({}, epdict)
        if request is None:
            return None
        props = yield self.master.data.get(("buildsets", request["buildsetid"], "properties"))
        return self._match(props)

    match_BuildEndpoint_stop = _build
    match_BuildEndpoint_rebuild = _build

    def _match(self, props: dict | None) -> Match | None:
        package = (props or {}).get("package", [None])[0]
        # not a wheel build (e.g. a campaign): left to the admins-only rule
        return PackageMatch(self.master, package) if package else None


def www_access(settings: Settings, registry: Registry) -> dict:
    """The `auth` and `authz` entries of c['www'].

    Without a way to log in nobody may act, but everyone may still read.
    """
    authz = util.Authz(
        roleMatchers=[AdminRoles(settings.admins), MaintainerRoles(registry)],
        allowRules=[
            # admins pass every rule; the others go on to the rules below
            util.AnyControlEndpointMatcher(role=ADMINS, defaultDeny=False),
            PackageForceMatcher(role=MAINTAINER),
            PackageBuildMatcher(role=MAINTAINER),
            # rollouts, workers, schedulers, anything else that acts
            util.AnyControlEndpointMatcher(role=ADMINS),
        ],
    )
    return {"auth": _auth(settings), "authz": authz}


def users_file(settings: Settings) -> Path | None:
    if settings.users_file:
        return Path(settings.users_file)
    if settings.secrets_dir:
        return Path(settings.secrets_dir) / USERS_FILE
    return None


def _auth(settings: Settings):
    if settings.github_client_id:
        return util.GitHubAuth(
            settings.github_client_id,
            util.Secret("github_client_secret"),
            getTeamsMembership=True,
        )
    path = users_file(settings)
    if path is not None and path.is_file():
        return ThrottledHTPasswdAuth(str(path))  # 429 for password guessers
    log.msg(f"wheelfarm: WARNING: no users file {path} and no GitHub login: nobody can log in")
    return NoAuth()
