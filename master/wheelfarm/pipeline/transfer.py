"""Moving wheels from the worker to the master: uploads that time out, fail cleanly on a
full disk and keep nothing partial, the clean-up of a build's incoming folder, and of
the folders builds a killed master never finished left behind.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buildbot import config
from buildbot.plugins import steps
from buildbot.process import buildstep, remotetransfer
from buildbot.process.results import FAILURE, SUCCESS, WARNINGS
from buildbot.steps.transfer import makeStatusRemoteCommand
from buildbot.util import service
from twisted.internet import defer, reactor, threads
from twisted.python import log

from ..index.store import Index
from .steps import MASTER_STEP_TIMEOUT, UPLOAD_TIMEOUT, OneLineReason, incoming_dir, os_error


def free_bytes(path: Path) -> int:
    """Free space for unprivileged writers on the filesystem holding `path`."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class KeepingDirectoryWriter(remotetransfer.DirectoryWriter):
    """Buildbot's writer for a directory upload, except that a failure to write
    (ENOSPC, EROFS, ...) is kept for the step to report instead of being raised at
    the worker, which then never finishes the upload; what was written is removed."""

    error: str | None = None
    fp: Any  # Buildbot's open file, None once closed

    def _failed(self, e: Exception) -> None:
        self.error = os_error(e) if isinstance(e, OSError) else f"bad archive: {e}"
        if self.fp is not None:
            self.fp.close()
            self.fp = None
        self.purge()

    def remote_write(self, data):
        if self.error is None:
            try:
                super().remote_write(data)
            except OSError as e:
                self._failed(e)

    def remote_utime(self, accessed_modified):
        if self.error is None:
            try:
                super().remote_utime(accessed_modified)
            except OSError as e:
                self._failed(e)

    def remote_close(self):
        if self.error is None:
            try:
                super().remote_close()
            except OSError as e:
                self._failed(e)

    def remote_unpack(self):
        if self.error is None:
            try:
                # The folder every build's upload folder is in, first: tarfile makes it
                # without exist_ok, and two masters' first uploads to an index collided.
                os.makedirs(os.path.dirname(os.path.abspath(self.destroot)), exist_ok=True)
                super().remote_unpack()
            except (OSError, tarfile.TarError) as e:
                self._failed(e)


if TYPE_CHECKING:  # to the checker, a mixin extends what it is mixed into
    from buildbot.steps.transfer import FileDownload as _Transfer
else:
    _Transfer = object


class TransferTimeout(_Transfer):
    """A file transfer step interrupted after `timeout` seconds (`timed_out` says so)."""

    timeout: int = UPLOAD_TIMEOUT
    timed_out = False

    @defer.inlineCallbacks
    def runTransferCommand(self, cmd, writer=None):
        timer = reactor.callLater(self.timeout, self._time_out)
        try:
            return (yield super().runTransferCommand(cmd, writer))
        finally:
            if timer.active():
                timer.cancel()

    def _time_out(self) -> None:
        self.timed_out = True
        if self.cmd is not None:
            self.cmd.interrupt(f"timed out after {self.timeout} s")


class TimedFileDownload(TransferTimeout, steps.FileDownload):
    """Buildbot's FileDownload, with a time limit."""


class FarmUpload(TransferTimeout, OneLineReason, steps.DirectoryUpload):
    """The worker's repaired wheel to the build's folder in the index's `.incoming/`.

    Refused before it starts when the index's filesystem has less than
    `min_free_bytes` free; a write error fails it with one line and leaves nothing;
    after `timeout` seconds it is interrupted.
    """

    def __init__(self, index: Index, min_free_bytes: int = 0, timeout: int = UPLOAD_TIMEOUT, **kw):
        kw.setdefault("name", "upload")
        kw.setdefault("haltOnFailure", True)
        super().__init__(**kw)
        self.index, self.min_free_bytes, self.timeout = index, min_free_bytes, timeout

    @defer.inlineCallbacks
    def run(self):
        free = yield threads.deferToThread(free_bytes, self.index.root)
        if free < self.min_free_bytes:
            self.reason = (
                f"upload refused: the index has {megabytes(free)} free, "
                f"under min_free_bytes ({megabytes(self.min_free_bytes)})"
            )
            return FAILURE
        self.checkWorkerHasCommand("uploadDirectory")
        self.stdio_log = yield self.addLog("stdio")
        writer = KeepingDirectoryWriter(self.masterdest, self.maxsize, self.compress, 0o600)
        args = {
            "workdir": self.workdir,
            "writer": writer,
            "maxsize": self.maxsize,
            "blocksize": self.blocksize,
            "compress": self.compress,
            "workersrc": self.workersrc,
        }
        cmd = makeStatusRemoteCommand(self, "uploadDirectory", args)
        result = yield self.runTransferCommand(cmd, writer)
        if writer.error is not None:
            writer.purge()
            self.reason = f"upload failed: cannot write to the index: {writer.error}"
            return FAILURE
        if self.timed_out:
            self.reason = f"upload failed: not finished after {self.timeout} s"
            return FAILURE
        if result >= FAILURE and self.maxsize is not None and writer.remaining == 0:
            writer.purge()
            self.reason = f"upload refused: the wheel is over the limit ({megabytes(self.maxsize)})"
        elif result >= FAILURE:
            self.reason = "upload failed: the worker could not send the wheel (see its log)"
        return result


class RemoveIncoming(buildstep.BuildStep):
    """Whatever happened, the build's upload folder goes: half-made files never stay."""

    name = "cleanup"
    alwaysRun = True
    hideStepIf = True

    def __init__(self, index: Index, **kwargs):
        super().__init__(**kwargs)
        self.index = index

    @defer.inlineCallbacks
    def run(self):
        folder = incoming_dir(self.build.getProperties(), self.index)
        removing = threads.deferToThread(shutil.rmtree, folder, True)
        try:
            yield removing.addTimeout(MASTER_STEP_TIMEOUT, reactor)
        except defer.TimeoutError:  # a hung filesystem: the sweeper at start removes it
            return WARNINGS
        return SUCCESS


class IncomingSweeper(service.BuildbotService):
    """Removes upload folders no running build owns.

    A build's upload lands in `.incoming/<buildid>/` and its cleanup step removes it;
    a master killed meanwhile never runs that step. Publishing reads only its own
    build's folder, so such leftovers never reach the index: this only frees the disk.
    Runs at start and at each reconfig.
    """

    def checkConfig(self, index_dir: str = "") -> None:
        if not index_dir:
            config.error("IncomingSweeper: index_dir is required")

    @defer.inlineCallbacks
    def reconfigService(self, index_dir: str = ""):
        incoming = Path(index_dir) / ".incoming"
        folders = [p for p in incoming.iterdir() if p.is_dir()] if incoming.is_dir() else []
        for folder in folders:
            build = None
            if folder.name.isdigit():
                build = yield self.master.db.builds.getBuild(int(folder.name))
            if build is None or build.complete_at is not None:
                log.msg(f"wheelfarm: removing {folder}: its build is not running")
                yield threads.deferToThread(shutil.rmtree, folder, True)
