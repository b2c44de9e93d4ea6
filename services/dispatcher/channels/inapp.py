"""The in-app inbox as a channel: delivering puts the notification in the inbox;
the ``notification.delivered`` event that follows is the live push the gateway
streams to open sessions."""

from __future__ import annotations

from typing import ClassVar

import asyncpg

from shared.endpoints import Endpoint

from ._base import DeliveryResult, Notification


class InAppChannel:
    name: ClassVar[str] = "inapp"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def send(self, notification: Notification, endpoint: Endpoint) -> DeliveryResult:
        found = await self._pool.fetchval(
            """UPDATE notifications SET inbox_at = COALESCE(inbox_at, now())
               WHERE id = $1 AND user_id = $2 RETURNING true""",
            notification.id,
            endpoint.user_id,
        )
        if not found:
            return DeliveryResult.permanent("notification no longer exists")
        return DeliveryResult.delivered("in inbox", provider_id=str(notification.id))
