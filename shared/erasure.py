"""Erased users: a tombstone per ``user.deleted``.

Events about a user travel on several queues and may be retried for minutes, so a
``user.signed_up``, ``resume.upserted`` or ``notification.requested`` published before
the erasure can be handled after it. Comparing the event's time with the erasure's
keeps such stragglers from bringing the user's data back, while a genuine sign-up
under the same id afterwards still works.

Each service erases what it holds: its rows (its handler), and the messages about the
user waiting in its own delay and parking queues (``forget_in_queues``), which every
service sweeps on the ``user.deleted`` it hears on its own queue.

``erased_users`` is the one table several services write (docs/data-ownership.md):
each service that checks tombstones (dispatcher, matcher, scheduler) records one in
the transaction of its own erasure, as it cannot wait for another to hear the event
first. All write the same fact about the same event, so the row is one per user and
the writes merge (the latest time wins); the scheduler drops it after retention.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from shared.bus import Bus, about_user, sweep
from shared.db import Connection


async def lock_user(conn: Connection, user_id: str) -> None:
    """Serialise, until the transaction ends, the writes about one user that must
    not interleave with their erasure (a check for the tombstone, then a write)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"user:{user_id}")


async def record_erasure(conn: Connection, user_id: str, at: datetime) -> None:
    """The tombstone of ``user_id``, erased at ``at`` (the ``user.deleted`` event's
    time) or, if that claims a later time, when the transaction began: when Herald
    received the erasure. A producer's clock running ahead must not stretch an
    erasure over a genuine sign-up that follows it."""
    await conn.execute(
        """INSERT INTO erased_users (user_id, erased_at) VALUES ($1, LEAST($2, now()))
           ON CONFLICT (user_id) DO UPDATE
               SET erased_at = GREATEST(erased_users.erased_at, EXCLUDED.erased_at)""",
        user_id,
        at,
    )


async def erased_since(conn: Connection, user_id: str, event_time: datetime) -> bool:
    """Whether ``user_id`` was erased at or after ``event_time``: an event from
    before the erasure, which must change nothing."""
    return bool(
        await conn.fetchval(
            "SELECT true FROM erased_users WHERE user_id = $1 AND erased_at >= $2",
            user_id,
            event_time,
        )
    )


async def forget_in_queues(pool: asyncpg.Pool, bus: Bus, user_id: str) -> int:
    """Drop the messages about ``user_id`` from ``bus``'s delay and parking queues
    (``shared.bus.sweep``); how many. Call once the tombstone is committed, so that
    what comes due after the sweep is ignored by its handler.

    Sweeps of one service's queues take turns across its replicas (an advisory lock
    held for the sweep): one sweep holding a message unacked would hide it from
    another sweeping at the same time."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"sweep:{bus.namespace}.{bus.service}",
        )
        return await sweep(bus.connection, bus.holding_queues, about_user(user_id))
