"""Intake: domain events become notifications and planned deliveries.

Each handler decides whether the user wants to hear about it (preferences), words
it (templates), records it once (de-duplication; a redelivered event finds its own
rows) and hands the deliveries that are due to the delivery queue. Sending happens
in ``delivery.py``.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol, TypeVar

import asyncpg
import structlog

from shared import signing
from shared.batching import Coalesced
from shared.bus import Bus
from shared.db import Connection
from shared.erasure import erased_since, forget_in_queues, lock_user, record_erasure
from shared.errors import Defer, Ignore, Retry
from shared.events import (
    ApplicationStatusChanged,
    CancelNotification,
    DigestDue,
    Event,
    MatchFound,
    MeetingCancelled,
    MeetingScheduled,
    Payload,
    ReminderDue,
    RequestNotification,
    UserDeleted,
    UserSignedUp,
    derived_id,
)
from shared.sealing import Sealer
from shared.settings import Settings

from . import erasure, history, recipients
from .calendar import meeting_ics
from .channels import Attachment, Notification
from .content import JobItem, rank_digest
from .delivery import publish_due
from .inline import InlineDeliveries
from .mail import MailTransport
from .metrics import DispatcherMetrics
from .planner import Planned, Recorder, entry, plan
from .policy import EMAIL, INAPP, DedupStrategy, choose_channels, route_match
from .recipient_cache import RecipientCache
from .recipients import Recipient
from .rendering import Renderer

log = structlog.get_logger("herald.dispatcher")

P = TypeVar("P", bound=Payload)


class IntakeHandler(Protocol[P]):
    async def __call__(self, event: Event[P], deps: IntakeDeps) -> None: ...


# Reminders about an application stop once it reaches one of these.
FINAL_STATUSES = frozenset({"withdrawn", "rejected", "hired"})
DIGEST_SIZE = 10
# a welcome is once per user, whatever its wording (HERALD_DEDUP_STRATEGIES overrides)
DEFAULT_STRATEGIES = {"welcome": "aggressive"}


@dataclass(frozen=True)
class IntakeDeps:
    pool: asyncpg.Pool
    bus: Bus
    renderer: Renderer
    settings: Settings
    metrics: DispatcherMetrics
    # where e-mail goes; erasure asks it to forget a user's mail (the outbox keeps it)
    mail: MailTransport
    # opens endpoints' sealed URLs and secrets
    sealer: Sealer
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # sends what intake records, when there is room (None: always the queue)
    inline: InlineDeliveries | None = None
    # recipients kept between notifications (None: read every time)
    recipient_cache: RecipientCache | None = None
    # round trips shared by the events in flight (outside transactions): one query
    # loads many recipients, one statement records many notifications
    load_recipient: Coalesced[str, Recipient | None] = field(init=False)
    record: Coalesced[history.Entry, history.Recorded] = field(init=False)

    def __post_init__(self) -> None:
        async def load(user_ids: list[str]) -> list[Recipient | None]:
            async with self.pool.acquire() as conn:
                return await recipients.load_many(
                    conn, self.sealer, user_ids, left_out=self.left_out
                )

        async def record(entries: list[history.Entry]) -> list[history.Recorded]:
            async with self.pool.acquire() as conn:
                return await history.record_many(conn, entries)

        object.__setattr__(self, "load_recipient", Coalesced(load))
        object.__setattr__(self, "record", Coalesced(record))

    @property
    def left_out(self) -> recipients.LeftOut:
        return recipients.reported(self.metrics, self.bus.service)

    async def recipient(self, user_id: str) -> Recipient | None:
        if self.recipient_cache is None:
            return await self.load_recipient(user_id)
        return await self.recipient_cache.get(user_id, self.load_recipient)

    def strategy(self, notification_type: str) -> DedupStrategy:
        configured = self.settings.dedup_strategies.get(notification_type)
        return DedupStrategy(configured or DEFAULT_STRATEGIES.get(notification_type, "default"))


@dataclass(frozen=True)
class Compose:
    """Everything one notification needs before it is planned."""

    event: Event[Any]
    recipient: Recipient
    kind: str
    type: str
    subject: str
    context: dict[str, Any]
    priority: str = "normal"
    link: str | None = None
    data: dict[str, Any] | None = None
    job_id: str | None = None
    score: float | None = None
    attachments: tuple[Attachment, ...] = ()
    repeatable: bool = False
    only: tuple[str, ...] | list[str] | None = None
    endpoint_ids: list[uuid.UUID] | None = None
    deliver_at: datetime | None = None
    id_parts: tuple[str, ...] = ()


def on_connection(conn: Connection) -> Recorder:
    """Record on ``conn`` (inside the caller's transaction)."""

    async def record(entry: history.Entry) -> history.Recorded:
        return (await history.record_many(conn, [entry]))[0]

    return record


async def _notify(record: Recorder, deps: IntakeDeps, c: Compose) -> Planned:
    """Render, record and plan one notification."""
    user = c.recipient
    # chat and inbox get the text without e-mail footers; e-mail gets the HTML
    # with its unsubscribe link
    by_email = EMAIL in choose_channels({e.type for e in user.endpoints}, user.prefs, c.only)
    rendered = deps.renderer.render(
        c.kind,
        name=user.name,
        html=by_email,
        html_only=(
            {"unsubscribe_url": signing.unsubscribe_url(deps.settings, user.user_id)}
            if by_email
            else None
        ),
        **c.context,
    )
    now = deps.clock()
    notification = Notification(
        id=uuid.UUID(derived_id("notification", c.event.id, *c.id_parts)),
        user_id=user.user_id,
        type=c.type,
        title=rendered.title,
        body=rendered.text,
        priority=c.priority,
        created_at=now,
        data=c.data or {},
        html=rendered.html or None,
        link=c.link,
        attachments=c.attachments,
    )
    e = entry(
        history.Draft(notification, c.kind, c.subject, c.job_id, c.score),
        user,
        strategy=deps.strategy(c.type),
        repeatable=c.repeatable,
        only=c.only,
        endpoint_ids=c.endpoint_ids,
        deliver_at=c.deliver_at,
        source_event_id=c.event.id,
        correlation_id=c.event.correlation_id,
        now=now,
    )
    due_now = sum(1 for _, hold in e.plan if hold is None)
    turns = {}
    if deps.inline is not None and due_now and await deps.inline.room(due_now):
        e = replace(e, claim=deps.inline.lease)
        turns = deps.inline.reserve_ahead(e)
    planned = await plan(record, e)
    if turns and planned.claims:
        planned = replace(planned, turns=turns)
    deps.metrics.child(deps.metrics.notifications, deps.bus.service, c.kind, planned.outcome).inc()
    if planned.outcome == "duplicate":
        log.info("notification_deduplicated", kind=c.kind, subject=c.subject)
    return planned


async def _hand_over(deps: IntakeDeps, planned: Planned | None, correlation_id: str) -> None:
    """Send the deliveries due now: here when they were recorded claimed, else
    through the delivery queue. Call once what recorded them is committed."""
    if planned is None:
        return
    due = deps.inline.start(planned, correlation_id) if deps.inline else planned.due
    await publish_due(deps.bus, due, correlation_id)


async def _recipient(
    conn: Connection, deps: IntakeDeps, user_id: str, event_time: datetime
) -> Recipient:
    found = await recipients.load(conn, deps.sealer, user_id, left_out=deps.left_out)
    if found is None:
        await _unknown(conn, user_id, event_time)
    return found


async def _unknown(conn: Connection, user_id: str, event_time: datetime) -> NoReturn:
    if await erased_since(conn, user_id, event_time):
        raise Ignore(f"user {user_id!r} was erased after this event")
    # user.signed_up travels on another queue and may simply not be here yet
    raise Retry(f"user {user_id!r} is not known (no user.signed_up yet)")


def _suppressed(deps: IntakeDeps, kind: str, why: str) -> None:
    deps.metrics.notifications.labels(deps.bus.service, kind, "suppressed").inc()
    log.info("notification_suppressed", kind=kind, reason=why)


def finishes_replays(handler: IntakeHandler[P]) -> IntakeHandler[P]:
    """A redelivered event whose notification was recorded the first time finishes
    what it planned (a publish lost after the commit), whatever preferences or the
    job say now: they were applied when it was planned."""

    @functools.wraps(handler)
    async def handle(event: Event[P], deps: IntakeDeps) -> None:
        notification_id = uuid.UUID(derived_id("notification", event.id))
        async with deps.pool.acquire() as conn:
            recorded = await history.notification_exists(conn, notification_id)
            due = await history.pending(conn, notification_id) if recorded else []
        if not recorded:
            await handler(event, deps)
            return
        await publish_due(deps.bus, due, event.correlation_id)

    return handle


# -- users ----------------------------------------------------------------------


async def on_user_signed_up(event: Event[UserSignedUp], deps: IntakeDeps) -> None:
    u = event.data
    async with deps.pool.acquire() as conn, conn.transaction():
        await lock_user(conn, u.user_id)
        if await erased_since(conn, u.user_id, event.trusted_time):
            raise Ignore(f"user {u.user_id!r} was erased after signing up")
        await recipients.record_user(conn, u.user_id, u.email, u.name, u.timezone, u.locale)
        recipient = await _recipient(conn, deps, u.user_id, event.trusted_time)
        # the welcome is de-duplicated aggressively on the user: a repeated sign-up
        # (an e-mail change re-sent by the product) never welcomes twice
        planned = await _notify(
            on_connection(conn),
            deps,
            Compose(event, recipient, "welcome", "welcome", u.user_id, {}, id_parts=("welcome",)),
        )
    await _hand_over(deps, planned, event.correlation_id)
    log.info("user_recorded", user_id=u.user_id)


async def on_user_deleted(event: Event[UserDeleted], deps: IntakeDeps) -> None:
    """Erasure (``services.dispatcher.erasure``): the rows, then the outbox's mail,
    then the messages about the user in the dispatcher's delay and parking queues.
    A failure after the rows are gone retries the whole, which repeats harmlessly."""
    user_id = event.data.user_id
    async with deps.pool.acquire() as conn, conn.transaction():
        await lock_user(conn, user_id)
        busy = await erasure.sending_until(conn, user_id)
        if busy is not None:
            # a send under way would write its mail after we cleared the outbox
            wait = max((busy - deps.clock()).total_seconds(), 1.0)
            raise Defer(wait, f"a send to user {user_id!r} is under way")
        await erasure.erase_rows(conn, user_id)
        await record_erasure(conn, user_id, event.time)
    mails = await deps.mail.forget(user_id)
    swept = await forget_in_queues(deps.pool, deps.bus, user_id)
    log.info("user_erased", user_id=user_id, mails_removed=mails, messages_dropped=swept)


# -- explicit requests ------------------------------------------------------------


async def on_notification_requested(event: Event[RequestNotification], deps: IntakeDeps) -> None:
    r = event.data
    # the hot path: no transaction, no connection of its own; the recipient is read
    # and everything recorded by statements shared with the other events in flight
    recipient = await deps.recipient(r.user_id)
    if recipient is None:
        async with deps.pool.acquire() as conn:
            await _unknown(conn, r.user_id, event.trusted_time)
    link = r.data.get("url") if isinstance(r.data.get("url"), str) else None
    planned = await _notify(
        deps.record,
        deps,
        Compose(
            event,
            recipient,
            "generic",
            r.type,
            r.dedup_key or r.type,
            {"title": r.title, "body": r.body, "link": link},
            priority=r.priority.value,
            link=link,
            data=r.data,
            only=r.channels,
            endpoint_ids=r.endpoint_ids,
            deliver_at=r.deliver_at,
        ),
    )
    await _hand_over(deps, planned, event.correlation_id)


async def on_notification_cancel_requested(
    event: Event[CancelNotification], deps: IntakeDeps
) -> None:
    """Drop what a delayed request still holds back. The cancellation is remembered,
    so deliveries recorded after it (the request retried behind its cancel) are
    dropped by the releaser when their time comes instead of going out."""
    c = event.data
    notification_id = uuid.UUID(derived_id("notification", c.request_id))
    async with deps.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO cancelled_requests (request_id, user_id) VALUES ($1, $2)
               ON CONFLICT DO NOTHING""",
            c.request_id,
            c.user_id,
        )
        dropped = await conn.fetchval(
            """WITH dropped AS (
                   UPDATE deliveries d SET status = 'dropped', updated_at = now(),
                       last_error = 'cancelled', not_before = NULL
                   FROM notifications n
                   WHERE n.id = $1 AND n.user_id = $2 AND d.notification_id = n.id
                     AND d.status = 'held'
                   RETURNING 1)
               SELECT count(*) FROM dropped""",
            notification_id,
            c.user_id,
        )
    log.info("notification_cancelled", request_id=c.request_id, dropped=dropped)


# -- matches ----------------------------------------------------------------------


async def _job(conn: Connection, job_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT job_id, title, company, location, remote, salary_min, salary_max,
                  currency, url, closed_at, expires_at,
                  closed_at IS NULL AND (expires_at IS NULL OR expires_at > now()) AS open
           FROM jobs WHERE job_id = $1""",
        job_id,
    )


def _job_item(job: asyncpg.Record, match: MatchFound | dict[str, Any]) -> JobItem:
    m = match if isinstance(match, dict) else match.model_dump(mode="json")
    return JobItem(
        job_id=job["job_id"],
        title=job["title"],
        company=job["company"],
        location=job["location"],
        remote=job["remote"],
        salary_min=float(job["salary_min"]) if job["salary_min"] is not None else None,
        salary_max=float(job["salary_max"]) if job["salary_max"] is not None else None,
        currency=job["currency"],
        url=job["url"],
        score=float(m["score"]),
        matched_skills=tuple(m.get("matched_skills", ())),
        missing_skills=tuple(m.get("missing_skills", ())),
        score_parts=dict(m.get("score_parts", {})),
    )


@finishes_replays
async def on_match_found(event: Event[MatchFound], deps: IntakeDeps) -> None:
    m = event.data
    async with deps.pool.acquire() as conn, conn.transaction():
        recipient = await _recipient(conn, deps, m.user_id, event.trusted_time)
        route = route_match(recipient.prefs, m.score)
        if route is None:
            _suppressed(deps, "job_match", "preferences")
            return
        job = await _job(conn, m.job_id)
        if job is None:
            # the matcher stores a job before it matches it; a job that is gone
            # was closed and erased in between
            _suppressed(deps, "job_match", "job unknown")
            return
        if not job["open"]:
            _suppressed(deps, "job_match", "job closed or expired")
            return
        item = _job_item(job, m)
        if route.digest:
            await conn.execute(
                """INSERT INTO digest_items AS d (user_id, job_id, match_id, score, data)
                   VALUES ($1, $2, $3, $4, $5::jsonb)
                   ON CONFLICT (user_id, job_id) DO UPDATE
                   SET score = GREATEST(d.score, EXCLUDED.score), data = EXCLUDED.data,
                       digested_at = NULL
                   WHERE EXCLUDED.score > d.score OR d.digested_at IS NOT NULL""",
                m.user_id,
                m.job_id,
                m.match_id,
                m.score,
                json.dumps(m.model_dump(mode="json")),
            )
            deps.metrics.notifications.labels(deps.bus.service, "job_match", "digest").inc()
        planned = None
        if route.channels is None or route.channels:
            planned = await _notify(
                on_connection(conn),
                deps,
                Compose(
                    event,
                    recipient,
                    "job_match",
                    "job_match",
                    m.job_id,
                    {"items": [item]},
                    link=item.url,
                    data={
                        "match_id": m.match_id,
                        "job_id": m.job_id,
                        "score": m.score,
                        "reason": m.reason,
                        "fields": _job_fields(item),
                    },
                    job_id=m.job_id,
                    score=m.score,
                    repeatable=m.reason == "score_improved",
                    only=route.channels,
                ),
            )
    await _hand_over(deps, planned, event.correlation_id)


def _job_fields(item: JobItem) -> dict[str, str]:
    """Name → value pairs chat channels show as fields (Discord, Teams)."""
    fields = {"Company": item.company}
    if item.location_text:
        fields["Location"] = item.location_text
    if item.salary_text:
        fields["Salary"] = item.salary_text
    if item.score_percent is not None:
        fields["Match"] = f"{item.score_percent}%"
    return fields


# -- applications and meetings ----------------------------------------------------


@finishes_replays
async def on_application_status_changed(
    event: Event[ApplicationStatusChanged], deps: IntakeDeps
) -> None:
    a = event.data
    async with deps.pool.acquire() as conn, conn.transaction():
        recipient = await _recipient(conn, deps, a.user_id, event.trusted_time)
        newer = await conn.fetchval(
            """INSERT INTO applications AS a (application_id, user_id, job_id, status, as_of)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (application_id) DO UPDATE
               SET status = EXCLUDED.status, as_of = EXCLUDED.as_of
               WHERE a.as_of <= EXCLUDED.as_of
               RETURNING true""",
            a.application_id,
            a.user_id,
            a.job_id,
            a.new_status.value,
            event.time,
        )
        if not newer:
            _suppressed(deps, "application_status", "an older status change")
            return
        if not recipient.prefs.wants("application_status"):
            _suppressed(deps, "application_status", "preferences")
            return
        job = await _job(conn, a.job_id)
        planned = await _notify(
            on_connection(conn),
            deps,
            Compose(
                event,
                recipient,
                "application_status",
                "application_status",
                a.application_id,
                {
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
    await _hand_over(deps, planned, event.correlation_id)


async def on_meeting_changed(
    event: Event[MeetingScheduled] | Event[MeetingCancelled], deps: IntakeDeps
) -> None:
    """Keep the dispatcher's copy of a meeting, for wording its reminders."""
    m = event.data
    async with deps.pool.acquire() as conn:
        await _recipient(conn, deps, m.user_id, event.trusted_time)
    await deps.pool.execute(
        """INSERT INTO meetings AS m
               (meeting_id, user_id, title, starts_at, ends_at, join_url, cancelled, as_of)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (meeting_id) DO UPDATE
           SET title = EXCLUDED.title, starts_at = EXCLUDED.starts_at,
               ends_at = EXCLUDED.ends_at, join_url = EXCLUDED.join_url,
               cancelled = EXCLUDED.cancelled, as_of = EXCLUDED.as_of,
               sequence = m.sequence + 1
           WHERE m.as_of < EXCLUDED.as_of""",
        m.meeting_id,
        m.user_id,
        m.title,
        m.starts_at,
        m.ends_at,
        str(m.join_url) if m.join_url else None,
        isinstance(m, MeetingCancelled),
        event.time,
    )


@finishes_replays
async def on_reminder_due(event: Event[ReminderDue], deps: IntakeDeps) -> None:
    r = event.data
    async with deps.pool.acquire() as conn, conn.transaction():
        recipient = await _recipient(conn, deps, r.user_id, event.trusted_time)
        if not recipient.prefs.wants("reminder"):
            _suppressed(deps, "reminder", "preferences")
            return
        if r.kind.startswith("meeting"):
            compose = await _meeting_reminder(conn, event, recipient, deps)
        else:
            compose = await _application_reminder(conn, event, recipient)
        if compose is None:
            return
        planned = await _notify(on_connection(conn), deps, compose)
    await _hand_over(deps, planned, event.correlation_id)


async def _meeting_reminder(
    conn: Connection, event: Event[ReminderDue], recipient: Recipient, deps: IntakeDeps
) -> Compose | None:
    r = event.data
    meeting = await conn.fetchrow("SELECT * FROM meetings WHERE meeting_id = $1", r.subject_id)
    if meeting is None:
        raise Retry(f"meeting {r.subject_id!r} is not known yet")
    if meeting["cancelled"] or meeting["starts_at"] <= deps.clock():
        _suppressed(deps, "meeting_reminder", "meeting cancelled or over")
        return None
    hours = (meeting["starts_at"] - r.due_at).total_seconds() / 3600
    lead = "1h" if hours < 6 else "24h"
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
    return Compose(
        event,
        recipient,
        "meeting_reminder",
        "meeting_reminder",
        r.reminder_id,
        {
            "title": meeting["title"],
            "starts_at": meeting["starts_at"],
            "ends_at": meeting["ends_at"],
            "timezone": recipient.prefs.timezone,
            "lead": lead,
            "join_url": meeting["join_url"],
        },
        priority="high",
        link=meeting["join_url"],
        data={"meeting_id": meeting["meeting_id"], "starts_at": meeting["starts_at"].isoformat()},
        attachments=(invite,),
    )


async def _application_reminder(
    conn: Connection, event: Event[ReminderDue], recipient: Recipient
) -> Compose | None:
    r = event.data
    application = await conn.fetchrow(
        "SELECT status, job_id FROM applications WHERE application_id = $1", r.subject_id
    )
    if application is not None and application["status"] in FINAL_STATUSES:
        log.info("reminder_dropped", reason=f"application {application['status']}")
        return None
    job = await _job(conn, application["job_id"]) if application else None
    what = f"{job['title']} at {job['company']}" if job else "your application"
    return Compose(
        event,
        recipient,
        "generic",
        "reminder",
        r.reminder_id,
        {
            "title": f"Reminder: {what}",
            "body": f"This is your {r.kind.replace('_', ' ')} reminder about {what}.",
            "link": job["url"] if job else None,
        },
        link=job["url"] if job else None,
        data={"reminder_id": r.reminder_id, "kind": r.kind, "subject_id": r.subject_id},
    )


def _address(mail_from: str) -> str:
    return mail_from.rsplit("<", 1)[-1].rstrip(">").strip()


# -- digests --------------------------------------------------------------------


@finishes_replays
async def on_digest_due(event: Event[DigestDue], deps: IntakeDeps) -> None:
    d = event.data
    async with deps.pool.acquire() as conn, conn.transaction():
        recipient = await _recipient(conn, deps, d.user_id, event.trusted_time)
        if not recipient.prefs.wants("digest") or recipient.prefs.digest_frequency == "off":
            _suppressed(deps, "digest", "preferences")
            return
        rows = await conn.fetch(
            """SELECT i.job_id, i.data, j.job_id IS NOT NULL
                      AND j.closed_at IS NULL
                      AND (j.expires_at IS NULL OR j.expires_at > now()) AS open,
                      j.title, j.company, j.location, j.remote, j.salary_min, j.salary_max,
                      j.currency, j.url
               FROM digest_items i LEFT JOIN jobs j USING (job_id)
               WHERE i.user_id = $1 AND i.digested_at IS NULL AND i.created_at < $2
               FOR UPDATE OF i""",
            d.user_id,
            d.window_end,
        )
        read = {
            r["job_id"]
            for r in await conn.fetch(
                """SELECT job_id FROM notifications
                   WHERE user_id = $1 AND job_id IS NOT NULL AND read_at IS NOT NULL""",
                d.user_id,
            )
        }
        # freshness at send time: a job closed or expired since it matched is left out
        items = rank_digest(
            [_job_item(r, json.loads(r["data"])) for r in rows if r["open"]],
            read_job_ids=read,
            limit=DIGEST_SIZE,
        )
        counts = await conn.fetchrow(
            """SELECT
                 (SELECT count(*) FROM jobs WHERE posted_at >= $2 AND posted_at < $3) AS jobs,
                 (SELECT count(*) FROM digest_items WHERE user_id = $1
                    AND created_at >= $2 AND created_at < $3) AS matches,
                 (SELECT count(*) FROM notifications WHERE user_id = $1
                    AND kind = 'application_status'
                    AND created_at >= $2 AND created_at < $3) AS applications""",
            d.user_id,
            d.window_start,
            d.window_end,
        )
        assert counts is not None
        await conn.execute(
            """UPDATE digest_items SET digested_at = now()
               WHERE user_id = $1 AND digested_at IS NULL AND created_at < $2""",
            d.user_id,
            d.window_end,
        )
        if not items and not counts["matches"] and not counts["applications"]:
            _suppressed(deps, "digest", "nothing new")
            return
        planned = await _notify(
            on_connection(conn),
            deps,
            Compose(
                event,
                recipient,
                "digest",
                "digest",
                f"{d.frequency}:{d.window_start.isoformat()}",
                {
                    "frequency": d.frequency,
                    "new_jobs": counts["jobs"],
                    "new_matches": counts["matches"],
                    "application_updates": counts["applications"],
                    "items": items,
                },
                data={"job_ids": [i.job_id for i in items], "frequency": d.frequency},
                only=(EMAIL, INAPP),
            ),
        )
    await _hand_over(deps, planned, event.correlation_id)
