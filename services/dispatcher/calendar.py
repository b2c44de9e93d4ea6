"""Meeting invitations as iCalendar (RFC 5545 / iTIP RFC 5546) attachments: pure.

A reminder about an interview carries ``invite.ics`` so the meeting lands in the
recipient's calendar. The same ``uid`` with a higher ``sequence`` updates it;
``cancelled=True`` (METHOD:CANCEL, STATUS:CANCELLED) removes it. Times are written
in UTC, so no VTIMEZONE is needed. RSVP is off: Herald relays the meeting, it does
not collect answers for the organizer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from icalendar import Alarm, Calendar, Event, vCalAddress

from .channels._base import Attachment

PRODID = "-//Herald//Meeting reminders//EN"
ALARM_BEFORE = timedelta(minutes=15)


def meeting_ics(
    *,
    uid: str,
    title: str,
    starts_at: datetime,
    ends_at: datetime,
    join_url: str,
    organizer_email: str,
    attendee_email: str,
    sequence: int = 0,
    cancelled: bool = False,
    stamp: datetime | None = None,
) -> Attachment:
    """``invite.ics`` for one meeting; ``stamp`` (DTSTAMP) defaults to now."""
    for name, moment in (("starts_at", starts_at), ("ends_at", ends_at)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware")
    if ends_at <= starts_at:
        raise ValueError("a meeting must end after it starts")
    if sequence < 0:
        raise ValueError("sequence must not be negative")
    method = "CANCEL" if cancelled else "REQUEST"
    summary = " ".join(title.split())

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)

    event = Event()
    event.add("uid", uid)
    event.add("sequence", sequence)
    event.add("dtstamp", (stamp or datetime.now(UTC)).astimezone(UTC))
    event.add("dtstart", starts_at.astimezone(UTC))
    event.add("dtend", ends_at.astimezone(UTC))
    event.add("summary", summary)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("url", join_url)
    event.add("location", join_url)
    event.add("organizer", vCalAddress(f"mailto:{organizer_email}"))
    attendee = vCalAddress(f"mailto:{attendee_email}")
    attendee.params["ROLE"] = "REQ-PARTICIPANT"
    attendee.params["PARTSTAT"] = "NEEDS-ACTION"
    attendee.params["RSVP"] = "FALSE"
    event.add("attendee", attendee)

    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", summary)
    alarm.add("trigger", -ALARM_BEFORE)
    event.add_component(alarm)

    calendar.add_component(event)
    return Attachment(
        filename="invite.ics",
        content_type=f"text/calendar; method={method}",
        content=calendar.to_ical(),
    )
