"""Delayed notifications (``deliver_at``) in real time: held by the dispatcher,
released within a second of their time, and cancellable by the request's id."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from shared.bus import Bus
from shared.events import CancelNotification, RequestNotification, new_event
from tests.integration.conftest import Dispatcher, add_endpoint, publish, sign_up, until
from tests.receivers import Receiver
from tests.support import eventually, quiescent, sending

Start = Callable[..., Awaitable[Dispatcher]]


def later(user_id: str, seconds: float) -> RequestNotification:
    return RequestNotification(
        user_id=user_id,
        type="note",
        title="Your interview is tomorrow",
        body="Good luck",
        deliver_at=datetime.now(UTC) + timedelta(seconds=seconds),
    )


async def statuses(pool: asyncpg.Pool, request_id: str) -> list[tuple[str, str | None]]:
    rows = await pool.fetch(
        """SELECT d.channel, d.status, d.last_error FROM deliveries d
           JOIN notifications n ON n.id = d.notification_id
           WHERE n.source_event_id = $1 ORDER BY d.channel""",
        request_id,
    )
    return [(r["status"], r["last_error"]) for r in rows]


async def test_a_delayed_notification_arrives_within_a_second_of_its_time(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    await dispatcher()
    user_id = await sign_up(producer, pool)
    async with Receiver("webhook") as receiver:
        await add_endpoint(pool, user_id, "webhook", url=f"{receiver.url}/hook")
        loop = asyncio.get_running_loop()
        request = later(user_id, 2.0)
        assert request.deliver_at is not None
        due = loop.time() + (request.deliver_at - datetime.now(UTC)).total_seconds()
        await publish(producer, request)
        await eventually(lambda: receiver.to("/hook"), timeout=10, what="the delayed webhook")
        arrived = receiver.to("/hook")[0].at
    assert due <= arrived < due + 1.0, f"arrived {arrived - due:+.3f}s from its time"


async def test_a_cancelled_delayed_notification_never_goes_out(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    d = await dispatcher()
    user_id = await sign_up(producer, pool)
    async with Receiver("webhook") as receiver:
        await add_endpoint(pool, user_id, "webhook", url=f"{receiver.url}/hook")
        event = await publish(producer, later(user_id, 2.0))
        await until(
            pool,
            """SELECT count(*) = 3 FROM deliveries d JOIN notifications n
               ON n.id = d.notification_id WHERE n.source_event_id = $1 AND d.status = 'held'""",
            event.id,
            what="e-mail, inbox and webhook held",
        )
        # someone else cannot cancel it
        await publish(producer, CancelNotification(request_id=event.id, user_id="intruder"))
        await publish(producer, CancelNotification(request_id=event.id, user_id=user_id))
        await until(
            pool,
            """SELECT bool_and(d.status = 'dropped') FROM deliveries d JOIN notifications n
               ON n.id = d.notification_id WHERE n.source_event_id = $1""",
            event.id,
            what="held deliveries dropped",
        )
        # a wait for a time: past its own and a release round after it (every 0.5 s);
        # then for whatever that round set going to play out
        await asyncio.sleep(2.5)
        await quiescent(d.bus, also=[sending(pool, user_id)])
        assert receiver.to("/hook") == []
    assert await statuses(pool, event.id) == [("dropped", "cancelled")] * 3


async def test_a_request_that_arrives_behind_its_cancel_is_dropped_at_its_time(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    await dispatcher()
    user_id = await sign_up(producer, pool)
    async with Receiver("webhook") as receiver:
        await add_endpoint(pool, user_id, "webhook", url=f"{receiver.url}/hook")
        request = later(user_id, 1.5)
        event = new_event(request, source="tests")
        await producer.publish(
            new_event(CancelNotification(request_id=event.id, user_id=user_id), source="tests")
        )
        await until(
            pool, "SELECT true FROM cancelled_requests WHERE request_id = $1", event.id,
            what="cancellation recorded",
        )  # fmt: skip
        await producer.publish(event)
        await until(
            pool,
            """SELECT count(*) = 3 AND bool_and(d.status = 'dropped') FROM deliveries d
               JOIN notifications n ON n.id = d.notification_id WHERE n.source_event_id = $1""",
            event.id,
            what="its deliveries dropped when their time came",
        )
        assert receiver.to("/hook") == []
    assert await statuses(pool, event.id) == [("dropped", "cancelled")] * 3
