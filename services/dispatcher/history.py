"""The notification history as intake records it: one notification, its
de-duplication mark and a delivery row per endpoint, each once (the dispatcher is
the only writer of these rows). ``claims.py`` holds what happens to a delivery's row
while it is sent."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime

from shared.db import Connection
from shared.endpoints import Endpoint

from .channels import Notification
from .policy import DedupRule


@dataclass(frozen=True)
class Send:
    """One delivery a plan makes: its id, its endpoint and, when held (quiet hours,
    a requested send time), until when."""

    id: uuid.UUID
    endpoint: Endpoint
    held_until: datetime | None = None


@dataclass(frozen=True)
class Due:
    """A delivery ready to go now: what ``delivery.due`` carries."""

    id: uuid.UUID
    notification_id: uuid.UUID
    user_id: str
    channel: str
    priority: str


@dataclass(frozen=True)
class Plan:
    """One notification to record, as ``planning.Planner.plan`` decided it: rendered,
    with its deliveries (``sends``) and de-duplication rule (``dedup``: None for
    none). With ``claim`` set, the deliveries due now are recorded claimed for that
    many seconds, for the recording dispatcher to send at once."""

    notification: Notification
    # the template and preference category
    kind: str
    # what de-duplication compares (a job, an application, a meeting)
    dedup_key: str
    sends: tuple[Send, ...]
    dedup: DedupRule | None
    source_event_id: str
    correlation_id: str
    job_id: str | None = None
    score: float | None = None
    claim: float | None = None

    def due(self) -> list[Due]:
        """The deliveries that are not held: due as soon as the plan is recorded."""
        n = self.notification
        return [
            Due(
                id=s.id,
                notification_id=n.id,
                user_id=n.user_id,
                channel=s.endpoint.type,
                priority=n.priority,
            )
            for s in self.sends
            if s.held_until is None
        ]


async def notification_exists(conn: Connection, notification_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval("SELECT true FROM notifications WHERE id = $1", notification_id)
    )


@dataclass(frozen=True)
class Recorded:
    # "created", "existing" (recorded before: a redelivered event) or "duplicate"
    # (the de-duplication mark refused it)
    outcome: str
    # delivery id -> its claim's fencing token, for the deliveries recorded claimed
    claims: dict[uuid.UUID, datetime]
    # "existing": its deliveries still pending (to finish what a crash interrupted)
    pending: list[Due] = field(default_factory=list)


async def record_many(conn: Connection, plans: list[Plan]) -> list[Recorded]:
    """Record notifications with their de-duplication marks and deliveries, each
    once, in as few statements as the batch allows (one, unless two plans share
    a notification or a mark: those go in a later statement, so the second sees
    the first). Those with a ``not_before`` are held until then."""
    results: list[Recorded | None] = [None] * len(plans)
    todo = list(range(len(plans)))
    while todo:
        now_ids: set[uuid.UUID] = set()
        now_marks: set[tuple[str, str, str, str]] = set()
        this_round, later = [], []
        for i in todo:
            e = plans[i]
            n = e.notification
            mark = (n.user_id, n.type, e.dedup_key, e.dedup.content_key) if e.dedup else None
            if n.id in now_ids or (mark is not None and mark in now_marks):
                later.append(i)
                continue
            now_ids.add(n.id)
            if mark is not None:
                now_marks.add(mark)
            this_round.append(i)
        for i, recorded in zip(
            this_round, await _record_round(conn, [plans[i] for i in this_round]), strict=True
        ):
            results[i] = recorded
        todo = later
    done = [r for r in results if r is not None]
    assert len(done) == len(plans)
    existing = [
        e.notification.id for e, r in zip(plans, done, strict=True) if r.outcome == "existing"
    ]
    if existing:
        still = await pending_many(conn, existing)
        done = [
            replace(r, pending=still.get(e.notification.id, [])) if r.outcome == "existing" else r
            for e, r in zip(plans, done, strict=True)
        ]
    for plan, recorded in zip(plans, done, strict=True):
        n = plan.notification
        if recorded.outcome == "created" and n.attachments:
            await conn.executemany(
                """INSERT INTO notification_attachments
                       (notification_id, filename, content_type, content)
                   VALUES ($1, $2, $3, $4)""",
                [(n.id, a.filename, a.content_type, a.content) for a in n.attachments],
            )
    return done


async def _record_round(conn: Connection, plans: list[Plan]) -> list[Recorded]:
    notifications = [e.notification for e in plans]
    deliveries = [
        (e.notification.id, s, e.claim is not None and s.held_until is None)
        for e in plans
        for s in e.sends
    ]
    lease = max((e.claim for e in plans if e.claim is not None), default=0.0)
    rows = await conn.fetch(
        """WITH input AS (
               SELECT * FROM unnest(
                   $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                   $7::float8[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                   $13::text[], $14::text[], $15::text[], $16::timestamptz[], $17::text[],
                   $18::text[], $19::interval[], $27::text[])
               AS i(id, user_id, type, kind, subject, job_id, score, title, body, html, link,
                    data, priority, source_event_id, correlation_id, created_at, mark_subject,
                    content_key, repeat_after, unsubscribe_url)),
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
                    data, priority, source_event_id, correlation_id, created_at,
                    unsubscribe_url)
               SELECT id, user_id, type, kind, subject, job_id, score, title, body, html, link,
                      data::jsonb, priority, source_event_id, correlation_id, created_at,
                      unsubscribe_url
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
        [e.kind for e in plans],
        [e.dedup_key for e in plans],
        [e.job_id for e in plans],
        [e.score for e in plans],
        [n.title for n in notifications],
        [n.body for n in notifications],
        [n.html for n in notifications],
        [n.link for n in notifications],
        [json.dumps(n.data, default=str) for n in notifications],
        [n.priority for n in notifications],
        [e.source_event_id for e in plans],
        [e.correlation_id for e in plans],
        [n.created_at for n in notifications],
        [e.dedup_key if e.dedup else None for e in plans],
        [e.dedup.content_key if e.dedup else None for e in plans],
        [e.dedup.repeat_after if e.dedup else None for e in plans],
        [nid for nid, _, _ in deliveries],
        [s.id for _, s, _ in deliveries],
        [s.endpoint.id for _, s, _ in deliveries],
        [s.endpoint.type for _, s, _ in deliveries],
        [s.held_until for _, s, _ in deliveries],
        [claim for _, _, claim in deliveries],
        lease,
        [n.unsubscribe_url for n in notifications],
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
        Recorded(outcomes[n.id], {s.id: tokens[s.id] for s in e.sends if s.id in tokens})
        for e, n in zip(plans, notifications, strict=True)
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
            Due(
                id=r["id"],
                notification_id=r["notification_id"],
                user_id=r["user_id"],
                channel=r["channel"],
                priority=r["priority"],
            )
        )
    return found
