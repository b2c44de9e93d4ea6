"""Fixtures shared by integration and end-to-end tests.

Each test run gets its own PostgreSQL database and each test its own namespace on
the broker; both are removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aio_pika
import aiormq
import asyncpg
import pytest
from pydantic import SecretStr

from shared.bus import Bus, exchange_name
from shared.db import ensure_database, migrate
from shared.metrics import ServiceMetrics
from shared.runner import make_bus
from shared.settings import Settings
from tests.receivers import Receiver
from tests.support import local_chat_hosts

AMQP_URL = os.environ.get("HERALD_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
SERVER_URL = os.environ.get("HERALD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
# the tests' HERALD_SECRET_KEY; endpoints are sealed under the key derived from it
SECRET_KEY = "test-secret-key-0123456789abcdef"
# the gateway's Telegram bot, for linking chats (tests/integration/gateway.py)
TELEGRAM_BOT = "herald_test_bot"
TELEGRAM_WEBHOOK_SECRET = "test-telegram-webhook-secret"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    name = f"herald_test_{uuid.uuid4().hex[:10]}"
    url = f"{SERVER_URL}/{name}"

    async def create() -> None:
        await ensure_database(url)
        await migrate(url)

    async def drop() -> None:
        conn = await asyncpg.connect(f"{SERVER_URL}/postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    yield url
    asyncio.run(drop())


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(namespace: str, database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        amqp_url=SecretStr(AMQP_URL),
        database_url=SecretStr(database_url),
        namespace=namespace,
        data_dir=tmp_path / "var",
        secret_key=SecretStr(SECRET_KEY),
        telegram_bot_username=TELEGRAM_BOT,
        telegram_webhook_secret=SecretStr(TELEGRAM_WEBHOOK_SECRET),
        retry_delays=[0.2, 0.4],
        allow_private_urls=["127.0.0.0/8"],  # type: ignore[list-item]
        **local_chat_hosts(),
        publish_timeout=15.0,
        drain_timeout=5.0,
    )


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(database_url, min_size=1, max_size=5)
    assert p is not None
    yield p
    await p.close()


async def delete_topology(namespace: str, queues: list[str]) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        for queue in queues:
            channel = await connection.channel()
            with contextlib.suppress(aiormq.exceptions.AMQPError):
                await channel.queue_delete(queue)
        channel = await connection.channel()
        await channel.exchange_delete(exchange_name(namespace))
    finally:
        await connection.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A local HTTP server that records each request and answers it 200 with no body,
    unless the test scripts other answers (see ``tests.receivers``)."""
    async with Receiver("plain") as r:
        yield r


@pytest.fixture
async def bus_factory(settings: Settings) -> AsyncIterator[Callable[..., Bus]]:
    """Buses for this test's namespace; stopped and their queues deleted afterwards."""
    made: list[Bus] = []

    def factory(service: str = "test", **overrides: object) -> Bus:
        bus = make_bus(settings.model_copy(update=overrides), service, ServiceMetrics(service))
        made.append(bus)
        return bus

    yield factory
    for bus in made:
        await bus.stop(drain_timeout=2)
    await delete_topology(settings.namespace, [q for bus in made for q in bus.queues])
