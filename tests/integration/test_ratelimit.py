"""Rate-limit reservations against the real PostgreSQL (services/dispatcher/ratelimit.py):
a burst of ``rate`` goes at once, then one per interval; nothing is refused."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from services.dispatcher.ratelimit import Limit, reserve, reserve_all

# generous enough that the milliseconds between statements do not matter
SLOW = Limit(3, 30.0)  # interval 10 s
TOLERANCE = 0.5


def key(name: str) -> str:
    return f"test:{name}:{uuid.uuid4().hex}"


async def test_a_burst_of_rate_goes_at_once_then_one_per_interval(pool: asyncpg.Pool) -> None:
    k = key("burst")
    async with pool.acquire() as conn:
        waits = [await reserve(conn, k, SLOW) for _ in range(SLOW.rate + 3)]
    assert waits[: SLOW.rate] == [0.0] * SLOW.rate
    for n, wait in enumerate(waits[SLOW.rate :], start=1):
        # the (rate + n)-th waits n intervals, less the few ms already gone by
        assert n * SLOW.interval - TOLERANCE < wait <= n * SLOW.interval


async def test_keys_do_not_share_a_bucket(pool: asyncpg.Pool) -> None:
    one, two = key("one"), key("two")
    async with pool.acquire() as conn:
        for _ in range(SLOW.rate):
            assert await reserve(conn, one, SLOW) == 0.0
        assert await reserve(conn, one, SLOW) > SLOW.interval - TOLERANCE
        assert await reserve(conn, two, SLOW) == 0.0


async def test_an_idle_bucket_refills(pool: asyncpg.Pool) -> None:
    quick = Limit(2, 0.4)  # interval 0.2 s
    k = key("refill")
    async with pool.acquire() as conn:
        assert [await reserve(conn, k, quick) for _ in range(2)] == [0.0, 0.0]
        assert await reserve(conn, k, quick) > 0.0
        # the third slot was taken at +0.2 s; after 0.8 s the whole burst is back
        await asyncio.sleep(0.8)
        assert [await reserve(conn, k, quick) for _ in range(2)] == [0.0, 0.0]
        assert await reserve(conn, k, quick) > 0.0


async def test_concurrent_reservations_from_many_connections_each_get_their_own_slot(
    pool: asyncpg.Pool,
) -> None:
    """Replicas share the bucket: ten reservations at once hand out ten distinct slots."""
    k = key("replicas")

    async def one() -> float:
        async with pool.acquire() as conn:
            return await reserve(conn, k, SLOW)

    waits = sorted(await asyncio.gather(*(one() for _ in range(10))))
    assert waits[: SLOW.rate] == [0.0] * SLOW.rate
    for n, wait in enumerate(waits[SLOW.rate :], start=1):
        assert n * SLOW.interval - TOLERANCE < wait <= n * SLOW.interval


async def test_reserve_all_waits_for_the_strictest_bucket_and_takes_a_slot_in_each(
    pool: asyncpg.Pool,
) -> None:
    loose, strict = key("loose"), key("strict")
    limits = {loose: Limit(100, 1.0), strict: Limit(1, 10.0)}
    async with pool.acquire() as conn:
        assert await reserve_all(conn, limits) == 0.0
        wait = await reserve_all(conn, limits)
        assert 10.0 - TOLERANCE < wait <= 10.0
        # both buckets were drawn on, twice each
        tats = await conn.fetch(
            "SELECT key FROM rate_limits WHERE key = ANY($1::text[])", [loose, strict]
        )
        assert {r["key"] for r in tats} == {loose, strict}
        assert await reserve(conn, strict, Limit(1, 10.0)) == pytest.approx(20.0, abs=TOLERANCE)


async def test_reserve_all_of_nothing_waits_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await reserve_all(conn, {}) == 0.0
