"""The gateway's queue-depth series: read at most every ``max_age`` seconds, left out
(never stale) when the broker cannot be read."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, generate_latest

from services.gateway.metrics import QueueDepths, queue_delays
from shared.bus import WorkQueueState, catalog
from shared.errors import BusUnavailable
from shared.settings import Settings
from tests.observability import sample_value

STATE = WorkQueueState("herald.matcher.jobs", messages=4, retrying=2, parked=1, consumers=3)


class Reader:
    def __init__(self, *answers: list[WorkQueueState] | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self) -> list[WorkQueueState]:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def exposition(depths: QueueDepths) -> str:
    registry = CollectorRegistry()
    registry.register(depths)
    return generate_latest(registry).decode()


async def test_each_work_queue_is_reported_by_state_with_its_consumers() -> None:
    depths = QueueDepths("gateway")
    await depths.refresh(Reader([STATE]))
    text = exposition(depths)
    queue = "herald.matcher.jobs"
    for state, value in (("ready", 4), ("retrying", 2), ("parked", 1)):
        assert sample_value(text, "herald_queue_messages", queue=queue, state=state) == value
    assert sample_value(text, "herald_queue_consumers", queue=queue, service="gateway") == 3


async def test_scrapes_within_max_age_share_one_read() -> None:
    depths = QueueDepths("gateway", max_age=60)
    reader = Reader([STATE])
    await asyncio.gather(*(depths.refresh(reader) for _ in range(5)))
    assert reader.calls == 1
    fresh = QueueDepths("gateway", max_age=0)
    reader = Reader([STATE], [])
    await fresh.refresh(reader)
    await fresh.refresh(reader)
    assert reader.calls == 2
    assert "herald_queue_messages{" not in exposition(fresh)  # the second read: no queues


async def test_an_unreadable_broker_leaves_the_series_out() -> None:
    depths = QueueDepths("gateway", max_age=0)
    await depths.refresh(Reader([STATE]))
    await depths.refresh(Reader(BusUnavailable("not connected to the broker")))
    text = exposition(depths)
    assert "# TYPE herald_queue_messages gauge" in text
    assert sample_value(text, "herald_queue_messages") is None


async def test_a_slow_broker_read_is_given_up() -> None:
    async def hangs() -> list[WorkQueueState]:
        await asyncio.sleep(60)
        return [STATE]

    depths = QueueDepths("gateway", timeout=0.05)
    await depths.refresh(hangs)
    assert sample_value(exposition(depths), "herald_queue_messages") is None


def test_every_delay_queue_is_looked_at() -> None:
    """The bus's retries, the deliveries' retries and their rate-limit deferrals."""
    settings = Settings(retry_delays=[1, 5], delivery_retry_delays=[7, 700])
    delays = queue_delays(settings)
    assert {1.0, 5.0, 7.0, 700.0} | set(catalog.DELIVERY_DEFER_STEPS) == set(delays)
    assert delays == sorted(delays)
