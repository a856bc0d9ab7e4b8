"""Who hears of a missing worker, as configured from the settings (no running master)."""

from __future__ import annotations

from pathlib import Path

from buildbot.reporters.mail import MailNotifier

from conftest import write_registry
from wheelfarm.config import build_config
from wheelfarm.ops.mail import owner_address
from wheelfarm.settings import Settings

WORKERS = """\
schema: 1
workers:
  - name: alice-linux
    owner: Alice Example <alice@example.org>
    platform: linux-x86_64
    python: ["3.11"]
"""


def config_for(tmp_path: Path, **settings) -> dict:
    workers = tmp_path / "workers.yaml"
    workers.write_text(WORKERS, encoding="utf-8")
    registry = write_registry(
        tmp_path / "packages.yaml", "  - name: six\n    platforms: [linux-x86_64]\n"
    )
    return build_config(
        tmp_path, Settings(basedir=tmp_path, registry=registry, workers_files=[workers], **settings)
    )


def test_owner_address_is_the_email_in_the_owner_field():
    assert owner_address("Alice Example <alice@example.org>") == "alice@example.org"
    assert owner_address("bob@example.org") == "bob@example.org"


def test_with_a_relay_owners_and_operators_are_told_after_the_timeout(tmp_path):
    config = config_for(
        tmp_path, smtp_relay="mail.example.org", missing_timeout=600, missing_mail_to="ops@x.org"
    )
    (alice,) = [w for w in config["workers"] if w.name == "alice-linux"]
    assert alice.notify_on_missing == ["alice@example.org", "ops@x.org"]
    assert alice.missing_timeout == 600
    (notifier,) = [s for s in config["services"] if isinstance(s, MailNotifier)]
    assert notifier._config_kwargs["relayhost"] == "mail.example.org"


def test_without_a_relay_no_mail(tmp_path):
    config = config_for(tmp_path)
    assert not any(isinstance(s, MailNotifier) for s in config["services"])
    (alice,) = [w for w in config["workers"] if w.name == "alice-linux"]
    assert alice.notify_on_missing == []
