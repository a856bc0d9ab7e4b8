"""Waiting requests offered to the workers again when a downtime window may have closed."""

from __future__ import annotations

from buildbot.util.service import BuildbotService
from twisted.internet import task


class DowntimeWatch(BuildbotService):
    """Offers waiting requests to the workers again each minute.

    Buildbot looks for a worker only when something happens (a request, a worker
    connecting, a build ending); a downtime window closing is not such an event.
    """

    name = "wheelfarm-downtime-watch"
    interval = 60.0

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._loop = task.LoopingCall(self._poke)

    def startService(self):
        self._loop.start(self.interval, now=False)
        return super().startService()

    def stopService(self):
        if self._loop.running:
            self._loop.stop()
        return super().stopService()

    def _poke(self) -> None:
        self.master.botmaster.maybeStartBuildsForAllBuilders()
