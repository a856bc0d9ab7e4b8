"""Downtime windows in workers.yaml, and which worker may start which build."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from test_workers import ALICE, problems, write
from wheelfarm.registry.matching import can_take, downtime_ends, in_downtime, in_window
from wheelfarm.registry.workers import Downtime, load_workers

WEEKEND_NIGHTS = """\
    downtime:
      - {days: [sat, sun], start: "02:00", end: "06:00"}
      - {start: "23:30", end: "00:30"}
"""
# 2026-11-21 is a Saturday
SAT = datetime(2026, 11, 21, tzinfo=UTC)


def alice(tmp_path, downtime: str = WEEKEND_NIGHTS):
    [worker] = load_workers(write(tmp_path, ALICE + downtime))
    return worker


def test_downtime_is_read_in_minutes_utc(tmp_path):
    assert alice(tmp_path).downtime == (
        Downtime(days=(5, 6), start=120, end=360),
        Downtime(days=(0, 1, 2, 3, 4, 5, 6), start=23 * 60 + 30, end=30),
    )


def test_no_downtime_by_default(tmp_path):
    assert alice(tmp_path, "").downtime == ()


@pytest.mark.parametrize(
    "when, inside",
    [
        (SAT + timedelta(hours=1, minutes=59), False),
        (SAT + timedelta(hours=2), True),
        (SAT + timedelta(hours=5, minutes=59), True),
        (SAT + timedelta(hours=6), False),  # the end is not in the window
        (SAT + timedelta(days=1, hours=3), True),  # Sunday
        (SAT + timedelta(days=2, hours=3), False),  # Monday
        (SAT - timedelta(days=1) + timedelta(hours=3), False),  # Friday
        # the same instant in another zone
        (datetime(2026, 11, 21, 4, 0, tzinfo=timezone(timedelta(hours=2))), True),
    ],
)
def test_weekend_window(when, inside):
    assert in_window(Downtime(days=(5, 6), start=120, end=360), when) is inside


@pytest.mark.parametrize(
    "when, inside",
    [
        (SAT + timedelta(hours=23, minutes=29), False),
        (SAT + timedelta(hours=23, minutes=30), True),  # opens Saturday night
        (SAT + timedelta(days=1, minutes=29), True),  # still open early Sunday
        (SAT + timedelta(days=1, minutes=30), False),
        (SAT + timedelta(minutes=10), False),  # Friday night had no window
    ],
)
def test_overnight_window_closes_the_next_day(when, inside):
    assert in_window(Downtime(days=(5,), start=23 * 60 + 30, end=30), when) is inside


def test_whole_day_window():
    window = Downtime(days=(5,), start=0, end=24 * 60)
    assert in_window(window, SAT) and in_window(window, SAT + timedelta(hours=23, minutes=59))
    assert not in_window(window, SAT + timedelta(days=1))


def test_can_take_needs_the_python_and_no_downtime(tmp_path):
    worker = alice(tmp_path)
    monday_noon = SAT + timedelta(days=2, hours=12)
    assert can_take(worker, "3.11", monday_noon)
    assert not can_take(worker, "3.13", monday_noon)  # not offered
    assert not can_take(worker, None, monday_noon)
    assert in_downtime(worker, SAT + timedelta(hours=3))
    assert not can_take(worker, "3.11", SAT + timedelta(hours=3))


@pytest.mark.parametrize(
    "downtime, found",
    [
        (
            '    downtime: [{days: [saturday], start: "02:00", end: "06:00"}]\n',
            "workers[0].downtime[0].days[0]: unknown day 'saturday' "
            "(one of: mon, tue, wed, thu, fri, sat, sun)",
        ),
        (
            '    downtime: [{start: "2:00", end: "06:00"}]\n',
            "workers[0].downtime[0].start: '2:00' is not a time of day in UTC like \"02:30\" "
            "(00:00 to 24:00)",
        ),
        (
            '    downtime: [{start: "02:00", end: "24:01"}]\n',
            "workers[0].downtime[0].end: '24:01' is not a time of day in UTC like \"02:30\" "
            "(00:00 to 24:00)",
        ),
        (
            '    downtime: [{start: "24:00", end: "06:00"}]\n',
            "workers[0].downtime[0].start: a window starts at 23:59 at the latest",
        ),
        (
            '    downtime: [{start: "02:00"}]\n',
            "workers[0].downtime[0].end: required key is missing",
        ),
        (
            '    downtime: [{start: "02:00", end: "03:00", dayz: [sat]}]\n',
            "workers[0].downtime[0].dayz: unknown key 'dayz' (did you mean 'days'?)",
        ),
        (
            '    downtime: [{days: [], start: "02:00", end: "03:00"}]\n',
            "workers[0].downtime[0].days: must not be an empty list",
        ),
        (
            "    downtime: {start: 1}\n",
            "workers[0].downtime: expected a list, got mapping",
        ),
    ],
)
def test_bad_downtime(tmp_path, downtime, found):
    path, messages = problems(tmp_path, ALICE + downtime)
    assert messages == [f"{path}:7: {found}"]


@pytest.mark.parametrize(
    ("when", "ends"),
    [
        (SAT + timedelta(hours=1), None),  # outside every window
        (SAT + timedelta(hours=2), SAT + timedelta(hours=6)),  # the weekend's
        (SAT + timedelta(hours=5, minutes=59, seconds=30), SAT + timedelta(hours=6)),
        # the overnight window, opened tonight: it closes tomorrow at 00:30
        (SAT + timedelta(hours=23, minutes=45), SAT + timedelta(days=1, minutes=30)),
        # opened last night: it closes this morning
        (SAT + timedelta(days=2, minutes=10), SAT + timedelta(days=2, minutes=30)),
    ],
)
def test_the_downtime_ends_when_its_window_closes(tmp_path, when, ends):
    assert downtime_ends(alice(tmp_path), when) == ends


def test_windows_that_follow_each_other_end_as_one(tmp_path):
    chained = """\
    downtime:
      - {days: [sat], start: "20:00", end: "23:00"}
      - {days: [sat], start: "22:00", end: "02:00"}
      - {days: [sun], start: "02:00", end: "03:15"}
"""
    worker = alice(tmp_path, chained)
    assert downtime_ends(worker, SAT + timedelta(hours=21)) == SAT + timedelta(
        days=1, hours=3, minutes=15
    )
    # a window around the clock, every day: checked again after a week at most
    always = alice(tmp_path, '    downtime:\n      - {start: "00:00", end: "24:00"}\n')
    ends = downtime_ends(always, SAT + timedelta(hours=5))
    assert ends is not None and SAT + timedelta(days=1) <= ends <= SAT + timedelta(days=9)
