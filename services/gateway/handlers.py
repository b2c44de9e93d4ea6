"""What the gateway does with events it consumes (``gateway.users``)."""

from __future__ import annotations

import asyncpg
import structlog

from shared.bus import Bus
from shared.erasure import forget_in_queues, lock_user
from shared.events import Event, UserDeleted

from .ratelimit import KEY_PREFIX

log = structlog.get_logger("herald.gateway")


async def on_user_deleted(event: Event[UserDeleted], pool: asyncpg.Pool, bus: Bus) -> None:
    """Erasure: the gateway's own rows about the user (their saved searches and
    rate-limit buckets) and the messages about them in its own delay and parking
    queues. Everything else about them belongs to the other services, which hear
    the same event. No tombstone (``erased_users``): the gateway never checks one,
    as nothing it stores comes from an event that could be a straggler."""
    user_id = event.data.user_id
    async with pool.acquire() as conn, conn.transaction():
        await lock_user(conn, user_id)
        await conn.execute("DELETE FROM user_alerts WHERE user_id = $1", user_id)
        await conn.execute(
            "DELETE FROM rate_limits WHERE starts_with(key, $1)", f"{KEY_PREFIX}u:{user_id}:"
        )
    swept = await forget_in_queues(pool, bus, user_id)
    log.info("user_erased", user_id=user_id, messages_dropped=swept)
