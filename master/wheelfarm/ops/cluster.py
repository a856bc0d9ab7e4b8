"""Several masters for one farm: a shared PostgreSQL database and a WAMP message queue.

Every master of a cluster loads the same files and settings, except its basedir (which
names it), its ports and whether it serves the UI (`www_port` 0: build-only). The
database holds the queue of build requests; the WAMP router (crossbar, run on its own)
carries Buildbot's messages between masters, so a request made on one master is seen at
once by the masters whose workers can build it. See docs/operators/several-masters.md.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from buildbot import config
from buildbot.util import epoch2datetime
from buildbot.util.service import BuildbotService
from twisted.internet import defer, task
from twisted.internet.interfaces import IDelayedCall
from twisted.python import log

from ..buildbot_internals import unclaim_requests
from ..settings import Settings

WATCH = "wheelfarm-master-watch"
ROUTER_LINK = "wheelfarm-router-link"
ROUTER_WAIT = 20  # seconds a starting master waits to join the router before it exits
EXIT_ROUTER_LOST = 75  # EX_TEMPFAIL: the service manager starts the master again


def cluster_config(settings: Settings) -> dict:
    """The BuildmasterConfig keys for a master of a cluster (none for a lone master)."""
    if not settings.multi_master:
        return {}
    config: dict = {"multiMaster": True}
    if settings.mq_router_url:
        config["mq"] = {
            "type": "wamp",
            "router_url": settings.mq_router_url,
            "realm": settings.mq_realm,
        }
    return config


def cluster_services(settings: Settings) -> list[BuildbotService]:
    services: list[BuildbotService] = []
    if settings.multi_master and settings.mq_router_url:
        services.append(RouterLink(name=ROUTER_LINK, router_url=settings.mq_router_url))
    if settings.multi_master and settings.master_timeout:
        services.append(MasterWatch(name=WATCH, timeout=settings.master_timeout))
    return services


class RouterLink(BuildbotService):
    """Without the message router a master exits, at once, so that its service manager
    starts it again; it never lingers as a process that cannot work.

    Buildbot's WAMP connector (buildbot/wamp/connector.py) connects once and never
    again: when the router goes, it stops the master (its comment: recovering would mean
    re-subscribing every consumer and queueing messages, "not handled"). That stop
    cancels the running builds (Buildbot does not run CANCELLED builds again), then waits
    for ever for the orchestrating build, whose sub-builds' results were to come as
    messages; the process stays, ports closed, ignoring SIGTERM. And a master started
    while the router is away waits for ever for its first connection.

    So this service takes over the session's leave: the master exits with status
    EXIT_ROUTER_LOST, without Buildbot's shutdown, as a crash would; and a master that
    has not joined the router ROUTER_WAIT seconds after its start exits the same way.
    Its next start (the service manager's `Restart=always`, once the router is back)
    is Buildbot's own recovery from a crash: the master's unfinished builds end RETRY
    and their requests are queued again for any master; a build that had published its
    wheel ends skipped there (the index has it); a campaign resumes from its record.
    """

    router_url = ""
    _waiting: IDelayedCall | None = None

    def checkConfig(self, router_url: str = "") -> None:
        if not router_url:
            config.error("RouterLink: router_url is required")

    def reconfigService(self, router_url: str = ""):
        self.router_url = router_url
        return super().reconfigService()

    @defer.inlineCallbacks
    def startService(self):
        yield super().startService()
        wamp = self.master.wamp
        if wamp.service is not None:
            self._joined(wamp.service)
            return
        self._waiting = self.master.reactor.callLater(ROUTER_WAIT, self._never_joined)
        wamp.getService().addCallback(self._joined)

    def stopService(self):
        if self._waiting is not None and self._waiting.active():
            self._waiting.cancel()
        return super().stopService()

    def _never_joined(self) -> None:
        self.exit(f"could not join the message router at {self.router_url} in {ROUTER_WAIT} s")

    def _joined(self, session) -> None:
        if self._waiting is not None and self._waiting.active():
            self._waiting.cancel()
        buildbots_own = session.onLeave

        def on_leave(details):
            if session.leaving:  # the master is stopping: Buildbot's own leave
                return buildbots_own(details)
            self.exit(f"lost the message router at {self.router_url} ({details.reason})")

        session.onLeave = on_leave
        return session

    def exit(self, why: str) -> None:
        log.msg(
            f"wheelfarm: {why}: exiting now with status {EXIT_ROUTER_LOST}, without "
            "Buildbot's shutdown (it would cancel the running builds and wait for ever); "
            "started again, this master's unfinished builds end RETRY and run again"
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_ROUTER_LOST)


class MasterWatch(BuildbotService):
    """Declares a silent master dead after `timeout` seconds instead of Buildbot's ten
    minutes, so that its builds are re-queued and its campaigns resumed sooner.

    Buildbot's own heartbeat marks a master alive every 60 s and a master silent for 10
    minutes inactive; then its housekeeping ends the dead master's builds RETRY (and, see
    `requeue`, this service unclaims their requests), which other masters build again (the
    orchestrating one resumes its campaigns: cascade/recovery.py). This service beats
    every timeout/4 and does the same with its own timeout. A master whose reactor stalls
    longer than that (a huge config loading) is taken for dead and its running builds
    run again: keep the timeout well above the longest stall. Only the live master with
    the lowest id acts, so a death is handled once.
    """

    timeout = 0
    _loop: task.LoopingCall | None = None

    def checkConfig(self, timeout: int = 0) -> None:
        if timeout < 4:
            config.error(f"master_timeout: {timeout} s is too short (at least 4)")

    def reconfigService(self, timeout: int = 0):
        self.timeout = timeout
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = task.LoopingCall(self._beat_logged)
        self._loop.clock = self.master.reactor
        if self.running:
            self._loop.start(self.timeout / 4, now=True)
        return super().reconfigService()

    @defer.inlineCallbacks
    def startService(self):
        yield super().startService()  # configures first: the loop exists from here
        if self._loop is not None and not self._loop.running:
            self._loop.start(self.timeout / 4, now=True)

    def stopService(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return super().stopService()

    def _beat_logged(self):
        return self.beat().addErrback(log.err, "wheelfarm: master watch")

    @defer.inlineCallbacks
    def beat(self):
        master = self.master
        if master.masterid is None:  # not registered yet
            return
        yield master.data.updates.masterActive(name=master.name, masterid=master.masterid)
        too_old = epoch2datetime(master.reactor.seconds() - self.timeout)
        masters = yield master.db.masters.getMasters()
        alive = [m for m in masters if m.active and m.last_active >= too_old]
        if not alive or min(m.id for m in alive) != master.masterid:
            return
        for m in masters:
            if m.active and m.last_active < too_old:
                log.msg(f"wheelfarm: master {m.name} silent for {self.timeout} s: inactive")
                yield master.data.updates.masterStopped(name=m.name, masterid=m.id)
                yield self.requeue(m.id)

    @defer.inlineCallbacks
    def requeue(self, dead: int):
        """Unclaim the dead master's requests, and say so to every master's queue.

        Buildbot 4.3's housekeeping unclaims only the claims of the master doing it (right
        for a master that restarts with its own id): a dead master's requests would stay
        claimed by it for ever, and its builds, ended RETRY, never run again.
        """
        requests = yield self.master.db.buildrequests.getBuildRequests(complete=False, claimed=dead)
        brids = [r.buildrequestid for r in requests]
        if brids:
            log.msg(f"wheelfarm: re-queueing requests {brids} of the dead master")
            yield unclaim_requests(self.master.db, brids, dead)
            yield self.master.data.rtypes.buildrequest.generateEvent(brids, "unclaimed")


def write_router_config(
    cbdir: Path, port: int, realm: str = "buildbot", interface: str = "127.0.0.1"
) -> Path:
    """A crossbar node config: one router with `realm`, a WebSocket transport at /ws on
    `interface`:`port`; `crossbar start --cbdir CBDIR` runs it.

    The masters connect without authentication, so bind the router to an interface
    only the masters reach (loopback when they share the host, else a private network).
    """
    cbdir.mkdir(parents=True, exist_ok=True)
    config = {
        "version": 2,
        "controller": {},
        "workers": [
            {
                "type": "router",
                "realms": [
                    {
                        "name": realm,
                        "roles": [
                            {
                                "name": "anonymous",
                                "permissions": [
                                    {
                                        "uri": "",
                                        "match": "prefix",
                                        "allow": {
                                            "call": True,
                                            "register": True,
                                            "publish": True,
                                            "subscribe": True,
                                        },
                                        "disclose": {"caller": False, "publisher": False},
                                        "cache": True,
                                    }
                                ],
                            }
                        ],
                    }
                ],
                "transports": [
                    {
                        "type": "websocket",
                        "endpoint": {"type": "tcp", "port": port, "interface": interface},
                        "auth": {"anonymous": {"type": "static", "role": "anonymous"}},
                        "url": f"ws://{interface}:{port}/ws",
                    }
                ],
            }
        ],
    }
    path = cbdir / "config.json"
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path
