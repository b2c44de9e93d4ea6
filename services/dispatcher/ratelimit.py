"""Rate limits per recipient and per channel endpoint, shared by every replica.

Each key keeps one timestamp in PostgreSQL, the theoretical arrival time (TAT) of
the generic cell rate algorithm: one message per ``per / rate`` seconds, with up to
``burst`` at once. A delivery takes a slot only when it is at most ``max_wait``
away; otherwise it is told how long to wait and takes nothing, so when it comes
back it competes again and the queue's priorities decide who goes next. Nothing is
refused: excess waits its turn.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from shared.batching import Coalesced
from shared.db import Connection
from shared.endpoints import Endpoint

# Waits up to this long are slept through in place; longer ones give the consumer
# slot back and return through a delay queue.
MAX_INLINE_WAIT = 1.0
# a user may get a few notifications back to back before the spacing applies
RECIPIENT_BURST = 5


@dataclass(frozen=True)
class Limit:
    rate: int
    per: float  # seconds
    burst: int = 1  # messages that may go back to back before the spacing applies

    @property
    def interval(self) -> float:
        return self.per / self.rate


# Published limits of the services (or their documented guidance). With a burst of
# one, no window of ``per`` seconds ever holds more than ``rate`` messages; a 429
# with Retry-After is still honoured when a provider is stricter than this.
CHANNEL_LIMITS: Mapping[str, Mapping[str, Limit]] = {
    # Discord: about 30 messages per minute per webhook
    "discord": {"endpoint": Limit(30, 60.0)},
    # Telegram: about 1 message per second per chat, 30 per second per bot
    "telegram": {"endpoint": Limit(1, 1.0), "channel": Limit(30, 1.0)},
    # Slack incoming webhooks: 1 message per second
    "slack": {"endpoint": Limit(1, 1.0)},
    # Teams connectors: 4 requests per second
    "teams": {"endpoint": Limit(4, 1.0)},
}


def target_key(endpoint: Endpoint) -> str:
    """The endpoint's destination, so two endpoints for one webhook or chat share a
    bucket. Hashed: a chat webhook URL is a secret and must not sit in a key."""
    target = endpoint.chat_id or endpoint.url or str(endpoint.id)
    digest = hashlib.sha256(f"{endpoint.type}\x1f{target}".encode()).hexdigest()[:24]
    return f"{endpoint.type}:{digest}"


def limits_for(endpoint: Endpoint, recipient: Limit | None) -> dict[str, Limit]:
    """Bucket key → limit for one delivery on ``endpoint``; ``recipient`` None leaves
    the per-recipient limit out (urgent messages), never the provider's limits."""
    keys = {f"user:{endpoint.user_id}": recipient} if recipient is not None else {}
    for scope, limit in CHANNEL_LIMITS.get(endpoint.type, {}).items():
        keys[target_key(endpoint) if scope == "endpoint" else endpoint.type] = limit
    return keys


@dataclass(frozen=True)
class Turn:
    """``granted``: a slot is taken and comes in ``wait`` seconds. Otherwise nothing
    was taken; ask again in ``wait`` seconds."""

    granted: bool
    wait: float


async def reserve(conn: Connection, key: str, limit: Limit, max_wait: float) -> Turn:
    """Take the next slot of ``key`` if it comes within ``max_wait`` seconds."""
    tolerance = limit.interval * limit.burst
    row = await conn.fetchrow(
        """INSERT INTO rate_limits AS r (key, tat)
           VALUES ($1, clock_timestamp() + make_interval(secs => $2::float8))
           ON CONFLICT (key) DO UPDATE
               SET tat = GREATEST(r.tat, clock_timestamp()) + make_interval(secs => $2::float8)
               WHERE GREATEST(r.tat, clock_timestamp()) + make_interval(secs => $2::float8)
                     <= clock_timestamp() + make_interval(secs => $3::float8 + $4::float8)
           RETURNING EXTRACT(EPOCH FROM r.tat - clock_timestamp())::float8 AS ahead""",
        key,
        limit.interval,
        tolerance,
        max_wait,
    )
    if row is not None:
        return Turn(True, max(0.0, float(row["ahead"]) - tolerance))
    ahead = await conn.fetchval(
        """SELECT EXTRACT(EPOCH FROM GREATEST(tat, clock_timestamp()) - clock_timestamp())
                  ::float8 FROM rate_limits WHERE key = $1""",
        key,
    )
    return Turn(False, max(0.0, float(ahead or 0.0) + limit.interval - tolerance))


async def reserve_all(conn: Connection, limits: Mapping[str, Limit], max_wait: float) -> Turn:
    """A turn in every bucket: granted only if each one grants it. A refusal after
    earlier grants leaves those slots taken; they are short and expire unused."""
    wait = 0.0
    for key, limit in sorted(limits.items()):
        turn = await reserve(conn, key, limit, max_wait)
        if not turn.granted:
            return turn
        wait = max(wait, turn.wait)
    return Turn(True, wait)


async def reserve_many(
    conn: Connection, requests: Sequence[Mapping[str, Limit]], max_wait: float
) -> list[Turn]:
    """``reserve_all`` for many deliveries in one round trip, one turn each.

    Slots are taken key by key in key order (so concurrent batches lock rows in the
    same order); requests for one key are served in the order given. A delivery
    refused by one of its buckets may still have taken slots in the others; like a
    refusal in ``reserve_all``, they are short and expire unused.
    """
    flat = sorted(
        (
            (key, index, limit)
            for index, limits in enumerate(requests)
            for key, limit in limits.items()
        ),
        key=lambda entry: (entry[0], entry[1]),
    )
    turns = [Turn(True, 0.0) for _ in requests]
    if not flat:
        return turns
    rows = await conn.fetch(
        "SELECT n, granted, wait FROM herald_reserve($1::text[], $2::float8[], $3::float8[], $4::float8[])",
        [key for key, _, _ in flat],
        [limit.interval for _, _, limit in flat],
        [limit.interval * limit.burst for _, _, limit in flat],
        [max_wait] * len(flat),
    )
    for row in rows:
        _, index, _ = flat[row["n"] - 1]
        before, turn = turns[index], Turn(bool(row["granted"]), max(0.0, float(row["wait"])))
        if not before.granted:
            turns[index] = Turn(False, max(before.wait, turn.wait if not turn.granted else 0.0))
        elif not turn.granted:
            turns[index] = turn
        else:
            turns[index] = Turn(True, max(before.wait, turn.wait))
    return turns


class RateLimiter:
    """Turns for the sends of this dispatcher: one statement reserves the slots of
    many deliveries in flight (``Coalesced``)."""

    def __init__(self, pool: asyncpg.Pool, recipient_rate_per_minute: int) -> None:
        self._recipient = Limit(recipient_rate_per_minute, 60.0, burst=RECIPIENT_BURST)

        async def reserve(requests: list[Mapping[str, Limit]]) -> list[Turn]:
            async with pool.acquire() as conn:
                return await reserve_many(conn, requests, MAX_INLINE_WAIT)

        self._reserve = Coalesced(reserve)

    def limits(self, endpoint: Endpoint, priority: str) -> dict[str, Limit]:
        # urgent messages skip the per-recipient budget (and do not use it up); the
        # provider's own limits still hold
        return limits_for(endpoint, None if priority == "urgent" else self._recipient)

    def ahead(self, endpoint: Endpoint, priority: str) -> asyncio.Future[Turn] | None:
        """Start the reservation for a send that will follow, so its round trip runs
        alongside whatever comes first (intake's record). None when nothing limits
        ``endpoint``. A reservation whose send never happens (the record found a
        duplicate, or failed) spends a slot of the recipient's budget for nothing:
        rare, and it only spaces their next message a little more."""
        limits = self.limits(endpoint, priority)
        if not limits:
            return None
        ahead = self._reserve.submit(limits)
        # nobody may await it: its failure must not be reported as never retrieved
        ahead.add_done_callback(lambda f: f.cancelled() or f.exception())
        return ahead

    async def turn(
        self, endpoint: Endpoint, priority: str, ahead: Awaitable[Turn] | None = None
    ) -> Turn:
        """The send's turn: the reservation started ``ahead``, else one made now."""
        if ahead is not None:
            return await ahead
        limits = self.limits(endpoint, priority)
        return await self._reserve(limits) if limits else Turn(True, 0.0)
