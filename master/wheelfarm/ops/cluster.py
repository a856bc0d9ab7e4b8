"""Several masters for one farm: a shared PostgreSQL database and a WAMP message queue.

Every master of a cluster loads the same files and settings, except its basedir (which
names it), its ports and whether it serves the UI (`www_port` 0: build-only). The
database holds the queue of build requests; the WAMP router (crossbar, run on its own)
carries Buildbot's messages between masters, so a request made on one master is seen at
once by the masters whose workers can build it. See README, "Several masters".
"""

from __future__ import annotations

import json
from pathlib import Path

from buildbot import config
from buildbot.util import epoch2datetime
from buildbot.util.service import BuildbotService
from twisted.internet import defer, task
from twisted.python import log

from ..settings import Settings

WATCH = "wheelfarm-master-watch"


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
    if settings.multi_master and settings.master_timeout:
        return [MasterWatch(name=WATCH, timeout=settings.master_timeout)]
    return []


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
            yield self.master.db.buildrequests._unclaim_buildrequests_for_master(brids, dead)
            yield self.master.data.rtypes.buildrequest.generateEvent(brids, "unclaimed")


def write_router_config(cbdir: Path, port: int, realm: str = "buildbot") -> Path:
    """A crossbar node config: one router with `realm`, a WebSocket transport at /ws.

    The masters connect without authentication, so bind the router to an interface
    only the masters reach (here: loopback).
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
                        "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                        "auth": {"anonymous": {"type": "static", "role": "anonymous"}},
                        "url": f"ws://127.0.0.1:{port}/ws",
                    }
                ],
            }
        ],
    }
    path = cbdir / "config.json"
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path
