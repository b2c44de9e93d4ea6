"""Wire the scheduler: a minute ticker on the bus."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import structlog

from shared.bus import Bus
from shared.errors import BusUnavailable
from shared.runner import Background, Runtime

from .ticks import next_slot, tick_event

log = structlog.get_logger("herald.scheduler")


async def emit_minute_ticks(
    bus: Bus, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> None:
    """Publish ``tick.minute`` at every minute boundary, for as long as it runs."""
    while True:
        slot = next_slot(clock())
        await asyncio.sleep(max(0.0, (slot - clock()).total_seconds()))
        try:
            await bus.publish(tick_event("minute", slot))
        except BusUnavailable as exc:
            log.warning("tick_not_published", slot=slot.isoformat(), error=str(exc))
        else:
            log.debug("tick_published", slot=slot.isoformat())


@contextlib.asynccontextmanager
async def setup(runtime: Runtime) -> AsyncIterator[list[Background]]:
    yield [emit_minute_ticks(runtime.bus)]
