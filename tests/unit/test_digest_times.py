"""Digest times in users' zones, across daylight-saving changes, and their windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.scheduler.digests import DigestPlan, digest_event, due

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local(zone: ZoneInfo, *fields: int) -> datetime:
    return datetime(*fields, tzinfo=zone).astimezone(UTC)  # type: ignore[misc]


def daily_times(plan: DigestPlan, start: datetime, days: int) -> list[datetime]:
    times, moment = [], start
    for _ in range(days):
        moment = plan.schedule().next_after(moment)
        times.append(moment)
    return times


@pytest.mark.parametrize(
    ("zone", "first_day"),
    [
        # Berlin: summer time starts 2026-03-29, ends 2026-10-25
        (BERLIN, datetime(2026, 3, 27)),
        (BERLIN, datetime(2026, 10, 23)),
        # New York: starts 2026-03-08, ends 2026-11-01
        (NEW_YORK, datetime(2026, 3, 6)),
        (NEW_YORK, datetime(2026, 10, 30)),
    ],
)
def test_daily_digest_is_at_nine_local_on_both_sides_of_a_change(
    zone: ZoneInfo, first_day: datetime
) -> None:
    plan = DigestPlan("daily", zone.key, 9, 0)
    times = daily_times(plan, first_day.replace(tzinfo=zone).astimezone(UTC), 5)
    assert [t.astimezone(zone).strftime("%d %H:%M") for t in times] == [
        (first_day + timedelta(days=d)).strftime("%d 09:00") for d in range(5)
    ]
    offsets = {t.astimezone(zone).utcoffset() for t in times}
    assert len(offsets) == 2  # the change happened inside the five days


def test_the_window_across_the_spring_change_is_23_hours() -> None:
    plan = DigestPlan("daily", "Europe/Berlin", 9, 0)
    before = local(BERLIN, 2026, 3, 28, 9)
    d = due(plan, before, local(BERLIN, 2026, 3, 29, 9, 0, 20))
    assert d.window_end == local(BERLIN, 2026, 3, 29, 9)
    assert d.window_end - d.window_start == timedelta(hours=23)
    assert d.next_at == local(BERLIN, 2026, 3, 30, 9)


def test_after_downtime_one_digest_covers_everything_since_the_last() -> None:
    plan = DigestPlan("daily", "America/New_York", 9, 0)
    last = local(NEW_YORK, 2026, 11, 20, 9)
    d = due(plan, last, local(NEW_YORK, 2026, 11, 23, 14))
    assert (d.window_start, d.window_end) == (last, local(NEW_YORK, 2026, 11, 23, 9))
    assert d.next_at == local(NEW_YORK, 2026, 11, 24, 9)


def test_weekly_digest_comes_on_the_configured_weekday() -> None:
    plan = DigestPlan("weekly", "Europe/Berlin", 8, 4)  # Fridays
    times = daily_times(plan, local(BERLIN, 2026, 11, 23), 2)
    assert [t.astimezone(BERLIN).strftime("%a %d %H:%M") for t in times] == [
        "Fri 27 08:00",
        "Fri 04 08:00",
    ]


def test_a_new_user_gets_the_next_digest_with_a_window_of_one_period() -> None:
    plan = DigestPlan("daily", "Europe/Berlin", 9, 0)
    next_at, window_start = plan.start(local(BERLIN, 2026, 11, 23, 10))
    assert next_at == local(BERLIN, 2026, 11, 24, 9)
    assert window_start == local(BERLIN, 2026, 11, 23, 9)


def test_an_unknown_zone_falls_back_to_utc_rather_than_losing_digests() -> None:
    plan = DigestPlan("daily", "Not/AZone", 9, 0)
    assert plan.schedule().next_after(datetime(2026, 11, 23, tzinfo=UTC)) == datetime(
        2026, 11, 23, 9, tzinfo=UTC
    )


def test_the_digest_id_depends_on_user_frequency_and_window_end() -> None:
    plan = DigestPlan("daily", "UTC", 9, 0)
    now = datetime(2026, 11, 23, 9, 0, 5, tzinfo=UTC)
    d = due(plan, now - timedelta(days=1), now)
    one, two = digest_event("u1", "daily", d), digest_event("u1", "daily", d)
    assert one.id == two.id
    assert one.data.window_end == datetime(2026, 11, 23, 9, tzinfo=UTC)
    assert digest_event("u2", "daily", d).id != one.id
