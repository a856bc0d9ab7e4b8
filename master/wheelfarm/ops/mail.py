"""Mail from the farm: a worker's owner hears when it has been gone too long.

Buildbot's own parts do it: each worker lists who to tell (`notify_on_missing`) and
after how long (`missing_timeout`); a MailNotifier with the missing-worker generator
sends the mail through the SMTP relay named in the settings. Without a relay, no mail.
"""

from __future__ import annotations

from buildbot.plugins import reporters

from ..registry.workers import EMAIL, WorkerEntry
from ..settings import Settings


def owner_address(owner: str) -> str | None:
    """`Alice Example <alice@example.org>` -> `alice@example.org`."""
    found = EMAIL.search(owner)
    return found.group(0) if found else None


def missing_worker_options(entry: WorkerEntry, settings: Settings) -> dict:
    """The Worker arguments that make a missing worker reported."""
    if not settings.smtp_relay:
        return {}
    notify = [a for a in (owner_address(entry.owner), settings.missing_mail_to) if a]
    return {"notify_on_missing": notify, "missing_timeout": settings.missing_timeout}


def mail_services(settings: Settings) -> list:
    if not settings.smtp_relay:
        return []
    return [
        reporters.MailNotifier(
            fromaddr=settings.mail_from,
            relayhost=settings.smtp_relay,
            smtpPort=settings.smtp_port,
            generators=[reporters.WorkerMissingGenerator(workers="all")],
        )
    ]
