"""Which reminders a meeting or an application calls for, and when (pure, no I/O).

Ids derive from the subject, the kind and the moment reminded of: the same event
again plans the same reminders, a moved meeting plans new ones (and the old ones
still pending are cancelled), and the dispatcher de-duplicates on the id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.events import Event, ReminderDue, derived_id, new_event

from .ticks import SOURCE

MEETING = "meeting"
APPLICATION = "application"
# The dispatcher words a reminder by its kind: a "meeting*" kind from its meeting,
# any other from its application.
MEETING_LEADS: Sequence[tuple[str, timedelta]] = (
    ("meeting_24h", timedelta(hours=24)),
    ("meeting_1h", timedelta(hours=1)),
)
INTERVIEW_LEADS: Sequence[tuple[str, timedelta]] = (
    ("interview_24h", timedelta(hours=24)),
    ("interview_1h", timedelta(hours=1)),
)
FOLLOW_UP = "follow_up"
# no follow-up once an application has reached one of these
FINAL_STATUSES = frozenset({"withdrawn", "rejected", "hired"})


@dataclass(frozen=True)
class Reminder:
    reminder_id: str
    user_id: str
    kind: str
    subject_type: str
    subject_id: str
    due_at: datetime
    # past this it is pointless (the meeting began): skipped, never sent late
    not_after: datetime | None = None


def ahead_of(
    subject_type: str,
    subject_id: str,
    user_id: str,
    at: datetime,
    leads: Iterable[tuple[str, timedelta]],
    now: datetime,
) -> list[Reminder]:
    """A reminder ``lead`` before ``at`` for each lead still ahead of ``now``: a
    meeting booked 30 minutes ahead gets no "in an hour" reminder after the fact."""
    return [
        Reminder(
            derived_id("reminder", subject_type, subject_id, kind, at.isoformat()),
            user_id,
            kind,
            subject_type,
            subject_id,
            at - lead,
            not_after=at,
        )
        for kind, lead in leads
        if at - lead > now
    ]


def for_meeting(
    meeting_id: str, user_id: str, starts_at: datetime, now: datetime
) -> list[Reminder]:
    return ahead_of(MEETING, meeting_id, user_id, starts_at, MEETING_LEADS, now)


def for_application(
    application_id: str,
    user_id: str,
    status: str,
    changed_at: datetime,
    interview_at: datetime | None,
    now: datetime,
    *,
    follow_up_days: int,
) -> list[Reminder]:
    """A follow-up ``follow_up_days`` after the change unless the application is
    settled; interview reminders when the change is to an interview with a time."""
    planned: list[Reminder] = []
    if status == "interview" and interview_at is not None:
        planned += ahead_of(
            APPLICATION, application_id, user_id, interview_at, INTERVIEW_LEADS, now
        )
    if follow_up_days and status not in FINAL_STATUSES:
        due = changed_at + timedelta(days=follow_up_days)
        if due > now:
            planned.append(
                Reminder(
                    derived_id("reminder", APPLICATION, application_id, FOLLOW_UP, due.isoformat()),
                    user_id,
                    FOLLOW_UP,
                    APPLICATION,
                    application_id,
                    due,
                )
            )
    return planned


def worth_sending(due: Sequence[Reminder], now: datetime) -> tuple[list[Reminder], list[Reminder]]:
    """Split reminders found due into (send, skip). A reminder past its
    ``not_after`` is skipped; of several due at once for one subject (the scheduler
    was down through both the 24 h and the 1 h mark) only the latest goes out. A
    follow-up due with an interview reminder still goes: they are about different
    moments (``not_after``)."""
    latest: dict[tuple[str, str, datetime | None], Reminder] = {}
    skip: list[Reminder] = []
    for r in due:
        if r.not_after is not None and r.not_after <= now:
            skip.append(r)
            continue
        key = (r.subject_type, r.subject_id, r.not_after)
        kept = latest.get(key)
        if kept is None or r.due_at > kept.due_at:
            if kept is not None:
                skip.append(kept)
            latest[key] = r
        else:
            skip.append(r)
    return sorted(latest.values(), key=lambda r: r.due_at), skip


def reminder_event(r: Reminder) -> Event[ReminderDue]:
    return new_event(
        ReminderDue(
            reminder_id=r.reminder_id,
            user_id=r.user_id,
            kind=r.kind,
            subject_id=r.subject_id,
            due_at=r.due_at,
        ),
        source=SOURCE,
        id=derived_id("reminder.due", r.reminder_id),
        subject=r.subject_id,
        time=r.due_at,
    )
