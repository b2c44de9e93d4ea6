"""Which reminders meetings and applications get, and which of those due go out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.scheduler.reminders import for_application, for_meeting, worth_sending

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_a_meeting_two_days_ahead_gets_a_24h_and_a_1h_reminder() -> None:
    starts = NOW + timedelta(days=2)
    planned = for_meeting("m1", "u1", starts, NOW)
    assert [(r.kind, r.due_at) for r in planned] == [
        ("meeting_24h", starts - timedelta(hours=24)),
        ("meeting_1h", starts - timedelta(hours=1)),
    ]
    assert all(r.not_after == starts for r in planned)


def test_a_meeting_booked_three_hours_ahead_gets_only_the_1h_reminder() -> None:
    planned = for_meeting("m1", "u1", NOW + timedelta(hours=3), NOW)
    assert [r.kind for r in planned] == ["meeting_1h"]
    assert for_meeting("m1", "u1", NOW + timedelta(minutes=30), NOW) == []


def test_moving_a_meeting_gives_its_reminders_new_ids_and_keeping_it_the_same_ids() -> None:
    starts = NOW + timedelta(days=2)
    first = {r.reminder_id for r in for_meeting("m1", "u1", starts, NOW)}
    assert {
        r.reminder_id for r in for_meeting("m1", "u1", starts, NOW + timedelta(hours=1))
    } == first
    moved = {r.reminder_id for r in for_meeting("m1", "u1", starts + timedelta(hours=2), NOW)}
    assert moved.isdisjoint(first)


def test_an_open_application_gets_a_follow_up_after_n_days() -> None:
    planned = for_application("a1", "u1", "applied", NOW, None, NOW, follow_up_days=7)
    assert [(r.kind, r.due_at) for r in planned] == [("follow_up", NOW + timedelta(days=7))]
    assert planned[0].not_after is None
    assert for_application("a1", "u1", "applied", NOW, None, NOW, follow_up_days=0) == []


def test_a_settled_application_gets_no_follow_up() -> None:
    for status in ("rejected", "withdrawn", "hired"):
        assert for_application("a1", "u1", status, NOW, None, NOW, follow_up_days=7) == []


def test_an_interview_with_a_time_gets_reminders_before_it() -> None:
    interview = NOW + timedelta(days=3)
    planned = for_application("a1", "u1", "interview", NOW, interview, NOW, follow_up_days=7)
    assert sorted((r.kind, r.due_at) for r in planned) == [
        ("follow_up", NOW + timedelta(days=7)),
        ("interview_1h", interview - timedelta(hours=1)),
        ("interview_24h", interview - timedelta(hours=24)),
    ]
    # without a time there is nothing to remind of but the follow-up
    assert [
        r.kind for r in for_application("a1", "u1", "interview", NOW, None, NOW, follow_up_days=7)
    ] == ["follow_up"]


def test_after_downtime_only_the_latest_reminder_of_a_meeting_goes_out() -> None:
    starts = NOW + timedelta(minutes=30)
    both = for_meeting("m1", "u1", starts, NOW - timedelta(days=2))
    send, skip = worth_sending(both, NOW)
    assert [r.kind for r in send] == ["meeting_1h"]
    assert [r.kind for r in skip] == ["meeting_24h"]


def test_a_reminder_for_a_meeting_that_began_is_skipped() -> None:
    planned = for_meeting("m1", "u1", NOW - timedelta(minutes=5), NOW - timedelta(days=2))
    send, skip = worth_sending(planned, NOW)
    assert send == []
    assert len(skip) == 2


def test_a_follow_up_due_with_an_interview_reminder_still_goes_out() -> None:
    changed = NOW - timedelta(days=7, minutes=1)
    interview = NOW + timedelta(minutes=30)
    planned = for_application(
        "a1", "u1", "interview", changed, interview, changed, follow_up_days=7
    )
    send, skip = worth_sending(planned, NOW)
    assert sorted(r.kind for r in send) == ["follow_up", "interview_1h"]
    assert [r.kind for r in skip] == ["interview_24h"]
