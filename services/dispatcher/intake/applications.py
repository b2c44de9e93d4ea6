"""Applications and meetings: status changes become notifications; meetings are
kept to word their reminders; ``reminder.due`` (from the scheduler) becomes a
meeting reminder with its calendar invite, or an application reminder, unless the
meeting is off or the application is settled."""

from __future__ import annotations

import structlog

from shared.db import Connection
from shared.errors import Retry
from shared.events import (
    ApplicationStatusChanged,
    Event,
    MeetingCancelled,
    MeetingScheduled,
    ReminderDue,
)

from ..calendar import meeting_ics
from ..planning import Draft
from ..recipients import Recipient
from . import applications_data, jobs_data
from ._base import IntakeDeps, finishes_replays, on_connection, recipient_of

log = structlog.get_logger("herald.dispatcher")


@finishes_replays
async def on_application_status_changed(
    event: Event[ApplicationStatusChanged], deps: IntakeDeps
) -> None:
    a = event.data
    async with deps.pool.acquire() as conn, conn.transaction():
        recipient = await recipient_of(conn, deps, a.user_id, event.trusted_time)
        if not await applications_data.record_status(conn, a, event.time):
            deps.suppressed("application_status", "an older status change")
            return
        if not recipient.prefs.wants("application_status"):
            deps.suppressed("application_status", "preferences")
            return
        job = await jobs_data.find(conn, a.job_id)
        planned = await deps.notify(
            on_connection(conn),
            Draft(
                event=event,
                recipient=recipient,
                kind="application_status",
                type="application_status",
                dedup_key=a.application_id,
                context={
                    "new_status": a.new_status.value,
                    "old_status": a.old_status.value if a.old_status else None,
                    "job_title": job["title"] if job else "the job",
                    "company": job["company"] if job else "the company",
                    "job_url": job["url"] if job else None,
                    "note": a.note,
                },
                link=job["url"] if job else None,
                data={
                    "application_id": a.application_id,
                    "job_id": a.job_id,
                    "status": a.new_status.value,
                },
                job_id=a.job_id,
                repeatable=True,
            ),
        )
    await deps.hand_over(planned, event.correlation_id)


async def on_meeting_changed(
    event: Event[MeetingScheduled] | Event[MeetingCancelled], deps: IntakeDeps
) -> None:
    """Keep the dispatcher's copy of a meeting, for wording its reminders."""
    m = event.data
    async with deps.pool.acquire() as conn:
        await recipient_of(conn, deps, m.user_id, event.trusted_time)
    await applications_data.record_meeting(deps.pool, m, event.time)


@finishes_replays
async def on_reminder_due(event: Event[ReminderDue], deps: IntakeDeps) -> None:
    r = event.data
    async with deps.pool.acquire() as conn, conn.transaction():
        recipient = await recipient_of(conn, deps, r.user_id, event.trusted_time)
        if not recipient.prefs.wants("reminder"):
            deps.suppressed("reminder", "preferences")
            return
        if r.kind.startswith("meeting"):
            draft = await _meeting_reminder(conn, event, recipient, deps)
        else:
            draft = await _application_reminder(conn, event, recipient)
        if draft is None:
            return
        planned = await deps.notify(on_connection(conn), draft)
    await deps.hand_over(planned, event.correlation_id)


async def _meeting_reminder(
    conn: Connection, event: Event[ReminderDue], recipient: Recipient, deps: IntakeDeps
) -> Draft | None:
    r = event.data
    meeting = await applications_data.meeting(conn, r.subject_id)
    if meeting is None:
        raise Retry(f"meeting {r.subject_id!r} is not known yet")
    if meeting["cancelled"] or meeting["starts_at"] <= deps.clock():
        deps.suppressed("meeting_reminder", "meeting cancelled or over")
        return None
    hours = (meeting["starts_at"] - r.due_at).total_seconds() / 3600
    invite = meeting_ics(
        uid=f"{meeting['meeting_id']}@herald",
        title=meeting["title"],
        starts_at=meeting["starts_at"],
        ends_at=meeting["ends_at"],
        join_url=meeting["join_url"],
        organizer_email=_address(deps.settings.mail_from),
        attendee_email=recipient.email,
        sequence=meeting["sequence"],
    )
    return Draft(
        event=event,
        recipient=recipient,
        kind="meeting_reminder",
        type="meeting_reminder",
        dedup_key=r.reminder_id,
        context={
            "title": meeting["title"],
            "starts_at": meeting["starts_at"],
            "ends_at": meeting["ends_at"],
            "timezone": recipient.prefs.timezone,
            "lead": "1h" if hours < 6 else "24h",
            "join_url": meeting["join_url"],
        },
        priority="high",
        link=meeting["join_url"],
        data={"meeting_id": meeting["meeting_id"], "starts_at": meeting["starts_at"].isoformat()},
        attachments=(invite,),
    )


async def _application_reminder(
    conn: Connection, event: Event[ReminderDue], recipient: Recipient
) -> Draft | None:
    r = event.data
    application = await applications_data.application(conn, r.subject_id)
    if application is not None and application["status"] in applications_data.FINAL_STATUSES:
        log.info("reminder_dropped", reason=f"application {application['status']}")
        return None
    job = await jobs_data.find(conn, application["job_id"]) if application else None
    what = f"{job['title']} at {job['company']}" if job else "your application"
    return Draft(
        event=event,
        recipient=recipient,
        kind="generic",
        type="reminder",
        dedup_key=r.reminder_id,
        context={
            "title": f"Reminder: {what}",
            "body": f"This is your {r.kind.replace('_', ' ')} reminder about {what}.",
            "link": job["url"] if job else None,
        },
        link=job["url"] if job else None,
        data={"reminder_id": r.reminder_id, "kind": r.kind, "subject_id": r.subject_id},
    )


def _address(mail_from: str) -> str:
    return mail_from.rsplit("<", 1)[-1].rstrip(">").strip()
