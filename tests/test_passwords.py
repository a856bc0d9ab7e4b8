"""`wheelfarm worker-password`: the operator's way to give a volunteer a password."""

from __future__ import annotations

import stat
from pathlib import Path

from test_workers import ALICE, write
from wheelfarm.cli.main import main
from wheelfarm.config import _worker
from wheelfarm.registry.workers import load_workers
from wheelfarm.settings import Settings


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main(["worker-password", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


def test_password_is_stored_where_the_master_reads_it(tmp_path, capsys):
    workers = write(tmp_path, ALICE)
    secrets = tmp_path / "secrets"
    status, out, err = run(capsys, "alice-linux-1", "--secrets-dir", secrets, "--workers", workers)
    assert status == 0 and err == ""
    password = out.strip()
    assert len(password) >= 32
    stored = secrets / "worker-alice-linux-1"
    assert stored.read_text(encoding="utf-8") == password
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    # the master's configuration uses that secret for the worker
    [entry] = load_workers(workers)
    worker = _worker(entry, Settings(basedir=tmp_path, secrets_dir=secrets))
    assert "worker-alice-linux-1" in repr(worker.password)


def test_existing_password_is_kept_unless_rotated(tmp_path, capsys):
    workers = write(tmp_path, ALICE)
    args = ("alice-linux-1", "--secrets-dir", tmp_path / "s", "--workers", workers)
    _, first, _ = run(capsys, *args)
    status, out, err = run(capsys, *args)
    assert status == 1 and out == ""
    assert "pass --rotate to replace the password" in err
    assert (tmp_path / "s" / "worker-alice-linux-1").read_text() == first.strip()
    status, second, _ = run(capsys, *args, "--rotate")
    assert status == 0 and second != first
    assert (tmp_path / "s" / "worker-alice-linux-1").read_text() == second.strip()


def test_undeclared_worker_is_pointed_out(tmp_path, capsys):
    workers = write(tmp_path, ALICE)
    status, out, err = run(capsys, "bob-mac", "--secrets-dir", tmp_path, "--workers", workers)
    assert status == 0 and out.strip()
    assert f"'bob-mac' is not declared in {workers}" in err


def test_bad_name_is_refused(tmp_path, capsys):
    status, out, err = run(capsys, "../etc", "--secrets-dir", tmp_path)
    assert status == 1 and out == ""
    assert "'../etc' is not a valid worker name" in err
    assert list(Path(tmp_path).iterdir()) == []
