"""Tick slots, catch-up after downtime, and the migration files shipped in the package."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.scheduler.schedules import Schedule, ScheduleError, cron_table
from services.scheduler.ticks import due_slots, tick_event
from shared.db import load_migrations
from shared.settings import ScheduleSpec

UTC_ZONE = ZoneInfo("UTC")
LATE = timedelta(seconds=30)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


def schedule(expression: str, catchup: str = "once", zone: str = "UTC") -> Schedule:
    return Schedule("s", expression, ZoneInfo(zone), catchup)  # type: ignore[arg-type]


def test_default_cron_table_has_the_five_schedules_at_their_times() -> None:
    table = {s.name: s for s in cron_table({}, "once")}
    assert sorted(table) == ["daily", "hourly", "minute", "monthly", "weekly"]
    now = at(23, 10, 5, 30)  # a Monday
    assert table["minute"].next_after(now) == at(23, 10, 6)
    assert table["hourly"].next_after(now) == at(23, 11)
    assert table["daily"].next_after(now) == at(24, 9)
    assert table["weekly"].next_after(now) == at(30, 9)
    assert table["monthly"].next_after(now) == datetime(2026, 12, 1, 10, tzinfo=UTC)


def test_configuration_adds_replaces_and_removes_schedules() -> None:
    table = {
        s.name: s
        for s in cron_table(
            {
                "minute": None,
                "daily": ScheduleSpec(cron="30 7 * * *", timezone="Europe/Berlin", catchup="all"),
                "fast": ScheduleSpec(cron="@every 15s"),
            },
            "skip",
        )
    }
    assert "minute" not in table
    assert table["daily"].catchup == "all"
    assert table["hourly"].catchup == "skip"
    # 07:30 in Berlin is 06:30 UTC in November
    assert table["daily"].next_after(at(23, 0)) == at(23, 6, 30)
    assert table["fast"].next_after(at(23, 10, 0, 14)) == at(23, 10, 0, 15)


def test_a_bad_expression_is_refused_when_the_table_is_built() -> None:
    with pytest.raises(ScheduleError, match="nightly"):
        cron_table({"nightly": ScheduleSpec(cron="61 * * * *")}, "once")
    with pytest.raises(ScheduleError):
        cron_table({"nightly": ScheduleSpec(cron="0 9 * * *", timezone="Mars/Olympus")}, "once")


def test_latest_slot_includes_an_exact_boundary() -> None:
    hourly = schedule("0 * * * *")
    assert hourly.latest_at_or_before(at(23, 10)) == at(23, 10)
    assert hourly.latest_at_or_before(at(23, 10, 59, 59)) == at(23, 10)
    assert list(hourly.slots_between(at(23, 10), at(23, 13))) == [
        at(23, 11),
        at(23, 12),
        at(23, 13),
    ]


def test_a_schedule_in_a_zone_keeps_local_time_across_daylight_saving() -> None:
    daily = schedule("0 9 * * *", zone="Europe/Berlin")
    slots = list(
        daily.slots_between(datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))
    )
    assert [s.astimezone(ZoneInfo("Europe/Berlin")).hour for s in slots] == [9, 9, 9, 9]
    assert [s.hour for s in slots] == [8, 8, 7, 7]  # UTC: winter, winter, summer, summer


def test_on_time_slot_is_published_once_and_never_again() -> None:
    minute = schedule("* * * * *")
    first = due_slots(minute, at(23, 10, 4), at(23, 10, 5, 0), late_within=LATE, limit=10)
    assert first.slots == [at(23, 10, 5)]
    again = due_slots(minute, first.cursor, at(23, 10, 5, 40), late_within=LATE, limit=10)
    assert again.slots == []
    assert again.cursor == first.cursor


def test_a_first_start_owes_nothing_from_before_it() -> None:
    hourly = schedule("0 * * * *", catchup="all")
    assert due_slots(hourly, None, at(23, 10, 30), late_within=LATE, limit=10).slots == []
    # started within the late window of a slot: that slot goes out
    assert due_slots(hourly, None, at(23, 10, 0, 10), late_within=LATE, limit=10).slots == [
        at(23, 10)
    ]


def test_slots_held_up_by_a_fail_over_are_all_published_whatever_the_policy() -> None:
    fast = schedule("@every 1s", catchup="skip")
    due = due_slots(fast, at(23, 10, 0, 0), at(23, 10, 0, 4), late_within=LATE, limit=1)
    assert due.slots == [at(23, 10, 0, s) for s in (1, 2, 3, 4)]
    assert due.skipped_after is None


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("skip", []),
        ("once", [at(23, 10)]),
        ("all", [at(23, 7), at(23, 8), at(23, 9), at(23, 10)]),
    ],
)
def test_missed_hours_after_downtime_follow_the_policy(
    policy: str, expected: list[datetime]
) -> None:
    hourly = schedule("0 * * * *", catchup=policy)
    # last published at 06:00, back at 10:20: 07:00 to 10:00 were missed
    due = due_slots(hourly, at(23, 6), at(23, 10, 20), late_within=LATE, limit=24)
    assert due.slots == expected
    assert due.cursor == at(23, 10)


def test_catching_up_all_is_bounded_to_the_most_recent_slots() -> None:
    minute = schedule("* * * * *", catchup="all")
    # down for a week: 10,080 missed minutes, only the last five go out
    due = due_slots(minute, at(16, 10), at(23, 10, 0, 45), late_within=LATE, limit=5)
    assert due.slots == [at(23, 9, 56), at(23, 9, 57), at(23, 9, 58), at(23, 9, 59), at(23, 10)]
    assert due.skipped_after == at(16, 10)


def test_once_does_not_add_a_missed_slot_when_one_runs_on_time() -> None:
    minute = schedule("* * * * *", catchup="once")
    due = due_slots(minute, at(23, 9), at(23, 10, 0, 5), late_within=LATE, limit=5)
    assert due.slots == [at(23, 10)]


def test_two_replicas_emit_the_same_tick_for_the_same_slot() -> None:
    slot = at(23, 10, 5)
    one, two = tick_event("minute", slot), tick_event("minute", slot)
    assert one.id == two.id
    assert one.type == "tick.minute"
    assert one.time == slot
    assert tick_event("minute", slot + timedelta(minutes=1)).id != one.id
    assert tick_event("hourly", slot).id != one.id


def test_migrations_are_ordered_and_numbered_from_one() -> None:
    migrations = load_migrations()
    versions = [m.version for m in migrations]
    assert versions[0] == 1
    assert versions == sorted(versions)
    assert all(m.sql.strip() for m in migrations)
