"""The scheduler's minute ticker publishing on the real bus."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from services.scheduler.app import emit_minute_ticks
from shared.bus import Bus
from shared.events import Event, derived_id
from tests.support import eventually


async def test_minute_tick_published_at_the_boundary_with_a_deterministic_id(
    bus_factory: Callable[..., Bus],
) -> None:
    ticks: list[Event[Any]] = []

    async def on_tick(event: Event[Any]) -> None:
        ticks.append(event)

    listener = bus_factory("matcher")
    listener.subscribe("ticks", {"tick.*": on_tick})
    await listener.start(wait=10)
    scheduler = bus_factory("scheduler")
    await scheduler.start(wait=10)

    # A clock 0.2 s before 10:15 makes the ticker wait 0.2 s and publish the 10:15 slot.
    start = asyncio.get_running_loop().time()
    base = datetime(2026, 11, 23, 10, 14, 59, 800000, tzinfo=UTC)

    def clock() -> datetime:
        from datetime import timedelta

        return base + timedelta(seconds=asyncio.get_running_loop().time() - start)

    ticker = asyncio.create_task(emit_minute_ticks(scheduler, clock))
    try:
        await eventually(lambda: len(ticks) >= 1, what="a tick")
    finally:
        ticker.cancel()
    tick = ticks[0]
    slot = datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
    assert tick.type == "tick.minute"
    assert tick.data.slot == slot
    assert tick.id == derived_id("tick", "minute", slot.isoformat())
    assert asyncio.get_running_loop().time() - start >= 0.19
