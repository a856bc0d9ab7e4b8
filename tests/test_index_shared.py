"""Several publishers on one index (the masters of a cluster sharing it): processes that
add different wheels and the same wheel at once, and one killed in the middle."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from wheelfarm.index import store
from wheelfarm.index.store import Index, IndexConflict
from wheelmaker import make_wheel

FORK = multiprocessing.get_context("fork")


def publish(root: str, wheels: list[str], out) -> None:
    index = Index(root)
    results = []
    for path in wheels:
        try:
            results.append((Path(path).name, index.add(Path(path), {"by": os.getpid()}).status))
        except IndexConflict:
            results.append((Path(path).name, "conflict"))
    out.put(results)


def test_processes_publish_different_and_same_wheels_at_once(tmp_path):
    root = tmp_path / "index"
    shared = make_wheel(tmp_path / "shared", "common", "1.0")
    other = make_wheel(tmp_path / "other", "common", "1.0", payload="other bytes")
    jobs, out = [], FORK.Queue()
    for p in range(6):
        own = [make_wheel(tmp_path / f"p{p}", f"pkg-{p}-{i}", "1.0") for i in range(5)]
        wheels = [str(w) for w in own] + [str(other if p == 5 else shared)]
        jobs.append(FORK.Process(target=publish, args=(str(root), wheels, out)))
    for job in jobs:
        job.start()
    results = [r for _ in jobs for r in out.get(timeout=60)]
    for job in jobs:
        job.join(timeout=60)
    common = sorted(status for name, status in results if name.startswith("common"))
    # the first of the same bytes adds it, the rest find it; other bytes are refused
    assert common in (
        ["added", "conflict", "exists", "exists", "exists", "exists"],  # the shared bytes won
        ["added", "conflict", "conflict", "conflict", "conflict", "conflict"],  # the other
    )
    assert sorted(s for n, s in results if not n.startswith("common")) == ["added"] * 30
    index = Index(root)
    assert len(index.projects()) == 31
    for project in index.projects():
        (record,) = index.records(project)  # every wheel with its record and metadata
        wheel = root / project / record["filename"]
        assert (wheel.parent / f"{wheel.name}.metadata").is_file()
        assert store.hashlib.sha256(wheel.read_bytes()).hexdigest() == record["sha256"]


def killed_while_publishing(root: str, wheel: str, ready: str) -> None:
    real = store._write_atomic

    def stall(path, data, tmpdir):  # the metadata is written, then the master dies
        real(path, data, tmpdir)
        Path(ready).touch()
        time.sleep(60)

    store._write_atomic = stall
    Index(root).add(Path(wheel), {})


def test_a_publisher_killed_mid_publish_leaves_no_wheel_and_no_lock(tmp_path):
    root, ready = tmp_path / "index", tmp_path / "ready"
    wheel = make_wheel(tmp_path / "w", "victim", "1.0")
    job = FORK.Process(target=killed_while_publishing, args=(str(root), str(wheel), str(ready)))
    job.start()
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline and job.is_alive()
        time.sleep(0.05)
    os.kill(job.pid, signal.SIGKILL)  # holding the index's lock
    job.join()
    index = Index(root)
    assert index.wheel_names("victim") == ()  # pip sees nothing of it
    start = time.monotonic()
    other = make_wheel(tmp_path / "o", "bystander", "1.0")
    assert index.add(other, {}).status == "added"  # the dead holder's lock is gone
    assert time.monotonic() - start < 5
    assert index.add(wheel, {}).status == "added"  # and the wheel is published again, whole
    assert index.wheel_names("victim") == (wheel.name,)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_the_lock_excludes_another_process(tmp_path):
    root = tmp_path / "index"
    root.mkdir()
    index = Index(root)
    with index._locked():
        job = FORK.Process(target=lambda: Index(root)._locked().__enter__())
        job.start()
        job.join(timeout=1)
        assert job.is_alive()  # waits for the lock this process holds
    job.join(timeout=10)
    assert job.exitcode == 0


def test_two_index_objects_of_one_process_exclude_each_other(tmp_path):
    # A master holds several Index objects (running builds keep the one of their
    # configuration, a reconfig makes new ones): the lock must exclude them all.
    root = tmp_path / "index"
    root.mkdir()
    first, second = Index(root), Index(root)
    entered = threading.Event()

    def take_second() -> None:
        with second._locked():
            entered.set()

    with first._locked():
        waiter = threading.Thread(target=take_second)
        waiter.start()
        assert not entered.wait(0.5)  # waits for the lock the first object holds
    assert entered.wait(10)
    waiter.join(10)


def test_another_index_object_done_with_the_lock_leaves_it_held_for_other_processes(tmp_path):
    # A POSIX record lock belongs to the process: closing any descriptor of the lock file
    # dropped it, so one Index object finishing let another process in while a second
    # object of the same process was still publishing.
    root = tmp_path / "index"
    root.mkdir()
    first, second = Index(root), Index(root)
    with first._locked():
        inner = threading.Thread(target=_enter_and_leave, args=(second,))
        inner.start()
        inner.join(0.5)  # blocked (fixed) or already done, closing its descriptor (the bug)
        job = FORK.Process(target=lambda: Index(root)._locked().__enter__())
        job.start()
        job.join(timeout=1)
        assert job.is_alive()  # the other process still waits: this one holds the lock
    job.join(timeout=10)
    inner.join(timeout=10)
    assert job.exitcode == 0 and not inner.is_alive()


def _enter_and_leave(index: Index) -> None:
    with index._locked():
        pass


def test_index_objects_of_one_process_publish_new_projects_at_once(tmp_path):
    # two builds of one master publishing the first wheels of a project at once, each
    # through its own Index object (failed with "File exists: .../<project>")
    root = tmp_path / "index"
    rounds, per_round = 150, 4
    wheels = [
        [make_wheel(tmp_path / f"w{r}-{t}", f"fresh{r}", f"1.{t}") for t in range(per_round)]
        for r in range(rounds)
    ]
    failures: list[str] = []
    for r in range(rounds):
        barrier = threading.Barrier(per_round)

        def publish_one(wheel: Path, index: Index, barrier=barrier) -> None:
            barrier.wait()
            try:
                assert index.add(wheel, {}).status == "added"
            except Exception as e:  # noqa: BLE001 (every failure counts)
                failures.append(f"{wheel.name}: {e!r}")

        threads = [threading.Thread(target=publish_one, args=(w, Index(root))) for w in wheels[r]]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not failures, failures[:5]
    assert len(Index(root).projects()) == rounds
