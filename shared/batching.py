"""Coalesce concurrent calls into one batch call.

Under load a service runs many handlers at once, each wanting one row written or
read. A round trip to PostgreSQL costs far more than a row, so calls are gathered
and run as one statement:

    load_users = Coalesced(load_many, max_size=256)
    user = await load_users(user_id)        # one caller's view: one item in, one out

A call goes out on the next pass of the event loop, with whatever calls that pass
made, as long as fewer than ``concurrency`` batches are running; otherwise it waits
for one of them to finish and goes with everything that arrived meanwhile. So a
quiet service runs batches of one without waiting for company, and a busy one
makes its batches as large as its round trips are long (up to ``max_size``) without
ever holding more than ``concurrency`` connections for them. If a batch fails, each
of its items is run again on its own, so one bad item fails only its own caller,
with its own error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BatchCall = Callable[[list[T]], Awaitable[Sequence[R]]]


class Coalesced(Generic[T, R]):
    def __init__(self, run: BatchCall[T, R], *, max_size: int = 256, concurrency: int = 1) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._run = run
        self._max_size = max_size
        self._concurrency = concurrency
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._flush_scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, item: T) -> R:
        return await self.submit(item)

    def submit(self, item: T) -> asyncio.Future[R]:
        """Join the next batch now; the future gives ``item``'s result. For a caller
        that starts a call and awaits it later: no task is made for it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if not self._flush_scheduled and len(self._running) < self._concurrency:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        loop = asyncio.get_running_loop()
        while self._waiting and len(self._running) < self._concurrency:
            batch = self._waiting[: self._max_size]
            del self._waiting[: self._max_size]
            task = loop.create_task(self._settle(batch))
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._waiting and not self._flush_scheduled:
            self._flush()

    async def _settle(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} gave {len(results)} results")
        except Exception as exc:  # handed to the callers
            if len(batch) == 1:
                _fail(batch[0][1], exc)
                return
            # one bad item must not fail its neighbours: each goes alone
            await asyncio.gather(*(self._settle([one]) for one in batch))
            return
        except BaseException as exc:  # cancelled: the callers learn it too
            for _, future in batch:
                _fail(future, exc)
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _fail(future: asyncio.Future[R], exc: BaseException) -> None:
    if future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)
