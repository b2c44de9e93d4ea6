"""One active scheduler per namespace: a lease row in PostgreSQL.

Why a lease row rather than a session advisory lock: an advisory lock dies with
its connection, so a database restart (or a pool recycling a connection) would drop
leadership silently and could hand it to two replicas in turn without either
noticing. The row survives restarts; its ``expires_at`` is judged by the database's
clock alone, so replicas' clocks need not agree.

The holder renews every third of the lease; a follower tries as often, so a leader
killed with SIGKILL is replaced within ``lease + lease/3`` (under two periods).
``term`` grows at every change of holder, and every publishing transaction first
takes the lease row FOR SHARE with the term it believes in (``fence``): a deposed
leader's transaction finds the row changed and publishes nothing, and a takeover
waits until a publishing transaction in progress has committed.
"""

from __future__ import annotations

import os
import socket
import uuid

import asyncpg

from shared.db import Connection


class NotLeader(Exception):
    """This replica does not hold the lease (any more): publish nothing."""


def holder_id() -> str:
    """Unique per process: a restarted replica is a new holder with a new term."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(self, pool: asyncpg.Pool, namespace: str, holder: str, period: float) -> None:
        self.pool = pool
        self.namespace = namespace
        self.holder = holder
        self.period = period
        self.term: int | None = None

    @property
    def held(self) -> bool:
        return self.term is not None

    async def hold(self) -> bool:
        """Take the lease if it is free or ours, renewing it; whether we hold it."""
        term = await self.pool.fetchval(
            """INSERT INTO scheduler_leases AS l (namespace, holder, term, expires_at)
               VALUES ($1, $2, 1, clock_timestamp() + make_interval(secs => $3))
               ON CONFLICT (namespace) DO UPDATE
               SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
                   term = CASE WHEN l.holder = EXCLUDED.holder THEN l.term ELSE l.term + 1 END
               WHERE l.holder = EXCLUDED.holder OR l.expires_at < clock_timestamp()
               RETURNING term""",
            self.namespace,
            self.holder,
            self.period,
        )
        self.term = int(term) if term is not None else None
        return self.held

    def lost(self) -> None:
        """Forget the lease (a renewal failed): act as a follower until one succeeds."""
        self.term = None

    async def release(self) -> None:
        """Hand the lease over at once on a clean stop, instead of letting it run out."""
        if self.term is None:
            return
        await self.pool.execute(
            """UPDATE scheduler_leases SET expires_at = clock_timestamp()
               WHERE namespace = $1 AND holder = $2""",
            self.namespace,
            self.holder,
        )
        self.term = None

    async def fence(self, conn: Connection) -> None:
        """Inside a transaction: raise ``NotLeader`` unless we still hold the lease,
        and keep it from changing hands until the transaction ends."""
        if self.term is None:
            raise NotLeader("not the leader")
        ours = await conn.fetchval(
            """SELECT true FROM scheduler_leases
               WHERE namespace = $1 AND holder = $2 AND term = $3
                 AND expires_at > clock_timestamp()
               FOR SHARE""",
            self.namespace,
            self.holder,
            self.term,
        )
        if not ours:
            self.term = None
            raise NotLeader("the lease ran out or changed hands")
