"""Rate-limit turns against the real PostgreSQL (services/dispatcher/ratelimit.py):
one slot per interval after a burst; a slot is taken only when it is near enough,
otherwise the caller learns how long to wait and takes nothing."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from services.dispatcher.ratelimit import Limit, Turn, reserve, reserve_all, reserve_many

SLOW = Limit(3, 30.0)  # interval 10 s
TOLERANCE = 0.5


def key(name: str) -> str:
    return f"test:{name}:{uuid.uuid4().hex}"


async def test_a_burst_goes_at_once_then_the_next_slot_is_one_interval_away(
    pool: asyncpg.Pool,
) -> None:
    k = key("burst")
    bursty = Limit(3, 30.0, burst=3)
    async with pool.acquire() as conn:
        turns = [await reserve(conn, k, bursty, max_wait=1.0) for _ in range(3)]
        assert turns == [Turn(True, 0.0)] * 3
        refused = await reserve(conn, k, bursty, max_wait=1.0)
    assert not refused.granted
    assert SLOW.interval - TOLERANCE < refused.wait <= SLOW.interval


async def test_a_refusal_takes_no_slot(pool: asyncpg.Pool) -> None:
    """So a message coming back later competes again instead of holding a slot far
    in the future that an urgent message would have to queue behind."""
    k = key("no-slot")
    async with pool.acquire() as conn:
        assert (await reserve(conn, k, SLOW, max_wait=1.0)).granted
        first = await reserve(conn, k, SLOW, max_wait=1.0)
        second = await reserve(conn, k, SLOW, max_wait=1.0)
    assert not first.granted
    assert not second.granted
    assert abs(first.wait - second.wait) < TOLERANCE  # the second was not pushed back


async def test_a_slot_within_max_wait_is_granted_with_its_wait(pool: asyncpg.Pool) -> None:
    quick = Limit(5, 1.0)  # interval 0.2 s
    k = key("near")
    async with pool.acquire() as conn:
        assert await reserve(conn, k, quick, max_wait=1.0) == Turn(True, 0.0)
        near = await reserve(conn, k, quick, max_wait=1.0)
    assert near.granted
    assert 0.2 - 0.1 < near.wait <= 0.2


async def test_an_idle_bucket_refills(pool: asyncpg.Pool) -> None:
    quick = Limit(2, 0.4)  # interval 0.2 s
    k = key("refill")
    async with pool.acquire() as conn:
        assert (await reserve(conn, k, quick, max_wait=0.0)).granted
        assert not (await reserve(conn, k, quick, max_wait=0.0)).granted
        await asyncio.sleep(0.3)
        assert (await reserve(conn, k, quick, max_wait=0.0)).granted


async def test_concurrent_turns_from_many_connections_never_share_a_slot(
    pool: asyncpg.Pool,
) -> None:
    """Replicas share the bucket: of ten asking at once, one gets the only slot."""
    k = key("replicas")

    async def one() -> Turn:
        async with pool.acquire() as conn:
            return await reserve(conn, k, SLOW, max_wait=1.0)

    turns = await asyncio.gather(*(one() for _ in range(10)))
    assert sum(t.granted for t in turns) == 1


async def test_reserve_all_is_granted_only_when_every_bucket_grants(pool: asyncpg.Pool) -> None:
    loose, strict = key("loose"), key("strict")
    limits = {loose: Limit(100, 1.0), strict: Limit(1, 10.0)}
    async with pool.acquire() as conn:
        assert (await reserve_all(conn, limits, max_wait=1.0)).granted
        refused = await reserve_all(conn, limits, max_wait=1.0)
        assert not refused.granted
        assert 10.0 - TOLERANCE < refused.wait <= 10.0
        assert await reserve_all(conn, {}, max_wait=1.0) == Turn(True, 0.0)


async def test_a_batch_serves_one_key_in_order_and_each_delivery_by_all_its_buckets(
    pool: asyncpg.Pool,
) -> None:
    """``reserve_many``: what ``reserve_all`` decides one by one, in one round trip."""
    shared, other = key("batch-shared"), key("batch-other")
    quick = Limit(5, 1.0)  # interval 0.2 s
    async with pool.acquire() as conn:
        turns = await reserve_many(
            conn,
            [
                {shared: quick},
                {shared: quick, other: SLOW},
                {shared: quick},
                {other: SLOW},  # its only bucket is now 10 s away: refused
                {},
            ],
            max_wait=1.0,
        )
    assert [t.granted for t in turns] == [True, True, True, False, True]
    # one key's requests are spaced one interval apart, in the order given
    assert turns[0].wait == 0.0
    assert 0.1 < turns[1].wait <= 0.2
    assert 0.3 < turns[2].wait <= 0.4
    assert SLOW.interval - TOLERANCE < turns[3].wait <= SLOW.interval
    assert turns[4] == Turn(True, 0.0)


async def test_batches_agree_with_single_turns_on_the_same_bucket(pool: asyncpg.Pool) -> None:
    k = key("mixed")
    async with pool.acquire() as conn:
        assert (await reserve_many(conn, [{k: SLOW}], max_wait=1.0))[0].granted
        assert not (await reserve(conn, k, SLOW, max_wait=1.0)).granted
        assert not (await reserve_many(conn, [{k: SLOW}], max_wait=1.0))[0].granted


async def test_concurrent_batches_over_the_same_keys_neither_deadlock_nor_overbook(
    pool: asyncpg.Pool,
) -> None:
    keys = [key(f"c{i}") for i in range(5)]
    one_each = Limit(1, 60.0)

    async def batch(order: list[str]) -> list[Turn]:
        async with pool.acquire() as conn:
            return await reserve_many(conn, [{k: one_each} for k in order], max_wait=0.0)

    results = await asyncio.gather(*(batch(keys[::step]) for step in (1, -1, 1, -1)))
    granted = sum(t.granted for turns in results for t in turns)
    assert granted == len(keys)  # one slot per key, whoever got it
