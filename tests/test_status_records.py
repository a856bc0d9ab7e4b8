"""The farm's status rows in memory (no master): what a year of them costs."""

from __future__ import annotations

import json

from wheelfarm.state.status import StatusRecords, _row, row_data


def test_rows_share_repeated_values_and_keep_no_dict_each():
    records = StatusRecords()
    for i, py in enumerate(["3.11", "3.12"]):
        record = {
            "package": "six",
            "version": "1.16.0",
            "platform": "linux-x86_64",
            "python": py,
            "status": "built",
            "build_url": f"http://farm/#/b/{i}",
            "finished_at": float(i),
        }
        # as read from the farm's table: JSON, each row's strings new objects
        row = _row(json.loads(json.dumps(record)))
        assert row_data(row) == {
            **record,
            "step": None,
            "log_url": None,
            "reason": None,
            "wheel": None,
        }
        records.add(row)
    # half a million rows at PyPI scale: no dict per row, one string per repeated value
    a, b = records.rows("six")
    assert not hasattr(a, "__dict__")
    assert a.platform is b.platform and a.version is b.version and a.status is b.status
