"""The farm's status records on disk and in memory (no master)."""

from __future__ import annotations

from wheelfarm.web.status import Row, StatusRecords


def test_records_round_trip_and_share_repeated_values(tmp_path):
    path = tmp_path / "status.jsonl"
    rows = [
        Row("six", "1.16.0", "linux-x86_64", py, "built", f"http://farm/#/b/{i}", float(i))
        for i, py in enumerate(["3.11", "3.12"])
    ]
    rows.append(
        Row("bad", "", "linux-x86_64", "3.11", "failed", "u", 3.0, step="test", reason="boom")
    )
    records = StatusRecords(path)
    records.append(rows)
    loaded = StatusRecords(path)
    loaded.load()
    assert sorted(loaded.snapshot(), key=lambda r: r.finished_at) == rows
    # the same line a row was written as
    loaded.save()
    assert path.read_text().splitlines()[0].startswith('{"package":"six","version":"1.16.0"')
    # half a million rows at PyPI scale: no dict per row, one string per repeated value
    a, b = loaded.rows("six")
    assert not hasattr(a, "__dict__")
    assert a.platform is b.platform and a.version is b.version and a.status is b.status
