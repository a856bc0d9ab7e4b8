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

from ..settings import Settings


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
