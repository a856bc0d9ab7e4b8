"""The master's side of the upload: a write error is kept for the step, never raised
at the worker, and what was written is removed."""

from __future__ import annotations

import io
import multiprocessing
import tarfile
from pathlib import Path

from wheelfarm.pipeline.steps import os_error
from wheelfarm.pipeline.transfer import KeepingDirectoryWriter, free_bytes


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

    from wheelfarm.pipeline import transfer as steps

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


def worker_archive(folder: Path) -> bytes:
    """A folder as the worker sends it (buildbot-worker's uploadDirectory: the folder
    itself is the archive's first member, named '')."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, "")
    return buffer.getvalue()


def _unpack_at(destroot: str, data: bytes, barrier, out) -> None:
    writer = KeepingDirectoryWriter(destroot, None, None, 0o600)
    writer.remote_write(data)
    barrier.wait()
    writer.remote_unpack()
    out.put(writer.error)


def test_first_uploads_of_two_masters_to_a_fresh_index_at_once(tmp_path):
    # Each build unpacks into its own `.incoming/BUILDID`; the shared `.incoming` was made
    # by the first upload, and two masters' first uploads collided ("File exists").
    fork = multiprocessing.get_context("fork")
    (tmp_path / "built").mkdir()
    (tmp_path / "built" / "a.whl").write_bytes(b"wheel")
    data = worker_archive(tmp_path / "built")
    errors = []
    for r in range(50):
        barrier, out = fork.Barrier(2), fork.Queue()
        jobs = [
            fork.Process(
                target=_unpack_at,
                args=(str(tmp_path / f"i{r}" / ".incoming" / str(b)), data, barrier, out),
            )
            for b in (1, 2)
        ]
        for job in jobs:
            job.start()
        errors += [out.get(timeout=30) for _ in jobs]
        for job in jobs:
            job.join(30)
    assert [e for e in errors if e is not None] == []
    for r in range(50):
        for b in (1, 2):
            assert (tmp_path / f"i{r}" / ".incoming" / str(b) / "a.whl").read_bytes() == b"wheel"
