"""Rate limits per recipient and per channel endpoint, shared by every replica.

Each key keeps one timestamp in PostgreSQL, the theoretical arrival time of the
generic cell rate algorithm: a message *reserves* the next slot and learns how long
it must wait for it. Nothing is refused: excess waits its turn. ``rate`` messages
may go at once (the burst), after that one per ``per / rate`` seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.db import Connection
from shared.endpoints import Endpoint


@dataclass(frozen=True)
class Limit:
    rate: int
    per: float  # seconds

    @property
    def interval(self) -> float:
        return self.per / self.rate


# Published limits of the services (or their documented guidance); a 429 with
# Retry-After is still honoured when a provider is stricter than this.
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


def limits_for(endpoint: Endpoint, recipient: Limit | None) -> dict[str, Limit]:
    """Bucket key → limit for one delivery on ``endpoint``; ``recipient`` None leaves
    the per-recipient limit out (urgent messages), never the provider's limits."""
    keys = {f"user:{endpoint.user_id}": recipient} if recipient is not None else {}
    for scope, limit in CHANNEL_LIMITS.get(endpoint.type, {}).items():
        key = f"{endpoint.type}:{endpoint.id}" if scope == "endpoint" else endpoint.type
        keys[key] = limit
    return keys


async def reserve(conn: Connection, key: str, limit: Limit) -> float:
    """Take the next slot of ``key``; seconds until it comes (0: now)."""
    ahead = await conn.fetchval(
        """INSERT INTO rate_limits AS r (key, tat)
           VALUES ($1, clock_timestamp() + make_interval(secs => $2))
           ON CONFLICT (key) DO UPDATE
               SET tat = GREATEST(r.tat, clock_timestamp()) + make_interval(secs => $2)
           RETURNING EXTRACT(EPOCH FROM r.tat - clock_timestamp())::float8""",
        key,
        limit.interval,
    )
    return max(0.0, float(ahead) - limit.per)


async def reserve_all(conn: Connection, limits: Mapping[str, Limit]) -> float:
    """Reserve a slot in every bucket; the delivery waits for the latest of them."""
    waits = [await reserve(conn, key, limit) for key, limit in sorted(limits.items())]
    return max(waits, default=0.0)
