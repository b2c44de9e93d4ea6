"""The notification history: notifications, one delivery row per notification by
endpoint, and every attempt's outcome. The dispatcher's only writer of these rows."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.db import Connection
from shared.endpoints import Endpoint

from .channels import Attachment, DeliveryResult, Notification, Outcome, delivery_id


@dataclass(frozen=True)
class Draft:
    """A notification about to be recorded; ``kind`` names its template and its
    preference category, ``subject`` what de-duplication compares (a job, an
    application, a meeting)."""

    notification: Notification
    kind: str
    subject: str
    job_id: str | None = None
    score: float | None = None


@dataclass(frozen=True)
class Due:
    """A delivery ready to go now: what ``delivery.due`` carries."""

    id: uuid.UUID
    notification_id: uuid.UUID
    user_id: str
    channel: str
    priority: str


async def notification_exists(conn: Connection, notification_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval("SELECT true FROM notifications WHERE id = $1", notification_id)
    )


async def record(
    conn: Connection,
    draft: Draft,
    plan: list[tuple[Endpoint, datetime | None]],
    *,
    dedup: tuple[str, str, timedelta | None] | None,
    source_event_id: str,
    correlation_id: str,
) -> str:
    """Record a notification and its deliveries once, in one statement: "existing"
    when it was recorded before (a redelivered event), "duplicate" when the
    de-duplication mark ``(subject, content key, repeat after)`` refuses it, else
    "created". Those with a ``not_before`` are held until then."""
    n = draft.notification
    subject, content_key, repeat_after = dedup if dedup else (None, None, None)
    ids = [delivery_id(n.id, e.id) for e, _ in plan]
    row = await conn.fetchrow(
        """WITH existing AS (SELECT 1 FROM notifications WHERE id = $1),
           marked AS (
               INSERT INTO dedup_marks AS m (user_id, type, subject, content_hash)
               SELECT $2, $3, $17, $18
               WHERE $18::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM existing)
               ON CONFLICT (user_id, type, subject, content_hash) DO UPDATE
                   SET sent_at = now()
                   WHERE $19::interval IS NOT NULL AND m.sent_at <= now() - $19::interval
               RETURNING 1),
           go AS (SELECT NOT EXISTS (SELECT 1 FROM existing)
                         AND ($18::text IS NULL OR EXISTS (SELECT 1 FROM marked)) AS ok),
           inserted AS (
               INSERT INTO notifications
                   (id, user_id, type, kind, subject, job_id, score, title, body, html, link,
                    data, priority, source_event_id, correlation_id, created_at)
               SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14,
                      $15, $16
               FROM go WHERE go.ok
               RETURNING id),
           planned AS (
               INSERT INTO deliveries
                   (id, notification_id, endpoint_id, channel, status, not_before, priority)
               SELECT p.id, $1, p.endpoint_id, p.channel,
                      CASE WHEN p.hold IS NULL THEN 'pending' ELSE 'held' END, p.hold, $13
               FROM unnest($20::uuid[], $21::uuid[], $22::text[], $23::timestamptz[])
                    AS p(id, endpoint_id, channel, hold)
               WHERE EXISTS (SELECT 1 FROM inserted)
               ON CONFLICT DO NOTHING
               RETURNING 1)
           SELECT EXISTS (SELECT 1 FROM existing) AS existed, (SELECT ok FROM go) AS created,
                  (SELECT count(*) FROM planned) AS deliveries""",
        n.id,
        n.user_id,
        n.type,
        draft.kind,
        draft.subject,
        draft.job_id,
        draft.score,
        n.title,
        n.body,
        n.html,
        n.link,
        json.dumps(n.data, default=str),
        n.priority,
        source_event_id,
        correlation_id,
        n.created_at,
        subject,
        content_key,
        repeat_after,
        ids,
        [e.id for e, _ in plan],
        [e.type for e, _ in plan],
        [hold for _, hold in plan],
    )
    assert row is not None
    if row["existed"]:
        return "existing"
    if not row["created"]:
        return "duplicate"
    if n.attachments:
        await conn.executemany(
            """INSERT INTO notification_attachments
                   (notification_id, filename, content_type, content) VALUES ($1, $2, $3, $4)""",
            [(n.id, a.filename, a.content_type, a.content) for a in n.attachments],
        )
    return "created"


def due_now(notification: Notification, plan: list[tuple[Endpoint, datetime | None]]) -> list[Due]:
    return [
        Due(
            delivery_id(notification.id, e.id),
            notification.id,
            notification.user_id,
            e.type,
            notification.priority,
        )
        for e, hold in plan
        if hold is None
    ]


async def pending(conn: Connection, notification_id: uuid.UUID) -> list[Due]:
    rows = await conn.fetch(
        """SELECT d.id, d.channel, d.priority, n.user_id FROM deliveries d
           JOIN notifications n ON n.id = d.notification_id
           WHERE d.notification_id = $1 AND d.status = 'pending'""",
        notification_id,
    )
    return [Due(r["id"], notification_id, r["user_id"], r["channel"], r["priority"]) for r in rows]


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    attempts: int
    # the claim's fencing token: later writes only land while the claim is ours
    token: datetime
    notification: Notification
    kind: str
    job_id: str | None
    endpoint: Endpoint | None


@dataclass(frozen=True)
class Finished:
    """A delivery that already has its outcome, for announcing it again."""

    status: str
    attempts: int
    error: str | None
    notification_id: uuid.UUID
    user_id: str
    channel: str


@dataclass(frozen=True)
class Busy:
    """Another dispatcher holds the delivery until ``until``; or it is finished
    (``until`` None, ``finished`` set when it was delivered or failed)."""

    until: datetime | None
    finished: Finished | None = None


async def claim(conn: Connection, delivery: uuid.UUID, lease: float) -> Claimed | Busy:
    """Take a pending delivery for ``lease`` seconds, so a duplicate ``delivery.due``
    waits instead of sending twice; a crashed holder's lease simply runs out.

    A held delivery whose time has come is claimable too: the releaser publishes
    before it commits, and this UPDATE waits for its row lock, then sees the row as
    committed.
    """
    # one round trip: claim, and read what the send needs
    row = await conn.fetchrow(
        """WITH claimed AS (
               UPDATE deliveries d
               SET claimed_until = clock_timestamp() + make_interval(secs => $2),
                   status = 'pending',
                   not_before = CASE WHEN d.status = 'held' THEN NULL ELSE d.not_before END
               WHERE d.id = $1
                 AND (d.status = 'pending'
                      OR (d.status = 'held' AND d.not_before <= clock_timestamp()))
                 AND (d.claimed_until IS NULL OR d.claimed_until < clock_timestamp())
               RETURNING d.attempts, d.claimed_until, d.notification_id, d.endpoint_id)
           SELECT c.attempts, c.claimed_until, n.id, n.user_id, n.type, n.kind, n.job_id,
                  n.title, n.body, n.html, n.link, n.data, n.priority, n.created_at,
                  EXISTS (SELECT 1 FROM notification_attachments a
                          WHERE a.notification_id = n.id) AS has_attachments,
                  e.id AS e_id, e.user_id AS e_user_id, e.type AS e_type, e.url AS e_url,
                  e.chat_id AS e_chat_id, e.secret AS e_secret, e.address AS e_address
           FROM claimed c JOIN notifications n ON n.id = c.notification_id
           LEFT JOIN channel_endpoints e ON e.id = c.endpoint_id AND e.enabled""",
        delivery,
        lease,
    )
    if row is None:
        return await _why_not(conn, delivery)
    n = row
    attachments = (
        await conn.fetch(
            """SELECT filename, content_type, content FROM notification_attachments
               WHERE notification_id = $1 ORDER BY filename""",
            n["id"],
        )
        if n["has_attachments"]
        else []
    )
    e = (
        Endpoint(
            row["e_id"],
            row["e_user_id"],
            row["e_type"],
            row["e_url"],
            row["e_chat_id"],
            row["e_secret"],
            row["e_address"],
        )
        if row["e_id"] is not None
        else None
    )
    notification = Notification(
        id=n["id"],
        user_id=n["user_id"],
        type=n["type"],
        title=n["title"],
        body=n["body"],
        priority=n["priority"],
        created_at=n["created_at"],
        data=json.loads(n["data"]),
        html=n["html"],
        link=n["link"],
        attachments=tuple(Attachment(**dict(a)) for a in attachments),
    )
    return Claimed(
        delivery,
        row["attempts"],
        row["claimed_until"],
        notification,
        n["kind"],
        n["job_id"],
        e,
    )


async def _why_not(conn: Connection, delivery: uuid.UUID) -> Busy:
    other = await conn.fetchrow(
        """SELECT d.status, d.claimed_until, d.attempts, d.last_error, d.notification_id,
                  d.channel, n.user_id, clock_timestamp() + interval '1 second' AS soon
           FROM deliveries d JOIN notifications n ON n.id = d.notification_id
           WHERE d.id = $1""",
        delivery,
    )
    if other is None:
        return Busy(None)
    if other["status"] == "pending":
        return Busy(other["claimed_until"] or other["soon"])
    if other["status"] == "held":
        return Busy(None)  # not due yet: the releaser sends it when it is
    finished = None
    if other["status"] in ("delivered", "failed"):
        finished = Finished(
            other["status"],
            other["attempts"],
            other["last_error"],
            other["notification_id"],
            other["user_id"],
            other["channel"],
        )
    return Busy(None, finished)


async def postpone(conn: Connection, delivery: uuid.UUID, token: datetime, seconds: float) -> None:
    """Let go of the claim; the delivery comes back through a delay queue."""
    await conn.execute(
        """UPDATE deliveries SET claimed_until = NULL,
               retry_at = clock_timestamp() + make_interval(secs => $3)
           WHERE id = $1 AND claimed_until = $2""",
        delivery,
        token,
        seconds,
    )


_STATUS = {
    Outcome.DELIVERED: "delivered",
    Outcome.PERMANENT: "failed",
    Outcome.SKIPPED: "skipped",
    Outcome.TRANSIENT: "pending",
}


async def record_attempt(
    conn: Connection,
    delivery: uuid.UUID,
    token: datetime,
    result: DeliveryResult,
    *,
    final: bool,
    retry_in: float | None = None,
) -> int | None:
    """Store one attempt's outcome; a transient failure on the ``final`` attempt
    fails the delivery. The number of attempts made, or None when the claim was lost
    (another dispatcher took over after the lease ran out: its outcome stands)."""
    status = "failed" if final and result.outcome is Outcome.TRANSIENT else _STATUS[result.outcome]
    # one statement: a success also clears its endpoint's failure count
    attempts = await conn.fetchval(
        """WITH d AS (
               UPDATE deliveries
               SET attempts = attempts + 1, status = $3, last_error = $4,
                   response_status = $5, provider_id = COALESCE($6, provider_id),
                   claimed_until = NULL,
                   retry_at = clock_timestamp() + make_interval(secs => $7),
                   updated_at = now(), last_attempt_at = now(),
                   first_attempt_at = COALESCE(first_attempt_at, now()),
                   delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END
               WHERE id = $1 AND claimed_until = $2
               RETURNING attempts, endpoint_id),
           healthy AS (
               UPDATE channel_endpoints e SET consecutive_failures = 0 FROM d
               WHERE $3 = 'delivered' AND e.id = d.endpoint_id AND e.consecutive_failures > 0)
           SELECT attempts FROM d""",
        delivery,
        token,
        status,
        None if result.outcome is Outcome.DELIVERED else result.detail,
        result.status_code,
        result.provider_id,
        retry_in,
    )
    return None if attempts is None else int(attempts)


async def mark(
    conn: Connection, delivery: uuid.UUID, token: datetime, status: str, reason: str
) -> None:
    """Close a claimed delivery without an attempt (its endpoint is gone)."""
    await conn.execute(
        """UPDATE deliveries SET status = $3, last_error = $4, claimed_until = NULL,
               updated_at = now() WHERE id = $1 AND claimed_until = $2""",
        delivery,
        token,
        status,
        reason,
    )


@dataclass(frozen=True)
class EndpointHealth:
    disabled_now: bool
    failures: int
    reason: str | None


async def endpoint_outcome(
    conn: Connection, endpoint: Endpoint, result: DeliveryResult, disable_after: int
) -> EndpointHealth:
    """Count permanent failures in a row; disable the endpoint after
    ``disable_after`` of them, or at once when it is gone. (Success resets the count
    in ``record_attempt``.)"""
    if result.outcome is not Outcome.PERMANENT or result.our_fault:
        return EndpointHealth(False, 0, None)
    reason = result.detail if result.endpoint_gone else None
    row = await conn.fetchrow(
        """WITH before AS (SELECT enabled FROM channel_endpoints WHERE id = $1 FOR UPDATE)
           UPDATE channel_endpoints e
           SET consecutive_failures = e.consecutive_failures + 1,
               enabled = e.enabled AND NOT ($2 OR e.consecutive_failures + 1 >= $3),
               disabled_reason = CASE WHEN $2 OR e.consecutive_failures + 1 >= $3
                                      THEN $4 ELSE e.disabled_reason END
           FROM before WHERE e.id = $1
           RETURNING before.enabled AS was_enabled, e.enabled, e.consecutive_failures""",
        endpoint.id,
        result.endpoint_gone,
        disable_after,
        reason or f"{disable_after} permanent failures in a row; last: {result.detail}",
    )
    if row is None:
        return EndpointHealth(False, 0, None)
    disabled_now = bool(row["was_enabled"]) and not row["enabled"]
    return EndpointHealth(
        disabled_now,
        int(row["consecutive_failures"]),
        reason or f"{row['consecutive_failures']} permanent failures in a row: {result.detail}",
    )


def with_unsubscribe(notification: Notification, url: str | None) -> Notification:
    return replace(notification, unsubscribe_url=url) if url else notification
