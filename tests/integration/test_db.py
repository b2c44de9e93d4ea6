"""Database foundations: creation, migrations, and the processed-events claim."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from shared.db import applied_versions, ensure_database, first_time, load_migrations, migrate
from tests.conftest import SERVER_URL


async def test_database_created_once_and_migrations_applied_once() -> None:
    url = f"{SERVER_URL}/herald_test_{uuid.uuid4().hex[:10]}"
    try:
        assert await ensure_database(url) is True
        assert await ensure_database(url) is False
        first = await migrate(url)
        assert [m.version for m in first] == [m.version for m in load_migrations()]
        assert await migrate(url) == []  # a second start applies nothing
        conn = await asyncpg.connect(url)
        try:
            assert await applied_versions(conn) == {m.version for m in load_migrations()}
        finally:
            await conn.close()
    finally:
        admin = await asyncpg.connect(f"{SERVER_URL}/postgres")
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        await admin.close()


async def test_processed_event_claim_stands_or_falls_with_the_transaction(
    pool: asyncpg.Pool,
) -> None:
    event_id = str(uuid.uuid4())

    async def claim_then_fail(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            assert await first_time(conn, "tests", event_id) is True
            raise RuntimeError("the effect failed")

    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="the effect failed"):
            await claim_then_fail(conn)
        # rolled back: the event was not processed, so it may be claimed again
        async with conn.transaction():
            assert await first_time(conn, "tests", event_id) is True
        assert await first_time(conn, "tests", event_id) is False
        assert await first_time(conn, "other-consumer", event_id) is True
