"""The bus against a real RabbitMQ: delivery, retries, parking, and bad input."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import aio_pika
import pytest
from pydantic import SecretStr

from shared.bus import PRIORITY_LEVELS, Bus, about_user, catalog, list_parked, sweep
from shared.bus._fastpath import CHUNK
from shared.errors import BusUnavailable, Defer, Permanent, Retry
from shared.events import DeliveryDue, Event, new_event, parse_event
from shared.settings import Settings
from tests.support import eventually, notification, publish_raw, queue_depth, quiescent


async def test_published_event_reaches_subscriber_typed_and_correlated(
    bus_factory: Callable[..., Bus],
) -> None:
    received: list[Event[Any]] = []

    async def handle(event: Event[Any]) -> None:
        received.append(event)

    consumer = bus_factory("dispatcher")
    consumer.subscribe("notifications", {"notification.requested": handle})
    await consumer.start(wait=10)
    producer = bus_factory("gateway")
    await producer.start(wait=10)

    sent = notification(user_id="u-42", correlation_id="corr-7")
    await producer.publish(sent)

    await eventually(lambda: len(received) == 1, what="delivery")
    got = received[0]
    assert got.id == sent.id
    assert got.correlation_id == "corr-7"
    assert got.data.user_id == "u-42"
    # counted once its ack is written, a moment after the handler returned
    consumed = consumer.metrics.consumed.labels(
        "dispatcher", consumer.queues[0], "notification.requested", "ok"
    )
    await eventually(lambda: consumed._value.get() == 1, what="the consumed count")


async def test_transient_failure_is_retried_with_backoff_then_succeeds(
    bus_factory: Callable[..., Bus], settings: Settings
) -> None:
    attempts: list[float] = []

    async def flaky(event: Event[Any]) -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionError("downstream hiccup")

    bus = bus_factory("dispatcher")
    bus.subscribe("notifications", {"notification.requested": flaky})
    await bus.start(wait=10)
    await bus.publish(notification())

    await eventually(lambda: len(attempts) == 3, what="third attempt")
    await quiescent(bus)  # a wrongful fourth attempt would be waiting in a delay queue
    assert len(attempts) == 3
    # each wait is at least its back-off step (0.2 s, then 0.4 s)
    assert attempts[1] - attempts[0] >= 0.19
    assert attempts[2] - attempts[1] >= 0.39
    assert bus.metrics.retries.labels("dispatcher", bus.queues[0])._value.get() == 2
    assert await list_parked_for(settings, bus) == []


async def test_retry_after_hint_chooses_a_longer_delay_step(
    bus_factory: Callable[..., Bus],
) -> None:
    attempts: list[float] = []

    async def rate_limited(event: Event[Any]) -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise Retry("429 from provider", after=0.35)

    bus = bus_factory("dispatcher")
    bus.subscribe("notifications", {"notification.requested": rate_limited})
    await bus.start(wait=10)
    await bus.publish(notification())
    await eventually(lambda: len(attempts) == 2, what="retry after the hint")
    assert attempts[1] - attempts[0] >= 0.39  # the 0.4 s step, not the 0.2 s one


async def list_parked_for(settings: Settings, bus: Bus) -> list[Any]:
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    try:
        return await list_parked(connection, [q for q in bus.queues if q.endswith(".parked")])
    finally:
        await connection.close()


async def test_exhausted_retries_park_the_message_with_its_error(
    bus_factory: Callable[..., Bus], settings: Settings
) -> None:
    calls = 0

    async def broken(event: Event[Any]) -> None:
        nonlocal calls
        calls += 1
        raise ValueError(f"template exploded on try {calls}")

    bus = bus_factory("dispatcher")
    bus.subscribe("notifications", {"notification.requested": broken})
    await bus.start(wait=10)
    sent = notification()
    await bus.publish(sent)

    await eventually(lambda: calls == 3, what="three attempts")
    parked = []

    async def parked_one() -> bool:
        parked[:] = await list_parked_for(settings, bus)
        return len(parked) == 1

    await eventually(parked_one, what="parked message")
    await quiescent(bus)
    assert calls == 3  # 1 try + 2 retries (two back-off steps), then parked
    p = parked[0]
    assert p.event_id == sent.id
    assert p.reason == "exhausted"
    assert p.attempts == 3
    assert "ValueError: template exploded on try 3" in p.error
    assert p.origin_queue == bus.queues[0]
    # listing does not consume: the message is still parked afterwards
    assert len(await list_parked_for(settings, bus)) == 1


async def test_permanent_error_parks_at_once(
    bus_factory: Callable[..., Bus], settings: Settings
) -> None:
    calls = 0

    async def refuses(event: Event[Any]) -> None:
        nonlocal calls
        calls += 1
        raise Permanent("endpoint answered 404")

    bus = bus_factory("dispatcher")
    bus.subscribe("notifications", {"notification.requested": refuses})
    await bus.start(wait=10)
    await bus.publish(notification())

    async def parked() -> bool:
        found = await list_parked_for(settings, bus)
        return len(found) == 1 and found[0].reason == "permanent"

    await eventually(parked, what="permanent park")
    assert calls == 1


async def test_malformed_and_invalid_messages_are_parked_and_consumer_keeps_going(
    bus_factory: Callable[..., Bus], settings: Settings
) -> None:
    handled: list[str] = []

    async def handle(event: Event[Any]) -> None:
        handled.append(event.id)

    bus = bus_factory("dispatcher")
    bus.subscribe("notifications", {"notification.requested": handle})
    await bus.start(wait=10)
    url = settings.amqp_url.get_secret_value()
    await publish_raw(url, settings.namespace, "notification.requested", b"{not json")
    await publish_raw(
        url,
        settings.namespace,
        "notification.requested",
        b'{"specversion":"1.0","id":"bad-1","source":"s","type":"notification.requested",'
        b'"data":{"title":"no user"}}',
    )
    good = notification()
    await bus.publish(good)

    await eventually(lambda: handled == [good.id], what="the good message")
    found: list[Any] = []

    async def both_parked() -> bool:
        found[:] = await list_parked_for(settings, bus)
        return len(found) == 2

    await eventually(both_parked, what="two parked messages")
    by_body = {p.body[:9]: p for p in found}
    assert by_body["{not json"].reason == "invalid"
    assert "not JSON" in by_body["{not json"].error
    schema = next(p for p in found if "bad-1" in p.body)
    assert schema.reason == "invalid"
    assert "data.user_id: Field required" in schema.error
    assert await queue_depth(url, bus.queues[0]) == 0


async def test_defer_waits_without_spending_an_attempt(
    bus_factory: Callable[..., Bus], settings: Settings
) -> None:
    """A handler that is told "not yet" five times (more than the two retry steps)
    is neither parked nor counted as failing; it runs once the wait is over."""
    seen: list[float] = []

    async def rate_limited(event: Event[Any]) -> None:
        seen.append(time.monotonic())
        if len(seen) <= 5:
            raise Defer(0.05, "rate limited")

    bus = bus_factory("dispatcher")
    bus.subscribe("notifications", {"notification.requested": rate_limited}, defer_steps=[0.1, 1.0])
    await bus.start(wait=10)
    await bus.publish(notification())

    await eventually(lambda: len(seen) == 6, what="the sixth, successful run")
    assert all(b - a >= 0.09 for a, b in itertools.pairwise(seen))
    assert bus.metrics.retries.labels("dispatcher", bus.queues[0])._value.get() == 0
    assert await list_parked_for(settings, bus) == []


async def test_urgent_overtakes_a_backlog_of_low_priority_messages(
    bus_factory: Callable[..., Bus],
) -> None:
    order: list[str] = []
    backlog = 300

    async def record(event: Event[Any]) -> None:
        order.append(event.data.priority.value)

    producer = bus_factory("gateway")
    await producer.start(wait=10)
    # declare the priority queue first, then fill it while nobody consumes
    first = bus_factory("dispatcher", prefetch=1)
    first.subscribe("notifications", {"notification.requested": record}, priorities=True)
    await first.start(wait=10)
    await first.stop()
    order.clear()
    await asyncio.gather(*(producer.publish(notification(priority="low")) for _ in range(backlog)))
    await producer.publish(notification(priority="urgent"))

    consumer = bus_factory("dispatcher", prefetch=1)
    consumer.subscribe("notifications", {"notification.requested": record}, priorities=True)
    await consumer.start(wait=10)
    await eventually(lambda: "urgent" in order, what="the urgent message")
    assert order.index("urgent") <= 1  # at most the one message already in flight


async def test_publish_later_waits_in_a_delay_queue_and_carries_its_attempts(
    bus_factory: Callable[..., Bus], settings: Settings
) -> None:
    """Work that started without a message (an inline send) joins the queue's own
    retry schedule: it arrives after the wait, with the attempts it already made."""
    runs: list[float] = []

    async def failing(event: Event[Any]) -> None:
        runs.append(time.monotonic())
        raise Retry("still down")

    bus = bus_factory("dispatcher")  # retry steps 0.2 s and 0.4 s
    bus.subscribe(catalog.DISPATCHER_DELIVERIES, {"delivery.due": failing})
    await bus.start(wait=10)
    due = new_event(
        DeliveryDue(delivery_id="d-1", notification_id="n-1", user_id="u-1", channel="webhook"),
        source="tests",
    )
    started = time.monotonic()
    waited = await bus.publish_later(catalog.DISPATCHER_DELIVERIES, due, after=0.3, attempts=2)

    assert waited == 0.4  # the first step at least as long as asked

    async def parked() -> bool:
        return bool(await list_parked_for(settings, bus))

    await eventually(parked, what="parked")
    # two attempts were already spent: one more run exhausts both retry steps
    assert len(runs) == 1
    assert runs[0] - started >= 0.35
    assert [p.reason for p in await list_parked_for(settings, bus)] == ["exhausted"]


@pytest.mark.parametrize("as_generator", [False, True], ids=["list", "generator"])
async def test_publish_many_delivers_every_event_once_in_order_with_its_priority(
    bus_factory: Callable[..., Bus], settings: Settings, as_generator: bool
) -> None:
    """A batch larger than one socket write: every event confirmed, delivered once,
    in publishing order, and an urgent one still travels with its AMQP priority.
    A generator is read as the batch is written, with the same outcome."""
    received: list[Event[Any]] = []
    priorities: list[int | None] = []

    async def handle(event: Event[Any]) -> None:
        received.append(event)

    consumer = bus_factory("dispatcher", prefetch=1)
    consumer.subscribe("notifications", {"notification.requested": handle}, priorities=True)
    await consumer.start(wait=10)
    producer = bus_factory("gateway")
    await producer.start(wait=10)

    sent = [notification(user_id=f"u-{i}") for i in range(CHUNK * 2 + 7)]
    await producer.publish_many((e for e in sent) if as_generator else sent)
    await producer.publish_many([])  # nothing to do is not an error
    await producer.publish_many(e for e in [])

    await eventually(lambda: len(received) == len(sent), what="the whole batch")
    assert [e.id for e in received] == [e.id for e in sent]
    confirmed = producer.metrics.published.labels("gateway", "notification.requested", "confirmed")
    assert confirmed._value.get() == len(sent)

    # the priority rides on each message, as with publish
    urgent = notification(user_id="u-urgent", priority="urgent")
    probe = await aio_pika.connect(settings.amqp_url.get_secret_value())
    try:
        channel = await probe.channel()
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(producer.exchange, "notification.requested")
        await producer.publish_many([urgent])
        message = await queue.get(timeout=5)
        priorities.append(message.priority)
    finally:
        await probe.close()
    assert priorities == [PRIORITY_LEVELS["urgent"]]


async def test_publish_many_larger_than_the_connections_write_buffer_is_confirmed_whole(
    bus_factory: Callable[..., Bus],
) -> None:
    """More socket writes than aiormq's frame queue holds (it takes ten): the batch
    waits for room instead of losing a write, so every publish is confirmed
    (a lost write would leave its confirms, and every later one, unanswered) and
    the channel keeps working afterwards."""
    received: list[str] = []

    async def handle(event: Event[Any]) -> None:
        received.append(event.id)

    consumer = bus_factory("dispatcher", prefetch=256)
    consumer.subscribe("notifications", {"notification.requested": handle})
    await consumer.start(wait=10)
    producer = bus_factory("gateway", publish_timeout=20)
    await producer.start(wait=10)

    sent = [notification(user_id=f"u-{i % 50}") for i in range(CHUNK * 12 + 3)]
    await producer.publish_many(sent)
    after = notification(user_id="u-after")
    await producer.publish(after)

    await eventually(lambda: len(received) == len(sent) + 1, what="every event", timeout=30)
    assert sorted(received) == sorted([e.id for e in sent] + [after.id])
    confirmed = producer.metrics.published.labels("gateway", "notification.requested", "confirmed")
    assert confirmed._value.get() == len(sent) + 1


@pytest.mark.parametrize("as_generator", [False, True], ids=["list", "generator"])
async def test_publish_many_without_a_broker_gives_up_after_the_publish_timeout(
    bus_factory: Callable[..., Bus], as_generator: bool
) -> None:
    nowhere = SecretStr("amqp://guest:guest@127.0.0.1:1/")
    bus = bus_factory("gateway", amqp_url=nowhere, publish_timeout=0.3)
    await bus.start()
    started = time.monotonic()
    events = [notification(), notification()]
    with pytest.raises(BusUnavailable, match="2 of 2 publishes not confirmed"):
        await bus.publish_many((e for e in events) if as_generator else events)
    assert 0.25 <= time.monotonic() - started < 2
    failed = bus.metrics.published.labels("gateway", "notification.requested", "failed")
    assert failed._value.get() == 2


async def test_messages_finished_together_are_all_acked(
    bus_factory: Callable[..., Bus], settings: Settings
) -> None:
    """Acks of messages that finish in the same moment share one write: each of them
    must still reach the broker, or closing the connection would hand them back."""
    handled: list[str] = []
    release = asyncio.Event()

    async def handle(event: Event[Any]) -> None:
        await release.wait()  # everyone finishes at once
        handled.append(event.id)

    consumer = bus_factory("dispatcher", prefetch=64)
    consumer.subscribe("notifications", {"notification.requested": handle})
    await consumer.start(wait=10)
    producer = bus_factory("gateway")
    await producer.start(wait=10)
    await producer.publish_many(notification(user_id=f"u-{i}") for i in range(150))
    in_flight = consumer.metrics.in_flight.labels("dispatcher")
    await eventually(lambda: in_flight._value.get() == 64, what="a full prefetch window")
    release.set()
    await eventually(lambda: len(handled) == 150, what="every message handled")
    consumed = consumer.metrics.consumed.labels(
        "dispatcher", consumer.queues[0], "notification.requested", "ok"
    )
    await eventually(lambda: consumed._value.get() == 150, what="every ack written")
    await consumer.stop()
    # unacked messages would be back in the queue once their connection closed
    assert await queue_depth(settings.amqp_url.get_secret_value(), consumer.queues[0]) == 0
    assert len(set(handled)) == 150


async def test_a_sweep_drops_one_user_s_messages_and_leaves_the_rest_in_place(
    settings: Settings, namespace: str
) -> None:
    """Erasure's sweep of a parking queue and a delay queue: the erased user's
    messages go; the others stay in their order, with their headers, and a delayed
    one still comes due when it would have (its expiry is not restarted)."""
    work, delay, parked = (
        f"{namespace}.sweep",
        f"{namespace}.sweep.retry.4000",
        f"{namespace}.sweep.parked",
    )
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(work, durable=True)
        await channel.declare_queue(parked, durable=True)
        await channel.declare_queue(
            delay,
            durable=True,
            arguments={
                "x-message-ttl": 4000,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": work,
            },
        )
        for queue in (parked, delay):
            for n, user_id in enumerate(["erased", "kept", "erased", "kept"]):
                event = notification(user_id, title=f"#{n}")
                await channel.default_exchange.publish(
                    aio_pika.Message(event.to_json(), headers={"n": n}), routing_key=queue
                )
        # half their time in the delay queue: the sweep must not restart it
        await asyncio.sleep(2.0)
        dropped = await sweep(
            connection, [delay, parked, f"{namespace}.missing"], about_user("erased")
        )
        swept_at = time.monotonic()
        assert dropped == 4

        async def bodies(queue: str) -> list[tuple[str, Any]]:
            got = []
            q = await channel.get_queue(queue, ensure=False)
            while message := await q.get(no_ack=True, fail=False):
                event = parse_event(message.body)
                got.append((event.data.title, (message.headers or {}).get("n")))
            return got

        assert await bodies(parked) == [("#1", 1), ("#3", 3)]
        await eventually(lambda: queue_depth(settings.amqp_url.get_secret_value(), work), timeout=5)
        assert time.monotonic() - swept_at < 3.5  # not 4 s from the sweep: original expiry
        await asyncio.sleep(0.5)  # a time, not work: the other one is due with the first
        assert await bodies(work) == [("#1", 1), ("#3", 3)]
    finally:
        cleanup = await connection.channel()
        for queue in (work, delay, parked):
            await cleanup.queue_delete(queue)
        await connection.close()
