"""The dispatcher in-process against the real broker and database, and the small
steps its tests share (users, endpoints, events)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from services.dispatcher.app import setup
from shared.bus import Bus
from shared.endpoints import Endpoint, create_endpoint
from shared.events import Event, Payload, UserSignedUp, new_event
from shared.runner import Runtime
from shared.sealing import Sealer, derived_key
from shared.settings import Settings
from tests.conftest import SECRET_KEY
from tests.support import eventually


@dataclass
class Dispatcher:
    bus: Bus
    settings: Settings
    tasks: list[asyncio.Task[None]]


@pytest.fixture
async def dispatcher(
    settings: Settings, pool: asyncpg.Pool, bus_factory: Callable[..., Bus]
) -> AsyncIterator[Callable[..., Awaitable[Dispatcher]]]:
    """Start the dispatcher as the service runs it (its ``setup``), with fast delivery
    retries; stopped at the end of the test."""
    # The database is shared by the whole run, and a dispatcher's releaser sweeps
    # every delivery left pending or held in it: what earlier tests left unfinished
    # would come to this test's queues (and keep them from ever being quiet) unless
    # it is settled before the test begins.
    await pool.execute(
        """UPDATE deliveries SET status = 'dropped', claimed_until = NULL,
                                 last_error = 'left by an earlier test'
           WHERE status IN ('pending', 'held')"""
    )
    async with contextlib.AsyncExitStack() as stack:
        running: list[Dispatcher] = []

        async def start(**overrides: Any) -> Dispatcher:
            values: dict[str, Any] = {
                "delivery_retry_delays": [0.2, 0.4, 0.8],
                "disable_after_failures": 2,
                "http_timeout": 2.0,
                **overrides,
            }
            s = settings.model_copy(update=values)
            bus = bus_factory("dispatcher", **values)
            runtime = Runtime("dispatcher", s, bus.metrics, bus, pool)
            background = await stack.enter_async_context(setup(runtime))
            tasks = [asyncio.create_task(work) for work in background]
            await bus.start(wait=10)
            d = Dispatcher(bus, s, tasks)
            running.append(d)
            return d

        try:
            yield start
        finally:
            for d in running:
                for task in d.tasks:
                    task.cancel()
                await asyncio.gather(*d.tasks, return_exceptions=True)
                await d.bus.stop(drain_timeout=2)


@pytest.fixture
async def producer(bus_factory: Callable[..., Bus]) -> Bus:
    bus = bus_factory("producer")
    await bus.start(wait=10)
    return bus


async def publish(bus: Bus, data: Payload, **kw: Any) -> Event[Any]:
    event = new_event(data, source="tests", **kw)
    await bus.publish(event)
    return event


async def sign_up(bus: Bus, pool: asyncpg.Pool, *, name: str = "Ada", timezone: str = "UTC") -> str:
    """A new user, known to the dispatcher when this returns; their id."""
    user_id = f"u-{uuid.uuid4().hex[:10]}"
    await publish(
        bus,
        UserSignedUp(user_id=user_id, email=f"{user_id}@example.com", name=name, timezone=timezone),
    )
    await until(pool, "SELECT true FROM users WHERE user_id = $1", user_id, what="user stored")
    return user_id


def endpoint_sealer() -> Sealer:
    """What the tests' services seal endpoints with (no HERALD_ENCRYPTION_KEYS: the
    key derived from the tests' secret key)."""
    return Sealer([derived_key(SECRET_KEY)], derived=True)


async def add_endpoint(pool: asyncpg.Pool, user_id: str, type_: str, **kw: Any) -> Endpoint:
    async with pool.acquire() as conn:
        return await create_endpoint(conn, user_id, type_, sealer=endpoint_sealer(), **kw)


async def deliveries(pool: asyncpg.Pool, user_id: str, channel: str | None = None) -> list[Any]:
    return await pool.fetch(
        """SELECT d.*, n.title, n.kind, n.type AS notification_type FROM deliveries d
           JOIN notifications n ON n.id = d.notification_id
           WHERE n.user_id = $1 AND ($2::text IS NULL OR d.channel = $2)
           ORDER BY d.created_at""",
        user_id,
        channel,
    )


async def until(
    pool: asyncpg.Pool, query: str, *args: Any, what: str, timeout: float = 15.0
) -> None:
    """Wait until ``query`` (one value) is true."""
    await eventually(lambda: pool.fetchval(query, *args), timeout=timeout, what=what)
