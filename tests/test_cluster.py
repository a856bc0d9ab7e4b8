"""A master's part in a cluster, from its settings (no running master)."""

from __future__ import annotations

from wheelfarm.ops.cluster import cluster_config
from wheelfarm.settings import Settings


def test_a_lone_master_adds_nothing(tmp_path):
    assert cluster_config(Settings(basedir=tmp_path)) == {}


def test_a_cluster_master_from_the_environment(tmp_path):
    env = {
        "WHEELFARM_MULTI_MASTER": "true",
        "WHEELFARM_MQ_ROUTER_URL": "ws://10.0.0.5:8080/ws",
        "WHEELFARM_WWW_PORT": "0",
    }
    settings = Settings.load(tmp_path, environ=env)
    assert settings.multi_master is True and settings.www_port == 0
    assert cluster_config(settings) == {
        "multiMaster": True,
        "mq": {"type": "wamp", "router_url": "ws://10.0.0.5:8080/ws", "realm": "buildbot"},
    }
    off = Settings.load(tmp_path, environ={"WHEELFARM_MULTI_MASTER": "false"})
    assert off.multi_master is False


def test_a_cluster_master_watches_the_others_only_when_asked(tmp_path):
    from wheelfarm.ops.cluster import MasterWatch, RouterLink, cluster_services

    assert cluster_services(Settings(basedir=tmp_path, multi_master=True)) == []
    assert cluster_services(Settings(basedir=tmp_path, master_timeout=60)) == []
    (watch,) = cluster_services(Settings(basedir=tmp_path, multi_master=True, master_timeout=60))
    assert isinstance(watch, MasterWatch)
    router = "ws://10.0.0.5:8081/ws"
    link, watch = cluster_services(
        Settings(basedir=tmp_path, multi_master=True, master_timeout=60, mq_router_url=router)
    )
    assert isinstance(link, RouterLink) and isinstance(watch, MasterWatch)


def test_router_config_command(tmp_path, capsys):
    import json

    from wheelfarm.cli.main import main

    assert (
        main(["router-config", str(tmp_path / "cb"), "--port", "8123", "--interface", "10.1.2.3"])
        == 0
    )
    assert "mq_router_url: ws://10.1.2.3:8123/ws" in capsys.readouterr().out
    config = json.loads((tmp_path / "cb" / "config.json").read_text())
    (transport,) = config["workers"][0]["transports"]
    assert transport["endpoint"] == {"type": "tcp", "port": 8123, "interface": "10.1.2.3"}
    assert config["workers"][0]["realms"][0]["name"] == "buildbot"
    assert main(["router-config", str(tmp_path / "x"), "--interface", "router.example"]) == 2
    assert "is not an IP address" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
