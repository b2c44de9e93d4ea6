"""Meeting invitations: the ICS parses and says what the reminder says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import icalendar
import pytest

from services.dispatcher.calendar import meeting_ics
from services.dispatcher.channels import Attachment

BERLIN_WINTER = timezone(timedelta(hours=1))
STARTS = datetime(2026, 12, 1, 10, 0, tzinfo=BERLIN_WINTER)
ENDS = datetime(2026, 12, 1, 11, 0, tzinfo=BERLIN_WINTER)
STAMP = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)


def ics(**overrides: Any) -> Attachment:
    values: dict[str, Any] = {
        "uid": "interview-42@herald.example.com",
        "title": "Interview with Acme: Senior Python engineer",
        "starts_at": STARTS,
        "ends_at": ENDS,
        "join_url": "https://meet.example.com/abc-defg-hij?pwd=1,2;3",
        "organizer_email": "hr@acme.example",
        "attendee_email": "ada@example.org",
        "stamp": STAMP,
    }
    return meeting_ics(**(values | overrides))


def invite(**overrides: Any) -> icalendar.Calendar:
    return icalendar.Calendar.from_ical(ics(**overrides).content)


def event_of(calendar: icalendar.Calendar) -> icalendar.Event:
    (event,) = calendar.events
    return event


def test_attachment_is_invite_ics_with_the_request_method() -> None:
    attachment = ics()
    assert attachment.filename == "invite.ics"
    assert attachment.content_type == "text/calendar; method=REQUEST"
    assert attachment.content.startswith(b"BEGIN:VCALENDAR\r\n")
    assert attachment.content.rstrip().endswith(b"END:VCALENDAR")


def test_request_has_uid_times_in_utc_and_confirmed_status() -> None:
    calendar = invite()
    assert calendar.method == "REQUEST"
    assert str(calendar["VERSION"]) == "2.0"
    event = event_of(calendar)
    assert event.uid == "interview-42@herald.example.com"
    assert event.start == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert event.end == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    # written as UTC ("Z"), not with a time zone the reader has to know
    assert b"DTSTART:20261201T090000Z\r\n" in event.to_ical()
    assert event.DTSTAMP == STAMP
    assert event.status == "CONFIRMED"
    assert event.sequence == 0
    assert event.summary == "Interview with Acme: Senior Python engineer"


def test_join_url_is_both_url_and_location() -> None:
    event = event_of(invite())
    assert str(event["URL"]) == "https://meet.example.com/abc-defg-hij?pwd=1,2;3"
    assert event.location == "https://meet.example.com/abc-defg-hij?pwd=1,2;3"


def test_organizer_and_attendee_are_mailto_addresses() -> None:
    event = event_of(invite())
    assert str(event["ORGANIZER"]) == "mailto:hr@acme.example"
    attendee = event["ATTENDEE"]
    assert str(attendee) == "mailto:ada@example.org"
    assert attendee.params["ROLE"] == "REQ-PARTICIPANT"
    assert attendee.params["RSVP"] == "FALSE"


def test_an_alarm_goes_off_fifteen_minutes_before() -> None:
    (alarm,) = event_of(invite()).subcomponents
    assert isinstance(alarm, icalendar.Alarm)
    assert str(alarm["ACTION"]) == "DISPLAY"
    trigger = alarm.TRIGGER
    assert trigger == timedelta(minutes=-15)
    assert str(alarm["DESCRIPTION"]) == "Interview with Acme: Senior Python engineer"


def test_cancellation_has_cancel_method_status_and_a_higher_sequence() -> None:
    attachment = ics(sequence=2, cancelled=True)
    assert attachment.content_type == "text/calendar; method=CANCEL"
    calendar = icalendar.Calendar.from_ical(attachment.content)
    assert calendar.method == "CANCEL"
    event = event_of(calendar)
    assert event.status == "CANCELLED"
    assert event.sequence == 2
    assert event.uid == "interview-42@herald.example.com"


def test_non_ascii_title_survives_on_one_summary() -> None:
    event = event_of(invite(title="Entretien  avec\nZürich AG — équipe 🚀"))
    assert event.summary == "Entretien avec Zürich AG — équipe 🚀"


def test_dtstamp_defaults_to_now() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = event_of(invite(stamp=None)).DTSTAMP
    assert before <= stamp <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"starts_at": datetime(2026, 12, 1, 10, 0)}, "timezone-aware"),
        ({"ends_at": STARTS}, "end after it starts"),
        ({"ends_at": STARTS - timedelta(minutes=1)}, "end after it starts"),
        ({"sequence": -1}, "sequence"),
    ],
)
def test_impossible_meetings_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        invite(**overrides)
