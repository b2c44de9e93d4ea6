"""The bus when things go wrong under it: a connection cut in the middle of a batch
or of a handler, and messages that cannot be put on the wire.

The connection is cut by a relay of the test's own (``CuttableProxy``), so the
shared broker and everyone else's connections are left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import pytest
from pamqp import frame
from pamqp.header import ContentHeader
from pydantic import SecretStr

from shared.bus import Bus, list_parked
from shared.errors import BusUnavailable, Unpublishable
from shared.events import Event, RequestNotification, new_event
from shared.settings import Settings
from tests.support import CuttableProxy, eventually, notification

# The content header frames RabbitMQ takes by default (its frame_max); one larger
# closes the connection.
FRAME_MAX = 131_072


@pytest.fixture
async def proxy() -> AsyncIterator[CuttableProxy]:
    async with CuttableProxy() as p:
        yield p


def collecting(into: list[str]) -> Callable[[Event[Any]], Any]:
    async def handle(event: Event[Any]) -> None:
        into.append(event.id)

    return handle


def count(bus: Bus, event_type: str, outcome: str) -> float:
    return bus.metrics.published.labels(bus.service, event_type, outcome)._value.get()  # type: ignore[no-any-return]


async def test_a_connection_cut_in_the_middle_of_a_batch_loses_nothing(
    bus_factory: Callable[..., Bus], settings: Settings, proxy: CuttableProxy
) -> None:
    """The publish returns only once every event is confirmed: those the cut left
    unconfirmed are published again on the next connection (a copy the broker had
    already taken is absorbed downstream); the bus publishes normally afterwards."""
    received: list[str] = []
    consumer = bus_factory("dispatcher", prefetch=256)
    consumer.subscribe("notifications", {"notification.requested": collecting(received)})
    await consumer.start(wait=10)
    url = proxy.url(settings.amqp_url.get_secret_value())
    producer = bus_factory("gateway", amqp_url=SecretStr(url), publish_timeout=30)
    await producer.start(wait=10)

    sent = [notification(user_id=f"u-{i}") for i in range(3000)]
    proxy.cut_after(300_000)  # about a fifth of the batch
    await producer.publish_many(sent)

    assert proxy.cuts == 1
    assert producer.metrics.reconnects.labels("gateway")._value.get() == 1
    assert count(producer, "notification.requested", "confirmed") == len(sent)
    await eventually(lambda: set(received) == {e.id for e in sent}, what="every event", timeout=30)

    after = notification(user_id="u-after")
    await producer.publish(after)
    await eventually(lambda: after.id in received, what="a publish after the reconnect")


async def test_a_batch_cut_off_for_good_reports_only_what_the_broker_confirmed(
    bus_factory: Callable[..., Bus], settings: Settings, proxy: CuttableProxy
) -> None:
    """No reconnection within the publish timeout: ``BusUnavailable`` says how many
    are unconfirmed, and every event counted as confirmed is really in the queue."""
    received: list[str] = []
    consumer = bus_factory("dispatcher", prefetch=256)
    consumer.subscribe("notifications", {"notification.requested": collecting(received)})
    await consumer.start(wait=10)
    url = proxy.url(settings.amqp_url.get_secret_value())
    producer = bus_factory("gateway", amqp_url=SecretStr(url), publish_timeout=1.5)
    await producer.start(wait=10)

    sent = [notification(user_id=f"u-{i}") for i in range(3000)]
    proxy.refusing = True
    proxy.cut_after(300_000)
    with pytest.raises(BusUnavailable, match=r"\d+ of 3000 publishes not confirmed") as raised:
        await producer.publish_many(sent)

    confirmed = count(producer, "notification.requested", "confirmed")
    failed = count(producer, "notification.requested", "failed")
    assert confirmed + failed == len(sent)
    assert f"{int(failed)} of 3000" in str(raised.value)
    assert failed > 0
    await eventually(lambda: len(set(received)) >= confirmed, what="every confirmed event")
    assert set(received) <= {e.id for e in sent}

    proxy.refusing = False  # the broker is back: so is publishing, once reconnected
    await eventually(lambda: producer.connected, what="the reconnect")
    after = notification(user_id="u-after")
    await producer.publish(after)
    await eventually(lambda: after.id in received, what="a publish after the reconnect")


async def test_an_event_whose_properties_cannot_be_encoded_is_refused_alone(
    bus_factory: Callable[..., Bus],
) -> None:
    """An id longer than AMQP's 255-byte strings (256 characters fit the envelope;
    not in UTF-8 when they are accented): a clear error naming the event,
    counted as failed; the batch's other events, and later publishes, go through on
    the same connection."""
    received: list[str] = []
    consumer = bus_factory("dispatcher")
    consumer.subscribe("notifications", {"notification.requested": collecting(received)})
    await consumer.start(wait=10)
    producer = bus_factory("gateway")
    await producer.start(wait=10)

    bad = new_event(
        RequestNotification(user_id="u1", type="test", title="Hello", body="Body"),
        source="tests",
        id="é" * 200,
    )
    with pytest.raises(Unpublishable, match=r"notification\.requested cannot be published"):
        await producer.publish(bad)
    good = [notification(), notification()]
    with pytest.raises(Unpublishable, match="255"):
        await producer.publish_many([good[0], bad, good[1]])
    after = notification()
    await producer.publish(after)

    await eventually(
        lambda: set(received) == {good[0].id, good[1].id, after.id}, what="the good events"
    )
    assert count(producer, "notification.requested", "failed") == 2
    assert count(producer, "notification.requested", "confirmed") == 3
    assert producer.metrics.reconnects.labels("gateway")._value.get() == 0


async def test_a_retry_whose_headers_no_longer_fit_a_frame_is_parked_with_ours(
    bus_factory: Callable[..., Bus], settings: Settings
) -> None:
    """A message that arrived with headers near the frame limit cannot travel again
    with the error added: written anyway, the broker would close the connection
    over it, again and again. It is parked with Herald's headers alone, and the
    consumer carries on on the same connection."""
    handled: list[str] = []

    async def handle(event: Event[Any]) -> None:
        handled.append(event.id)
        if event.data.user_id == "u-big":
            raise RuntimeError("boom " + "x" * 500)

    consumer = bus_factory("dispatcher")
    consumer.subscribe("notifications", {"notification.requested": handle})
    await consumer.start(wait=10)

    big = notification(user_id="u-big")
    message = aio_pika.Message(
        big.to_json(), message_id=big.id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
    )
    filler = FRAME_MAX - 200 - _header_size(message, {"filler": ""})
    message.headers = {"filler": "f" * filler}
    assert FRAME_MAX - 300 < _header_size(message, message.headers) <= FRAME_MAX
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(consumer.exchange)
        await exchange.publish(message, routing_key=big.type)
    finally:
        await connection.close()

    parked = consumer.queues[-1]
    found = await _eventually_parked(settings, parked)
    assert found.event_id == big.id
    assert found.reason == "permanent"
    assert found.error.startswith("RuntimeError: boom")

    after = notification()
    producer = bus_factory("gateway")
    await producer.start(wait=10)
    await producer.publish(after)
    await eventually(lambda: after.id in handled, what="the next message")
    assert consumer.metrics.reconnects.labels("dispatcher")._value.get() == 0


async def test_an_ack_on_a_closed_channel_is_dropped_and_the_message_comes_back(
    bus_factory: Callable[..., Bus], settings: Settings, proxy: CuttableProxy
) -> None:
    """The connection goes while a handler holds a message; the handler finishes
    anyway, and its ack, due on a channel that is gone, is dropped rather than sent
    on the new one. The broker hands the message out again, and the consumer goes
    on with the next."""
    calls: list[str] = []
    holding = asyncio.Event()

    async def handle(event: Event[Any]) -> None:
        calls.append(event.id)
        if len(calls) == 1:
            holding.set()
            try:
                await asyncio.Event().wait()  # until the connection is cut
            except asyncio.CancelledError:
                # its work was done: it ends as one that finished just as the cut came
                task = asyncio.current_task()
                assert task is not None
                task.uncancel()

    url = proxy.url(settings.amqp_url.get_secret_value())
    consumer = bus_factory("dispatcher", amqp_url=SecretStr(url))
    consumer.subscribe("notifications", {"notification.requested": handle})
    await consumer.start(wait=10)
    producer = bus_factory("gateway")
    await producer.start(wait=10)

    first = notification()
    await producer.publish(first)
    await asyncio.wait_for(holding.wait(), 10)
    proxy.cut()
    await eventually(lambda: calls == [first.id, first.id], what="the message redelivered")
    second = notification()
    await producer.publish(second)
    await eventually(lambda: calls == [first.id, first.id, second.id], what="the next message")

    ok = consumer.metrics.consumed.labels(
        "dispatcher", consumer.queues[0], "notification.requested", "ok"
    )
    await eventually(lambda: ok._value.get() == 2, what="two acks, not three")
    assert consumer.metrics.reconnects.labels("dispatcher")._value.get() == 1


def _header_size(message: aio_pika.Message, headers: dict[str, Any]) -> int:
    properties = message.properties
    properties.headers = headers
    return len(frame.marshal(ContentHeader(properties=properties, body_size=len(message.body)), 1))


async def _eventually_parked(settings: Settings, queue: str) -> Any:
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    try:
        found: list[Any] = []

        async def parked() -> bool:
            found[:] = await list_parked(connection, [queue])
            return bool(found)

        await eventually(parked, what="the parked message")
        return found[0]
    finally:
        with contextlib.suppress(Exception):
            await connection.close()
