"""What erasing a user takes in the dispatcher: their rows, their mail in the outbox,
and the messages about them in its queues.

Mail is the delicate part: a send in flight when the rows go would write its
``.eml`` after the outbox was cleared. So the erasure first locks the user's row
(no notification can be recorded for them until it commits) and every delivery of
theirs (no claim can start), and while any delivery is claimed by a send under way
it waits for that send, which a lease keeps short, instead of erasing around it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from shared.bus import Listener
from shared.db import Connection
from shared.events import Event, UserDeleted

from .mail import MailTransport

log = structlog.get_logger("herald.dispatcher")


async def sending_until(conn: Connection, user_id: str) -> datetime | None:
    """When the last send under way to ``user_id`` runs out of lease (None: none
    is). Locks the user's row and all their deliveries until the transaction ends,
    so that none can start once this says none is under way; call in the
    transaction that erases them."""
    await conn.execute("SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE", user_id)
    rows = await conn.fetch(
        """SELECT d.claimed_until > clock_timestamp() AS live, d.claimed_until
           FROM deliveries d JOIN notifications n ON n.id = d.notification_id
           WHERE n.user_id = $1
           FOR UPDATE OF d""",
        user_id,
    )
    live = [r["claimed_until"] for r in rows if r["live"]]
    return max(live) if live else None


async def erase_rows(conn: Connection, user_id: str) -> None:
    """The user and everything hanging off them: preferences, endpoints,
    notifications, deliveries (their errors too), marks, digest items, meetings and
    applications go with the user (ON DELETE CASCADE); then their rate-limit bucket."""
    await conn.execute("DELETE FROM users WHERE user_id = $1", user_id)
    await conn.execute("DELETE FROM rate_limits WHERE key = $1", f"user:{user_id}")


def forget_mail_here(mail: MailTransport) -> Listener:
    """A listener that clears this replica's outbox of an erased user's mail.

    The erasure handler runs on one replica and clears the outbox it sees; that is
    every replica's when they share a directory (docker-compose), but on Kubernetes
    each pod has a directory of its own. Every replica hears ``user.deleted`` on a
    queue of its own and clears its own. Best effort (a replica disconnected at that
    moment does not hear it), which is why the outbox is for development and an SMTP
    relay or SendGrid for production."""

    async def forget(event: Event[Any]) -> None:
        if isinstance(event.data, UserDeleted):
            removed = await mail.forget(event.data.user_id)
            if removed:
                log.info("outbox_forgotten", user_id=event.data.user_id, mails_removed=removed)

    return forget
