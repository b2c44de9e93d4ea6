"""The live stream's hub: new inbox items pushed to the sessions open on this replica.

Each gateway replica listens on a queue of its own to ``notification.delivered``
(``Bus.listen``), so whichever replica holds a user's stream hears of their
notifications, whichever dispatcher delivered them. Only in-app deliveries of users
with a session open here are looked up (one query) and handed to those sessions.

Live push is best effort: a session that falls ``BACKLOG`` items behind, or a
replica that was disconnected from the broker, misses items; clients catch up with
``GET /v1/me/notifications?since=`` after reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import structlog

from shared.events import Event, NotificationDelivered

from . import inbox
from .inbox import InboxItem

log = structlog.get_logger("herald.gateway.live")

BACKLOG = 100
INAPP = "inapp"


class LiveHub:
    def __init__(self) -> None:
        self._pool: asyncpg.Pool | None = None
        self._sessions: dict[str, set[asyncio.Queue[InboxItem]]] = defaultdict(set)

    def attach(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @property
    def sessions(self) -> int:
        return sum(len(s) for s in self._sessions.values())

    def sessions_of(self, user_id: str) -> int:
        return len(self._sessions.get(user_id, ()))

    @contextlib.asynccontextmanager
    async def session(self, user_id: str) -> AsyncIterator[asyncio.Queue[InboxItem]]:
        """A queue of ``user_id``'s new inbox items while the context is open."""
        queue: asyncio.Queue[InboxItem] = asyncio.Queue(BACKLOG)
        self._sessions[user_id].add(queue)
        try:
            yield queue
        finally:
            sessions = self._sessions.get(user_id)
            if sessions is not None:
                sessions.discard(queue)
                if not sessions:
                    del self._sessions[user_id]

    async def on_event(self, event: Event[Any]) -> None:
        data = event.data
        if not isinstance(data, NotificationDelivered) or data.channel != INAPP:
            return
        if data.user_id not in self._sessions or self._pool is None:
            return
        try:
            notification_id = uuid.UUID(data.notification_id)
        except ValueError:
            return
        async with self._pool.acquire() as conn:
            item = await inbox.one(conn, data.user_id, notification_id)
        if item is None:  # deleted (or erased) before we heard of it
            return
        for queue in list(self._sessions.get(data.user_id, ())):
            if queue.full():
                # drop the oldest: the newest matters most to someone watching
                queue.get_nowait()
            queue.put_nowait(item)
