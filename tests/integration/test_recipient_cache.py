"""Recipients kept in memory by the dispatcher: used again, never stale."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg

from services.dispatcher.app import LISTENER
from services.dispatcher.metrics import DispatcherMetrics
from services.dispatcher.recipient_cache import RecipientCache
from services.dispatcher.recipients import Recipient, load, record_user
from shared.bus import Bus
from shared.endpoints import create_endpoint
from shared.metrics import ServiceMetrics
from shared.settings import Settings
from tests.integration.conftest import (
    Dispatcher,
    add_endpoint,
    endpoint_sealer,
    publish,
    sign_up,
)
from tests.integration.test_dispatcher import request
from tests.receivers import Receiver
from tests.support import eventually, quiescent, sending

Start = Callable[..., Awaitable[Dispatcher]]


def lookups(d: Dispatcher, result: str) -> float:
    value = d.bus.metrics.registry.get_sample_value(
        "herald_recipient_lookups_total", {"service": "dispatcher", "result": result}
    )
    return value or 0.0


def titles(receiver: Receiver) -> list[str]:
    return [r.json()["data"]["title"] for r in receiver.requests]


async def listener_pid(pool: asyncpg.Pool) -> int | None:
    pid: int | None = await pool.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 "
        "AND datname = current_database()",
        LISTENER,
    )
    return pid


async def listening(pool: asyncpg.Pool) -> bool:
    return await listener_pid(pool) is not None


async def deliver(producer: Bus, user_id: str, receiver: Receiver, *titles_: str) -> None:
    """Request each of ``titles_`` in turn, each delivered before the next. Webhooks
    only: e-mail and in-app copies would spend the user's rate limit, and one held
    back by it waits in a delay queue longer than a test waits for quiet."""
    for title in titles_:
        await publish(producer, request(user_id, title=title, channels=["webhook"]))
        await eventually(lambda t=title: t in titles(receiver), what=f"{title} delivered")


async def test_a_recipient_is_read_once_and_every_change_is_honoured_at_once(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    d = await dispatcher()
    await eventually(lambda: listening(pool), what="the cache listening")
    user_id = await sign_up(producer, pool)
    async with Receiver("webhook") as old, Receiver("webhook") as new:
        first = await add_endpoint(pool, user_id, "webhook", url=f"{old.url}/hook")
        await deliver(producer, user_id, old, "one", "two", "three")
        assert lookups(d, "hit") >= 2, "later notifications are served from memory"

        # as the gateway does it: the old webhook off, a new one on
        await pool.execute("UPDATE channel_endpoints SET enabled = false WHERE id = $1", first.id)
        await add_endpoint(pool, user_id, "webhook", url=f"{new.url}/hook")
        await publish(producer, request(user_id, title="after the change", channels=["webhook"]))
        await eventually(lambda: titles(new) == ["after the change"], what="the new webhook")
        await quiescent(d.bus, also=[sending(pool, user_id)])
        assert titles(old) == ["one", "two", "three"]

        # a preference: webhooks switched off altogether
        await pool.execute(
            """INSERT INTO preferences (user_id, channels)
               VALUES ($1, '{"webhook": false}'::jsonb)
               ON CONFLICT (user_id) DO UPDATE SET channels = EXCLUDED.channels""",
            user_id,
        )
        await publish(producer, request(user_id, title="webhooks off", channels=["webhook"]))
        await eventually(
            lambda: pool.fetchval(
                "SELECT count(*) FROM notifications WHERE user_id = $1 AND title = $2",
                user_id,
                "webhooks off",
            ),
            what="the last notification recorded",
        )
        await quiescent(d.bus, also=[sending(pool, user_id)])
        assert titles(new) == ["after the change"]


async def test_a_lost_listening_connection_forgets_everything_and_comes_back(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    d = await dispatcher()
    await eventually(lambda: listening(pool), what="the cache listening")
    user_id = await sign_up(producer, pool)
    async with Receiver("webhook") as old, Receiver("webhook") as new:
        first = await add_endpoint(pool, user_id, "webhook", url=f"{old.url}/hook")
        await deliver(producer, user_id, old, "one", "two")
        assert lookups(d, "hit") >= 1

        killed = await listener_pid(pool)
        await pool.execute("SELECT pg_terminate_backend($1)", killed)
        # changes nobody announces (triggers bypassed), made while not listening:
        # the old webhook off, a new one on
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                "UPDATE channel_endpoints SET enabled = false WHERE id = $1", first.id
            )
            second = await create_endpoint(
                conn, user_id, "webhook", sealer=endpoint_sealer(), url=f"{new.url}/hook"
            )

        async def back() -> bool:
            pid = await listener_pid(pool)
            return pid is not None and pid != killed

        await eventually(back, what="listening again")
        await publish(producer, request(user_id, title="after the outage", channels=["webhook"]))
        await eventually(lambda: titles(new) == ["after the outage"], what="the new webhook")
        await quiescent(d.bus, also=[sending(pool, user_id)])
        assert titles(old) == ["one", "two"]

        # listening again: announced changes are honoured as before
        await publish(producer, request(user_id, title="cached again", channels=["webhook"]))
        await eventually(lambda: "cached again" in titles(new), what="served from memory")
        await pool.execute(
            "UPDATE channel_endpoints SET enabled = (id = $1) WHERE user_id = $2 AND type = $3",
            first.id,
            user_id,
            "webhook",
        )
        await publish(producer, request(user_id, title="back again", channels=["webhook"]))
        await eventually(lambda: "back again" in titles(old), what="the old webhook back")
        await quiescent(d.bus, also=[sending(pool, user_id)])
        assert titles(new) == ["after the outage", "cached again"]
        assert second.id != first.id


async def test_a_read_overtaken_by_a_change_is_not_kept(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """The lookup read the old endpoints; the change's announcement arrived before
    its answer: what it read must not be served to the next notification."""
    dsn = settings.database_url.get_secret_value()
    cache = RecipientCache(
        lambda: asyncpg.connect(dsn),
        DispatcherMetrics.on(ServiceMetrics("dispatcher")),
        "dispatcher",
        ttl=60,
    )
    listening = asyncio.create_task(cache.run())
    try:
        await asyncio.wait_for(cache.wait_listening(), 10)
        user_id = "u-overtaken"
        async with pool.acquire() as conn, conn.transaction():
            # one transaction: one announcement for all its rows
            await record_user(conn, user_id, "ada@example.com", "Ada", "UTC", "en")
        await eventually(lambda: cache.changes_heard == 1, what="the sign-up announced")
        reads: list[Recipient | None] = []
        read_done = asyncio.Event()

        async def slow_load(uid: str) -> Recipient | None:
            async with pool.acquire() as conn:
                found = await load(conn, endpoint_sealer(), uid)
            await read_done.wait()  # the change lands between the read and its answer
            reads.append(found)
            return found

        async def fresh_load(uid: str) -> Recipient | None:
            async with pool.acquire() as conn:
                found = await load(conn, endpoint_sealer(), uid)
            reads.append(found)
            return found

        lookup = asyncio.create_task(cache.get(user_id, slow_load))
        await asyncio.sleep(0.1)
        await pool.execute("UPDATE users SET name = 'Grace' WHERE user_id = $1", user_id)
        await eventually(lambda: cache.changes_heard == 2, what="the change announced")
        read_done.set()
        stale = await lookup
        assert stale is not None
        assert stale.name == "Ada"

        current = await cache.get(user_id, fresh_load)
        assert current is not None
        assert current.name == "Grace"
        assert len(reads) == 2, "the overtaken read was not kept"
        again = await cache.get(user_id, fresh_load)
        assert again is current, "an unchanged recipient is kept"
        assert len(reads) == 2
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
