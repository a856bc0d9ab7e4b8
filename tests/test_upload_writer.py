"""The master's side of the upload: a write error is kept for the step, never raised
at the worker, and what was written is removed."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from wheelfarm.build.steps import os_error
from wheelfarm.build.transfer import KeepingDirectoryWriter, free_bytes


def archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_good_upload_unpacks(tmp_path):
    writer = KeepingDirectoryWriter(str(tmp_path / "in" / "7"), None, None, 0o600)
    writer.remote_write(archive({"a.whl": b"wheel"}))
    writer.remote_unpack()
    assert writer.error is None
    assert (tmp_path / "in" / "7" / "a.whl").read_bytes() == b"wheel"


def test_an_unwritable_destination_is_kept_as_a_reason(tmp_path):
    (tmp_path / "in").write_text("not a folder")  # so nothing can be made below it
    writer = KeepingDirectoryWriter(str(tmp_path / "in" / "7"), None, None, 0o600)
    writer.remote_write(archive({"a.whl": b"wheel"}))
    writer.remote_unpack()  # does not raise: the worker finishes its command
    assert writer.error is not None and "\n" not in writer.error
    writer.remote_write(b"more")  # ignored once failed
    assert not Path(writer.tarname).exists()
    assert (tmp_path / "in").read_text() == "not a folder"


def test_helpers():
    assert os_error(OSError(28, "No space left on device", "/i/x")) == (
        "No space left on device: /i/x"
    )
    assert free_bytes(Path("/nonexistent/deeper")) > 0  # the nearest existing parent's


def test_a_transfer_that_hangs_is_interrupted(monkeypatch):
    from twisted.internet import defer, task

    from wheelfarm.build import transfer as steps

    clock = task.Clock()
    monkeypatch.setattr(steps, "reactor", clock)

    class HangingCommand:
        def __init__(self) -> None:
            self.done, self.interrupted = defer.Deferred(), None

        def interrupt(self, why):
            self.interrupted = why
            self.done.callback(2)  # the worker ends the command as FAILURE

    class Transfer:
        def runTransferCommand(self, cmd, writer=None):
            self.cmd = cmd
            return cmd.done

    class Timed(steps.TransferTimeout, Transfer):
        timeout = 30

    step, cmd = Timed(), HangingCommand()
    result = step.runTransferCommand(cmd)
    clock.advance(29)
    assert not result.called and cmd.interrupted is None
    clock.advance(1)
    assert cmd.interrupted == "timed out after 30 s" and step.timed_out
    assert result.result == 2
    assert clock.getDelayedCalls() == []
