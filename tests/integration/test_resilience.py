"""Broker connection loss, broker restart and SIGTERM: nothing is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.bus import Bus
from shared.events import Event
from shared.settings import Settings
from tests.conftest import SECRET_KEY
from tests.support import eventually, free_port, notification, queue_depth, rabbitmqctl

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.broker_disruptive


async def test_all_connections_dropped_mid_stream_nothing_lost(
    bus_factory: Callable[..., Bus],
) -> None:
    handled: set[str] = set()

    async def handle(event: Event[Any]) -> None:
        await asyncio.sleep(0.002)
        handled.add(event.id)

    consumer = bus_factory("dispatcher")
    consumer.subscribe("notifications", {"notification.requested": handle})
    await consumer.start(wait=10)
    producer = bus_factory("gateway")
    await producer.start(wait=10)

    events: list[Event[Any]] = []
    dropped = asyncio.Event()

    async def produce() -> None:
        # Keep the stream flowing until well after the connections were dropped.
        while not dropped.is_set() or len(events) % 200:
            event = notification(user_id=f"u{len(events)}")
            events.append(event)
            await producer.publish(event)
            await asyncio.sleep(0.002)

    producing = asyncio.create_task(produce())
    await eventually(lambda: len(handled) >= 50, what="first messages")
    await asyncio.to_thread(rabbitmqctl, "close_all_connections", "herald resilience test")
    dropped.set()
    await producing  # every publish was eventually confirmed
    await eventually(lambda: len(handled) == len(events), timeout=30, what="all messages")
    assert handled == {e.id for e in events}
    assert consumer.metrics.reconnects.labels("dispatcher")._value.get() >= 1
    assert producer.metrics.reconnects.labels("gateway")._value.get() >= 1


async def test_broker_restart_every_consumer_back_and_nothing_lost(
    bus_factory: Callable[..., Bus], settings: Settings
) -> None:
    gate = asyncio.Event()
    first: set[str] = set()
    second: set[str] = set()

    async def gated(event: Event[Any]) -> None:
        await gate.wait()
        first.add(event.id)

    async def other(event: Event[Any]) -> None:
        second.add(event.id)

    consumer = bus_factory("dispatcher")
    consumer.subscribe("notifications", {"notification.requested": gated})
    consumer.subscribe("users", {"user.*": other})
    await consumer.start(wait=10)
    producer = bus_factory("gateway")
    await producer.start(wait=10)

    # In flight (unacked) when the broker goes down: must come back after restart.
    before = [notification() for _ in range(20)]
    for event in before:
        await producer.publish(event)
    await asyncio.sleep(0.3)

    await asyncio.to_thread(rabbitmqctl, "stop_app")
    try:
        await eventually(lambda: not consumer.connected, what="disconnect")
    finally:
        await asyncio.to_thread(rabbitmqctl, "start_app")
    await eventually(
        lambda: consumer.connected and producer.connected, timeout=60, what="reconnect"
    )
    gate.set()

    after = [notification() for _ in range(20)]
    for event in after:
        await producer.publish(event)
    from shared.events import UserDeleted, new_event

    user_events = [new_event(UserDeleted(user_id=f"u{i}"), source="tests") for i in range(5)]
    for event in user_events:
        await producer.publish(event)

    await eventually(lambda: first == {e.id for e in before + after}, timeout=30, what="work queue")
    await eventually(lambda: second == {e.id for e in user_events}, what="second consumer")
    assert await queue_depth(settings.amqp_url.get_secret_value(), consumer.queues[0]) == 0


def _start_worker(
    settings: Settings, journal: Path, seconds: float, drain: float
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HERALD_AMQP_URL": settings.amqp_url.get_secret_value(),
        "HERALD_DATABASE_URL": settings.database_url.get_secret_value(),
        "HERALD_NAMESPACE": settings.namespace,
        "HERALD_DATA_DIR": str(settings.data_dir),
        "HERALD_SECRET_KEY": SECRET_KEY,
        "HERALD_DISPATCHER_METRICS_PORT": str(free_port()),
        "HERALD_DRAIN_TIMEOUT": str(drain),
        "HERALD_RETRY_DELAYS": ",".join(str(d) for d in settings.retry_delays),
        "SLOW_WORKER_JOURNAL": str(journal),
        "SLOW_WORKER_SECONDS": str(seconds),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.slow_worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _journal(path: Path, verb: str) -> set[str]:
    if not path.exists():
        return set()
    return {line.split()[1] for line in path.read_text().splitlines() if line.startswith(verb)}


@pytest.mark.parametrize(
    ("handle_seconds", "drain_timeout", "finish_in_flight"),
    [(1.0, 10.0, True), (30.0, 0.5, False)],
    ids=["in-flight-finish", "in-flight-return-to-queue"],
)
async def test_sigterm_with_messages_in_flight_loses_nothing(
    bus_factory: Callable[..., Bus],
    settings: Settings,
    tmp_path: Path,
    handle_seconds: float,
    drain_timeout: float,
    finish_in_flight: bool,
) -> None:
    journal = tmp_path / "journal"
    producer = bus_factory("gateway")
    await producer.start(wait=10)
    # Declare the worker's queue the way the worker will, so nothing published
    # before it is up can miss it (and so the fixture deletes it afterwards).
    declarer = bus_factory("dispatcher")
    declarer.subscribe("work", {"notification.requested": _never})
    await declarer.start(wait=10)
    await declarer.stop(0)

    events = [notification() for _ in range(12)]
    for event in events:
        await producer.publish(event)
    worker = _start_worker(settings, journal, handle_seconds, drain_timeout)
    try:
        await eventually(
            lambda: len(_journal(journal, "started")) == 5, timeout=30, what="prefetch"
        )
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 30)
    finally:
        if worker.poll() is None:
            worker.kill()
        output = worker.stdout.read().decode() if worker.stdout else ""
    assert code == 0, output
    started, done = _journal(journal, "started"), _journal(journal, "done")
    waiting = await queue_depth(settings.amqp_url.get_secret_value(), declarer.queues[0])
    if finish_in_flight:
        assert done == started
        assert len(done) == 5
    else:
        assert done == set()
    # every message is either finished or back in the queue; none is lost
    assert len(done) + waiting == len(events), output


async def _never(event: Event[Any]) -> None:
    raise AssertionError("the declaring bus never consumes")
