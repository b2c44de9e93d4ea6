"""A delivery's row while it is sent: claimed for a lease (so a duplicate
``delivery.due`` waits instead of sending twice), let go for a rate-limit wait,
and settled with each attempt's outcome. Every write after the claim is fenced by
its token: it lands only while the claim is still the holder's."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from shared.db import Connection
from shared.endpoints import Endpoint, Unreadable, opened
from shared.sealing import Sealer

from .channels import Attachment, DeliveryResult, Notification, Outcome


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    attempts: int
    # the claim's fencing token: later writes only land while the claim is ours
    token: datetime
    # as the channel sends it: with this delivery's id
    notification: Notification
    # None: removed or disabled; Unreadable: no configured key opens it
    endpoint: Endpoint | Unreadable | None


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


async def claim(
    conn: Connection, delivery: uuid.UUID, lease: float, sealer: Sealer
) -> Claimed | Busy:
    """Take a pending delivery for ``lease`` seconds, so a duplicate ``delivery.due``
    waits instead of sending twice; a crashed holder's lease simply runs out. The
    endpoint comes with its credentials opened by ``sealer`` (``Unreadable`` when
    they do not open: this delivery's concern alone, not the message's).

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
           SELECT c.attempts, c.claimed_until, n.id, n.user_id, n.type,
                  n.title, n.body, n.html, n.link, n.data, n.priority, n.created_at,
                  n.unsubscribe_url,
                  EXISTS (SELECT 1 FROM notification_attachments a
                          WHERE a.notification_id = n.id) AS has_attachments,
                  e.id AS e_id, e.user_id AS e_user_id, e.type AS e_type, e.url AS e_url,
                  e.url_sealed AS e_url_sealed, e.secret_sealed AS e_secret_sealed,
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
        opened(
            sealer,
            id=row["e_id"],
            user_id=row["e_user_id"],
            type=row["e_type"],
            url_sealed=row["e_url_sealed"],
            secret_sealed=row["e_secret_sealed"],
            url=row["e_url"],
            secret=row["e_secret"],
            chat_id=row["e_chat_id"],
            address=row["e_address"],
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
        unsubscribe_url=n["unsubscribe_url"],
        delivery_id=delivery,
    )
    return Claimed(
        id=delivery,
        attempts=row["attempts"],
        token=row["claimed_until"],
        notification=notification,
        endpoint=e,
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
            status=other["status"],
            attempts=other["attempts"],
            error=other["last_error"],
            notification_id=other["notification_id"],
            user_id=other["user_id"],
            channel=other["channel"],
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


@dataclass(frozen=True)
class Attempt:
    """One attempt's outcome, to store against the claim that made it."""

    delivery: uuid.UUID
    token: datetime
    result: DeliveryResult
    final: bool
    retry_in: float | None = None

    @property
    def status(self) -> str:
        if self.final and self.result.outcome is Outcome.TRANSIENT:
            return "failed"
        return _STATUS[self.result.outcome]


async def record_attempts(conn: Connection, attempts: list[Attempt]) -> list[int | None]:
    """Store attempts' outcomes, in one statement: the number of attempts each
    delivery has made, or None when its claim was lost (another dispatcher took
    over after the lease ran out: its outcome stands). A transient failure on the
    ``final`` attempt fails the delivery."""
    # a success also clears its endpoint's failure count
    rows = await conn.fetch(
        """WITH outcome AS (
               SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[],
                                    $5::int[], $6::text[], $7::float8[])
               AS o(id, token, status, error, code, provider_id, retry_in)),
           d AS (
               UPDATE deliveries d
               SET attempts = d.attempts + 1, status = o.status, last_error = o.error,
                   response_status = o.code, provider_id = COALESCE(o.provider_id, d.provider_id),
                   claimed_until = NULL,
                   retry_at = clock_timestamp() + make_interval(secs => o.retry_in),
                   updated_at = now(), last_attempt_at = now(),
                   first_attempt_at = COALESCE(d.first_attempt_at, now()),
                   delivered_at = CASE WHEN o.status = 'delivered' THEN now()
                                       ELSE d.delivered_at END
               FROM outcome o
               WHERE d.id = o.id AND d.claimed_until = o.token
               RETURNING d.id, d.attempts, d.endpoint_id, o.status),
           healthy AS (
               UPDATE channel_endpoints e SET consecutive_failures = 0 FROM d
               WHERE d.status = 'delivered' AND e.id = d.endpoint_id
                 AND e.consecutive_failures > 0)
           SELECT id, attempts FROM d""",
        [a.delivery for a in attempts],
        [a.token for a in attempts],
        [a.status for a in attempts],
        [None if a.result.outcome is Outcome.DELIVERED else a.result.detail for a in attempts],
        [a.result.status_code for a in attempts],
        [a.result.provider_id for a in attempts],
        [a.retry_in for a in attempts],
    )
    made = {r["id"]: int(r["attempts"]) for r in rows}
    return [made.get(a.delivery) for a in attempts]


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
