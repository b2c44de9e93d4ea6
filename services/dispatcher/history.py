"""The notification history: notifications, one delivery row per notification by
endpoint, and every attempt's outcome. The dispatcher's only writer of these rows."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from shared.db import Connection
from shared.endpoints import Endpoint, Unreadable, opened
from shared.sealing import Sealer

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


@dataclass(frozen=True)
class Entry:
    """One notification to record: its deliveries (endpoint, held until) and its
    de-duplication mark ``(subject, content key, repeat after)``. With ``claim``
    set, the deliveries due now are recorded claimed for that many seconds, for the
    recording dispatcher to send at once."""

    draft: Draft
    plan: list[tuple[Endpoint, datetime | None]]
    dedup: tuple[str, str, timedelta | None] | None
    source_event_id: str
    correlation_id: str
    claim: float | None = None


@dataclass(frozen=True)
class Recorded:
    # "created", "existing" (recorded before: a redelivered event) or "duplicate"
    # (the de-duplication mark refused it)
    outcome: str
    # delivery id -> its claim's fencing token, for the deliveries recorded claimed
    claims: dict[uuid.UUID, datetime]
    # "existing": its deliveries still pending (to finish what a crash interrupted)
    pending: list[Due] = field(default_factory=list)


async def record(
    conn: Connection,
    draft: Draft,
    plan: list[tuple[Endpoint, datetime | None]],
    *,
    dedup: tuple[str, str, timedelta | None] | None,
    source_event_id: str,
    correlation_id: str,
) -> str:
    """Record one notification and its deliveries: "created", "existing" or
    "duplicate" (see ``record_many``)."""
    entry = Entry(draft, plan, dedup, source_event_id, correlation_id)
    return (await record_many(conn, [entry]))[0].outcome


async def record_many(conn: Connection, entries: list[Entry]) -> list[Recorded]:
    """Record notifications with their de-duplication marks and deliveries, each
    once, in as few statements as the batch allows (one, unless two entries share
    a notification or a mark: those go in a later statement, so the second sees
    the first). Those with a ``not_before`` are held until then."""
    results: list[Recorded | None] = [None] * len(entries)
    todo = list(range(len(entries)))
    while todo:
        now_ids: set[uuid.UUID] = set()
        now_marks: set[tuple[str, str, str, str]] = set()
        this_round, later = [], []
        for i in todo:
            e = entries[i]
            n = e.draft.notification
            mark = (n.user_id, n.type, e.dedup[0], e.dedup[1]) if e.dedup else None
            if n.id in now_ids or (mark is not None and mark in now_marks):
                later.append(i)
                continue
            now_ids.add(n.id)
            if mark is not None:
                now_marks.add(mark)
            this_round.append(i)
        for i, recorded in zip(
            this_round, await _record_round(conn, [entries[i] for i in this_round]), strict=True
        ):
            results[i] = recorded
        todo = later
    done = [r for r in results if r is not None]
    assert len(done) == len(entries)
    existing = [
        e.draft.notification.id
        for e, r in zip(entries, done, strict=True)
        if r.outcome == "existing"
    ]
    if existing:
        still = await pending_many(conn, existing)
        done = [
            replace(r, pending=still.get(e.draft.notification.id, []))
            if r.outcome == "existing"
            else r
            for e, r in zip(entries, done, strict=True)
        ]
    for entry, recorded in zip(entries, done, strict=True):
        n = entry.draft.notification
        if recorded.outcome == "created" and n.attachments:
            await conn.executemany(
                """INSERT INTO notification_attachments
                       (notification_id, filename, content_type, content)
                   VALUES ($1, $2, $3, $4)""",
                [(n.id, a.filename, a.content_type, a.content) for a in n.attachments],
            )
    return done


async def _record_round(conn: Connection, entries: list[Entry]) -> list[Recorded]:
    notifications = [e.draft.notification for e in entries]
    deliveries = [
        (e.draft.notification.id, endpoint, hold, e.claim is not None and hold is None)
        for e in entries
        for endpoint, hold in e.plan
    ]
    lease = max((e.claim for e in entries if e.claim is not None), default=0.0)
    rows = await conn.fetch(
        """WITH input AS (
               SELECT * FROM unnest(
                   $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                   $7::float8[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                   $13::text[], $14::text[], $15::text[], $16::timestamptz[], $17::text[],
                   $18::text[], $19::interval[])
               AS i(id, user_id, type, kind, subject, job_id, score, title, body, html, link,
                    data, priority, source_event_id, correlation_id, created_at, mark_subject,
                    content_key, repeat_after)),
           existing AS (SELECT n.id FROM notifications n JOIN input i ON i.id = n.id),
           marked AS (
               INSERT INTO dedup_marks AS m (user_id, type, subject, content_hash, repeat_after)
               SELECT i.user_id, i.type, i.mark_subject, i.content_key, i.repeat_after
               FROM input i
               WHERE i.content_key IS NOT NULL AND i.id NOT IN (SELECT id FROM existing)
               ON CONFLICT (user_id, type, subject, content_hash) DO UPDATE
                   SET sent_at = now(), repeat_after = EXCLUDED.repeat_after
                   WHERE EXCLUDED.repeat_after IS NOT NULL
                     AND m.sent_at <= now() - EXCLUDED.repeat_after
               RETURNING m.user_id, m.type, m.subject, m.content_hash),
           go AS (
               SELECT i.* FROM input i
               WHERE i.id NOT IN (SELECT id FROM existing)
                 AND (i.content_key IS NULL OR EXISTS (
                     SELECT 1 FROM marked m
                     WHERE m.user_id = i.user_id AND m.type = i.type
                       AND m.subject = i.mark_subject AND m.content_hash = i.content_key))),
           inserted AS (
               INSERT INTO notifications
                   (id, user_id, type, kind, subject, job_id, score, title, body, html, link,
                    data, priority, source_event_id, correlation_id, created_at)
               SELECT id, user_id, type, kind, subject, job_id, score, title, body, html, link,
                      data::jsonb, priority, source_event_id, correlation_id, created_at
               FROM go
               RETURNING id, priority),
           planned AS (
               INSERT INTO deliveries
                   (id, notification_id, endpoint_id, channel, status, not_before, priority,
                    claimed_until)
               SELECT p.id, p.notification_id, p.endpoint_id, p.channel,
                      CASE WHEN p.hold IS NULL THEN 'pending' ELSE 'held' END, p.hold,
                      g.priority,
                      CASE WHEN p.claim
                           THEN clock_timestamp() + make_interval(secs => $26::float8) END
               FROM unnest($20::uuid[], $21::uuid[], $22::uuid[], $23::text[],
                           $24::timestamptz[], $25::bool[])
                    AS p(notification_id, id, endpoint_id, channel, hold, claim)
               JOIN inserted g ON g.id = p.notification_id
               ON CONFLICT DO NOTHING
               RETURNING id, claimed_until)
           SELECT i.id, i.id IN (SELECT id FROM existing) AS existed,
                  i.id IN (SELECT id FROM go) AS created, NULL::timestamptz AS token
           FROM input i
           UNION ALL
           SELECT id, NULL, NULL, claimed_until FROM planned WHERE claimed_until IS NOT NULL""",
        [n.id for n in notifications],
        [n.user_id for n in notifications],
        [n.type for n in notifications],
        [e.draft.kind for e in entries],
        [e.draft.subject for e in entries],
        [e.draft.job_id for e in entries],
        [e.draft.score for e in entries],
        [n.title for n in notifications],
        [n.body for n in notifications],
        [n.html for n in notifications],
        [n.link for n in notifications],
        [json.dumps(n.data, default=str) for n in notifications],
        [n.priority for n in notifications],
        [e.source_event_id for e in entries],
        [e.correlation_id for e in entries],
        [n.created_at for n in notifications],
        [e.dedup[0] if e.dedup else None for e in entries],
        [e.dedup[1] if e.dedup else None for e in entries],
        [e.dedup[2] if e.dedup else None for e in entries],
        [nid for nid, _, _, _ in deliveries],
        [delivery_id(nid, endpoint.id) for nid, endpoint, _, _ in deliveries],
        [endpoint.id for _, endpoint, _, _ in deliveries],
        [endpoint.type for _, endpoint, _, _ in deliveries],
        [hold for _, _, hold, _ in deliveries],
        [claim for _, _, _, claim in deliveries],
        lease,
    )
    outcomes: dict[uuid.UUID, str] = {}
    tokens: dict[uuid.UUID, datetime] = {}
    for row in rows:
        if row["token"] is not None:
            tokens[row["id"]] = row["token"]
        else:
            outcomes[row["id"]] = (
                "existing" if row["existed"] else "created" if row["created"] else "duplicate"
            )
    return [
        Recorded(
            outcomes[n.id],
            {
                d: tokens[d]
                for d in (delivery_id(n.id, endpoint.id) for endpoint, _ in e.plan)
                if d in tokens
            },
        )
        for e, n in zip(entries, notifications, strict=True)
    ]


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
    return (await pending_many(conn, [notification_id])).get(notification_id, [])


async def pending_many(
    conn: Connection, notification_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[Due]]:
    rows = await conn.fetch(
        """SELECT d.id, d.notification_id, d.channel, d.priority, n.user_id FROM deliveries d
           JOIN notifications n ON n.id = d.notification_id
           WHERE d.notification_id = ANY($1::uuid[]) AND d.status = 'pending'""",
        notification_ids,
    )
    found: dict[uuid.UUID, list[Due]] = {}
    for r in rows:
        found.setdefault(r["notification_id"], []).append(
            Due(r["id"], r["notification_id"], r["user_id"], r["channel"], r["priority"])
        )
    return found


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    attempts: int
    # the claim's fencing token: later writes only land while the claim is ours
    token: datetime
    notification: Notification
    kind: str
    job_id: str | None
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
           SELECT c.attempts, c.claimed_until, n.id, n.user_id, n.type, n.kind, n.job_id,
                  n.title, n.body, n.html, n.link, n.data, n.priority, n.created_at,
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
    return (await record_attempts(conn, [Attempt(delivery, token, result, final, retry_in)]))[0]


async def record_attempts(conn: Connection, attempts: list[Attempt]) -> list[int | None]:
    """``record_attempt`` for many deliveries in one statement."""
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
