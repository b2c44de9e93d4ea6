"""Bus throughput: our layer against raw aio-pika, in the same run, on the same broker.

Both sides move the same persistent CloudEvents with publisher confirms, and both
validate what they consume, so the difference is what the bus layer itself adds:
confirm-or-retry publishing, metrics, per-message context, the consumer wrapper.

Publish: ``--messages`` events with ``--window`` publishes in flight, each awaited
until the broker confirms it, routed to a durable queue so they reach disk. Both
sides send the same bytes and properties, so the wire carries identical messages.
Consume: a queue preloaded with ``--messages`` events is drained by a consumer with
the same prefetch, which parses each event and acks it after the handler returns;
the clock runs from the first delivery to the last, so connecting and declaring
(a fixed cost, larger for the bus, which declares its retry queues) do not count.

Runs alternate which side goes first and the figures are medians over ``--runs``.

    python bench/bus.py [--messages 10000] [--runs 5] [--window 256] [--prefetch 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika

from shared.bus import Bus, QueueNames
from shared.bus._topology import declare_exchange, declare_work_queue
from shared.events import CONTENT_TYPE, Event, UserDeleted, UserSignedUp, new_event, parse_event
from shared.logging import configure_logging
from shared.metrics import ServiceMetrics

AMQP_URL = os.environ.get("HERALD_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
RETRY_DELAYS = (1.0, 5.0)
CONSUMED_TYPE = "user.signed_up"
PUBLISHED_TYPE = "user.deleted"


@dataclass
class Config:
    messages: int
    runs: int
    window: int
    prefetch: int
    namespace: str = field(default_factory=lambda: f"bench{uuid.uuid4().hex[:8]}")

    @property
    def sink(self) -> str:
        return f"{self.namespace}.sink"

    @property
    def raw_queue(self) -> str:
        return f"{self.namespace}.raw"

    @property
    def ours(self) -> QueueNames:
        return QueueNames.of(self.namespace, "bench", "consume")


def deleted_events(n: int) -> list[Event[Any]]:
    return [new_event(UserDeleted(user_id=f"u{i}"), source="bench") for i in range(n)]


def signed_up_bodies(n: int) -> list[bytes]:
    return [
        new_event(
            UserSignedUp(user_id=f"u{i}", email=f"u{i}@example.com"), source="bench"
        ).to_json()
        for i in range(n)
    ]


def new_bus(cfg: Config) -> Bus:
    return Bus(
        amqp_url=AMQP_URL,
        namespace=cfg.namespace,
        service="bench",
        metrics=ServiceMetrics("bench"),
        retry_delays=RETRY_DELAYS,
        prefetch=cfg.prefetch,
        publish_timeout=60,
    )


async def in_windows(items: list[Any], window: int, fn: Callable[[Any], Awaitable[None]]) -> None:
    for start in range(0, len(items), window):
        await asyncio.gather(*(fn(item) for item in items[start : start + window]))


# -- publish ------------------------------------------------------------------


async def publish_ours(cfg: Config, events: list[Event[Any]]) -> float:
    bus = new_bus(cfg)
    await bus.start(wait=10)
    try:
        started = time.perf_counter()
        await in_windows(events, cfg.window, bus.publish)
        return time.perf_counter() - started
    finally:
        await bus.stop()


async def publish_raw(cfg: Config, events: list[Event[Any]]) -> float:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_exchange(channel, cfg.namespace)

        async def publish(event: Event[Any]) -> None:
            message = aio_pika.Message(
                body=event.to_json(),
                content_type=CONTENT_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=event.id,
                correlation_id=event.correlation_id,
                type=event.type,
                timestamp=event.time,
                app_id="herald-bench",
            )
            await exchange.publish(message, routing_key=event.type)

        started = time.perf_counter()
        await in_windows(events, cfg.window, publish)
        return time.perf_counter() - started
    finally:
        await connection.close()


# -- consume ------------------------------------------------------------------


class Stopwatch:
    """Seconds from the first delivery to the ``n``-th handled message."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = 0
        self.started: float | None = None
        self.done = asyncio.Event()

    def start(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def tick(self) -> None:
        self.start()
        self.seen += 1
        if self.seen == self.n:
            self.finished = time.perf_counter()
            self.done.set()

    async def result(self) -> float:
        await asyncio.wait_for(self.done.wait(), 300)
        assert self.started is not None
        return self.finished - self.started


async def consume_ours(cfg: Config) -> float:
    clock = Stopwatch(cfg.messages)

    async def handle(event: Event[Any]) -> None:
        clock.tick()

    bus = new_bus(cfg)
    bus.subscribe("consume", {CONSUMED_TYPE: handle})
    await bus.start()
    try:
        return await clock.result()
    finally:
        await bus.stop()


async def consume_raw(cfg: Config) -> float:
    clock = Stopwatch(cfg.messages)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        clock.start()
        parse_event(message.body)
        await message.ack()
        clock.tick()

    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=cfg.prefetch)
        queue = await channel.declare_queue(cfg.raw_queue, durable=True)
        await queue.consume(on_message)
        return await clock.result()
    finally:
        await connection.close()


# -- set-up and clean-up --------------------------------------------------------


async def declare(cfg: Config) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        exchange = await declare_exchange(channel, cfg.namespace)
        sink = await channel.declare_queue(cfg.sink, durable=True)
        await sink.bind(exchange, routing_key=PUBLISHED_TYPE)
        await declare_work_queue(channel, exchange, cfg.ours, [CONSUMED_TYPE], RETRY_DELAYS)
        await channel.declare_queue(cfg.raw_queue, durable=True)
    finally:
        await connection.close()


async def preload(cfg: Config, queue: str, bodies: list[bytes]) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel(publisher_confirms=True)

        async def put(body: bytes) -> None:
            message = aio_pika.Message(
                body=body,
                content_type=CONTENT_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await channel.default_exchange.publish(message, routing_key=queue)

        await in_windows(bodies, 1000, put)
    finally:
        await connection.close()


async def purge(cfg: Config) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        for name in (cfg.sink, cfg.raw_queue, cfg.ours.work):
            queue = await channel.get_queue(name)
            await queue.purge()
    finally:
        await connection.close()


async def remove(cfg: Config) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        for name in (cfg.sink, cfg.raw_queue, *cfg.ours.all(RETRY_DELAYS)):
            await channel.queue_delete(name)
        await channel.exchange_delete(f"{cfg.namespace}.events")
    finally:
        await connection.close()


# -- the run ---------------------------------------------------------------------


async def run(cfg: Config) -> None:
    await declare(cfg)
    results: dict[str, list[float]] = {
        "publish ours": [],
        "publish raw": [],
        "consume ours": [],
        "consume raw": [],
    }
    bodies = signed_up_bodies(cfg.messages)
    try:
        for run_no in range(cfg.runs):
            events = deleted_events(cfg.messages)
            sides = ["ours", "raw"] if run_no % 2 == 0 else ["raw", "ours"]
            for side in sides:
                await purge(cfg)
                publish = publish_ours if side == "ours" else publish_raw
                seconds = await publish(cfg, events)
                results[f"publish {side}"].append(cfg.messages / seconds)
            for side in sides:
                await purge(cfg)
                queue = cfg.ours.work if side == "ours" else cfg.raw_queue
                await preload(cfg, queue, bodies)
                consume = consume_ours if side == "ours" else consume_raw
                seconds = await consume(cfg)
                results[f"consume {side}"].append(cfg.messages / seconds)
            print(
                f"run {run_no + 1}/{cfg.runs}: "
                + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in results.items()),
                file=sys.stderr,
            )
    finally:
        await remove(cfg)
    report(cfg, results)


def report(cfg: Config, results: dict[str, list[float]]) -> None:
    print(
        f"bus throughput: {cfg.messages:,} persistent messages, publisher confirms, "
        f"window {cfg.window}, prefetch {cfg.prefetch}, median of {cfg.runs} runs"
    )
    print(f"{'':10}{'ours msg/s':>14}{'raw msg/s':>14}{'overhead':>11}")
    for what in ("publish", "consume"):
        ours = statistics.median(results[f"{what} ours"])
        raw = statistics.median(results[f"{what} raw"])
        overhead = (raw - ours) / raw * 100
        print(f"{what:10}{ours:>14,.0f}{raw:>14,.0f}{overhead:>10.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--prefetch", type=int, default=32)
    args = parser.parse_args()
    configure_logging("bench", "warning")
    asyncio.run(run(Config(args.messages, args.runs, args.window, args.prefetch)))


if __name__ == "__main__":
    main()
