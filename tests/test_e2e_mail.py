"""A worker that goes missing is reported to its owner by mail, through a real SMTP relay."""

from __future__ import annotations

import os
import signal
import time

import pytest

from conftest import write_registry
from smtpsink import SmtpSink

pytestmark = pytest.mark.e2e

REGISTRY = '  - name: six\n    platforms: [linux-x86_64]\n    python: ["3.11"]\n'
OWNER = "wheelfarm@localhost.localdomain"  # the owner LocalFarm writes for its workers


@pytest.fixture
def sink():
    smtp = SmtpSink()
    port = smtp.start()
    yield smtp, port
    smtp.stop()


def test_missing_worker_mails_its_owner_and_the_operators(
    farm_factory, tmp_path, sink, monkeypatch
):
    smtp, port = sink
    # the master reads WHEELFARM_* from its environment, which it inherits from here
    monkeypatch.setenv("WHEELFARM_SMTP_RELAY", "127.0.0.1")
    monkeypatch.setenv("WHEELFARM_SMTP_PORT", str(port))
    monkeypatch.setenv("WHEELFARM_MAIL_FROM", "farm@example.org")
    monkeypatch.setenv("WHEELFARM_MISSING_TIMEOUT", "5")
    monkeypatch.setenv("WHEELFARM_MISSING_MAIL_TO", "ops@example.org")
    farm = farm_factory(
        write_registry(tmp_path / "packages.yaml", REGISTRY), worker_names=["gone", "stays"]
    )
    assert [m for m in smtp.mails if "gone" in m.message["Subject"]] == []

    pidfile = farm.worker_dir("gone") / "twistd.pid"
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not smtp.mails:
        time.sleep(0.5)

    (mail,) = smtp.mails  # only the worker that went, once
    assert mail.sender == "farm@example.org"
    assert sorted(mail.recipients) == sorted([OWNER, "ops@example.org"])
    assert "gone" in mail.message["Subject"]
    assert "gone" in mail.message.get_payload(decode=True).decode()
