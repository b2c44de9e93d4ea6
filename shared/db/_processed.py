"""The processed-events record that makes consumers idempotent."""

from __future__ import annotations

from ._database import Connection


async def first_time(conn: Connection, consumer: str, event_id: str) -> bool:
    """Claim ``event_id`` for ``consumer``; False if it was already processed.

    Call it inside the transaction that commits the handler's effects, so the claim
    and the effects stand or fall together.
    """
    claimed = await conn.fetchval(
        """INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)
           ON CONFLICT DO NOTHING RETURNING true""",
        consumer,
        event_id,
    )
    return bool(claimed)
