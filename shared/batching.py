"""Coalesce concurrent calls into one batch call.

Under load a service runs many handlers at once, each wanting one row written or
read. A round trip to PostgreSQL costs far more than a row, so calls made while the
event loop is busy are gathered and run as one statement:

    load_users = Coalesced(load_many, max_size=256)
    user = await load_users(user_id)        # one caller's view: one item in, one out

Calls made in the same pass of the event loop (up to ``max_size``), or within
``linger`` seconds of the first, form a batch; a quiet service therefore runs
batches of one, waiting at most ``linger``. If a batch fails, each of its items is
run again on its own, so one bad item fails only its own caller, with its own error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BatchCall = Callable[[list[T]], Awaitable[Sequence[R]]]


class Coalesced(Generic[T, R]):
    def __init__(self, run: BatchCall[T, R], *, max_size: int = 256, linger: float = 0.0) -> None:
        self._run = run
        self._max_size = max_size
        self._linger = linger
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._flush_scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if len(self._waiting) >= self._max_size:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            if self._linger > 0:
                loop.call_later(self._linger, self._flush)
            else:
                loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._waiting = self._waiting, []
        if not batch:
            return
        task = asyncio.get_running_loop().create_task(self._settle(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

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
