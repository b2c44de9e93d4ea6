"""shared.batching.Coalesced: concurrent calls share one batch call; a failing batch
fails only the items that fail on their own."""

from __future__ import annotations

import asyncio

import pytest

from shared.batching import Coalesced


class Recorder:
    def __init__(self, bad: set[int] | None = None) -> None:
        self.batches: list[list[int]] = []
        self.bad = bad or set()

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(0)
        if self.bad & set(items):
            raise ValueError(f"bad item in {items}")
        return [i * 10 for i in items]


async def test_calls_made_together_run_as_one_batch_and_each_gets_its_own_result() -> None:
    run = Recorder()
    double = Coalesced(run)
    assert await asyncio.gather(*(double(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert run.batches == [[0, 1, 2, 3, 4]]


async def test_a_lone_call_runs_at_once_as_a_batch_of_one() -> None:
    run = Recorder()
    double = Coalesced(run)
    assert await double(7) == 70
    assert await double(8) == 80
    assert run.batches == [[7], [8]]


async def test_batches_never_exceed_the_maximum_size() -> None:
    run = Recorder()
    double = Coalesced(run, max_size=2)
    assert await asyncio.gather(*(double(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert [len(b) for b in run.batches] == [2, 2, 1]


async def test_one_bad_item_fails_only_its_own_caller() -> None:
    run = Recorder(bad={2})
    double = Coalesced(run)
    results = await asyncio.gather(*(double(i) for i in range(4)), return_exceptions=True)
    assert results[:2] == [0, 10]
    assert isinstance(results[2], ValueError)
    assert results[3] == 30
    # the batch failed, then each item went alone
    assert run.batches[0] == [0, 1, 2, 3]
    assert sorted(run.batches[1:]) == [[0], [1], [2], [3]]


async def test_a_batch_call_giving_the_wrong_number_of_results_is_an_error() -> None:
    async def short(items: list[int]) -> list[int]:
        return []

    with pytest.raises(RuntimeError, match="gave 0 results"):
        await Coalesced(short)(1)


async def test_a_cancelled_caller_does_not_break_the_batch_for_the_others() -> None:
    release = asyncio.Event()

    async def slow(items: list[int]) -> list[int]:
        await release.wait()
        return items

    echo = Coalesced(slow)
    first = asyncio.create_task(echo(1))
    second = asyncio.create_task(echo(2))
    await asyncio.sleep(0.01)
    first.cancel()
    release.set()
    assert await second == 2
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_calls_made_while_the_batches_run_wait_and_go_together() -> None:
    """At most ``concurrency`` batches at a time (each holds a connection); what
    arrives meanwhile goes as one batch as soon as one of them finishes."""
    release = asyncio.Event()
    batches: list[list[int]] = []

    async def held(items: list[int]) -> list[int]:
        batches.append(list(items))
        await release.wait()
        return items

    echo = Coalesced(held, concurrency=2)
    first = [asyncio.create_task(echo(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    second = [asyncio.create_task(echo(i)) for i in (3, 4)]
    await asyncio.sleep(0)
    third = [asyncio.create_task(echo(i)) for i in (5, 6, 7)]
    await asyncio.sleep(0.01)
    assert batches == [[1, 2], [3, 4]]  # the third group waits for a free batch
    release.set()
    assert await asyncio.gather(*first, *second, *third) == [1, 2, 3, 4, 5, 6, 7]
    assert batches == [[1, 2], [3, 4], [5, 6, 7]]


async def test_a_submitted_item_joins_the_batch_of_the_calls_made_with_it() -> None:
    run = Recorder(bad={3})
    double = Coalesced(run)
    early = double.submit(1)  # started before anyone awaits it
    failing = double.submit(3)
    assert await double(2) == 20
    assert run.batches[0] == [1, 3, 2]
    assert await early == 10
    with pytest.raises(ValueError, match="bad item"):
        await failing
