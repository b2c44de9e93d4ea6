"""Users: who they are (``user.signed_up``, with a welcome once) and their erasure
(``user.deleted``)."""

from __future__ import annotations

import structlog

from shared.erasure import erased_since, forget_in_queues, lock_user, record_erasure
from shared.errors import Defer, Ignore
from shared.events import Event, UserDeleted, UserSignedUp

from .. import erasure, recipients
from ..planning import Draft
from ._base import IntakeDeps, on_connection, recipient_of

log = structlog.get_logger("herald.dispatcher")


async def on_user_signed_up(event: Event[UserSignedUp], deps: IntakeDeps) -> None:
    u = event.data
    async with deps.pool.acquire() as conn, conn.transaction():
        await lock_user(conn, u.user_id)
        if await erased_since(conn, u.user_id, event.trusted_time):
            raise Ignore(f"user {u.user_id!r} was erased after signing up")
        await recipients.record_user(conn, u.user_id, u.email, u.name, u.timezone, u.locale)
        recipient = await recipient_of(conn, deps, u.user_id, event.trusted_time)
        # the welcome is de-duplicated aggressively on the user: a repeated sign-up
        # (an e-mail change re-sent by the product) never welcomes twice
        planned = await deps.notify(
            on_connection(conn),
            Draft(
                event=event,
                recipient=recipient,
                kind="welcome",
                type="welcome",
                dedup_key=u.user_id,
                context={},
                id_parts=("welcome",),
            ),
        )
    await deps.hand_over(planned, event.correlation_id)
    log.info("user_recorded", user_id=u.user_id)


async def on_user_deleted(event: Event[UserDeleted], deps: IntakeDeps) -> None:
    """Erasure (``services.dispatcher.erasure``): the rows, then the outbox's mail,
    then the messages about the user in the dispatcher's delay and parking queues.
    A failure after the rows are gone retries the whole, which repeats harmlessly."""
    user_id = event.data.user_id
    async with deps.pool.acquire() as conn, conn.transaction():
        await lock_user(conn, user_id)
        busy = await erasure.sending_until(conn, user_id)
        if busy is not None:
            # a send under way would write its mail after we cleared the outbox
            wait = max((busy - deps.clock()).total_seconds(), 1.0)
            raise Defer(wait, f"a send to user {user_id!r} is under way")
        await erasure.erase_rows(conn, user_id)
        await record_erasure(conn, user_id, event.time)
    mails = await deps.mail.forget(user_id)
    swept = await forget_in_queues(deps.pool, deps.bus, user_id)
    log.info("user_erased", user_id=user_id, mails_removed=mails, messages_dropped=swept)
