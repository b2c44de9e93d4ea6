"""Small tools the tests share."""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import socket
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest

from services.dispatcher.calendar import meeting_ics
from services.dispatcher.channels import Attachment, Notification
from shared.bus import Bus, exchange_name, queue_stats
from shared.events import Event, RequestNotification, new_event
from shared.settings import Settings

# what an operator lists in HERALD_ALLOW_PRIVATE_URLS so that local receivers are reached
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
# what an operator adds to HERALD_{DISCORD,SLACK,TEAMS}_WEBHOOK_HOSTS for the same
# receivers, which stand in for the vendors over plain http
LOCAL_CHAT_HOST = "http://127.0.0.1"


def local_chat_hosts() -> dict[str, list[str]]:
    """Settings fields: each chat type's default hosts, and the local receivers."""
    return {
        name: [*Settings.model_fields[name].get_default(call_default_factory=True), LOCAL_CHAT_HOST]
        for name in ("discord_webhook_hosts", "slack_webhook_hosts", "teams_webhook_hosts")
    }


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
) -> None:
    """Wait until ``check()`` is true; fail with ``what`` if it never is."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


# Something that may still be at work: what it is doing, or None once it is idle.
Busy = Callable[[], Awaitable[str | None]]


async def quiescent(
    *buses: Bus,
    also: Sequence[Busy] = (),
    delayed: bool = True,
    timeout: float = 15.0,
    interval: float = 0.1,
) -> None:
    """Wait until nothing more can happen on ``buses``, so that a test may then assert
    that something did not happen: each of their work queues empty and none of their
    handlers running (a handler acks only after its effects, sends included, so this
    means every message taken in has had them), and each of ``also`` idle. All of it
    on two polls in a row, ``interval`` apart: a message on its way from the broker to
    a consumer is counted by neither for a moment.

    What waits in a delay queue (a retry, a rate-limit deferral) comes back, so it
    counts as busy; ``delayed=False`` leaves it out, for a test where something waits
    there on purpose for longer than the test means to wait. Fails after ``timeout``
    naming what was still busy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    quiet_polls = 0
    while True:
        busy = await _busy(buses, delayed=delayed)
        for other in also:
            busy = busy or await other()
        if busy is None:
            quiet_polls += 1
            if quiet_polls == 2:
                return
        else:
            quiet_polls = 0
            if loop.time() > deadline:
                raise AssertionError(f"not quiescent after {timeout}s: {busy}")
        await asyncio.sleep(interval)


async def _busy(buses: Sequence[Bus], *, delayed: bool) -> str | None:
    for bus in buses:
        handling = bus.metrics.registry.get_sample_value(
            "herald_messages_in_flight", {"service": bus.service}
        )
        if handling:
            return f"{bus.service} is handling {handling:.0f} message(s)"
        holding = set(bus.holding_queues)
        watched = [
            q for q in bus.queues if q not in holding or (delayed and not q.endswith(".parked"))
        ]
        for stats in await queue_stats(bus.connection, watched):
            if stats.messages:
                return f"{stats.queue} holds {stats.messages} message(s)"
    return None


def sending(pool: asyncpg.Pool, user_id: str) -> Busy:
    """For ``quiescent``: busy while a delivery to ``user_id`` is claimed and its
    outcome not yet written. A dispatcher sends the deliveries it claimed inline
    after acking the event that planned them, so its bus going quiet is not enough."""

    async def busy() -> str | None:
        claimed = await pool.fetchval(
            """SELECT count(*) FROM deliveries d JOIN notifications n ON n.id = d.notification_id
               WHERE n.user_id = $1 AND d.claimed_until > clock_timestamp()""",
            user_id,
        )
        return f"{claimed} deliveries to {user_id} being sent" if claimed else None

    return busy


class Heard(list[Event[Any]]):
    """The events a probe bus took from a work queue of its own, in the order they
    came: ``quiescent(heard.bus)`` once it has taken every one published so far."""

    def __init__(self, bus: Bus) -> None:
        super().__init__()
        self.bus = bus


async def hear(bus: Bus, bindings: Sequence[str]) -> Heard:
    """Start ``bus`` keeping every event of ``bindings``."""
    heard = Heard(bus)

    async def keep(event: Event[Any]) -> None:
        heard.append(event)

    bus.subscribe("heard", dict.fromkeys(bindings, keep))
    await bus.start(wait=10)
    return heard


def notification(
    user_id: str = "u1", *, correlation_id: str | None = None, **fields: Any
) -> Event[RequestNotification]:
    data = {"user_id": user_id, "type": "test", "title": "Hello", "body": "Body"} | fields
    return new_event(RequestNotification(**data), source="tests", correlation_id=correlation_id)


def channel_notification(**fields: Any) -> Notification:
    """A notification as a channel gets it, rendered and ready to send; ``fields``
    replace the defaults."""
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "user_id": "u1",
        "type": "test",
        "title": "Hello",
        "body": "Body",
        "priority": "normal",
        "created_at": datetime.now(UTC),
    }
    return Notification(**(values | fields))


def meeting_invite(**fields: Any) -> Attachment:
    """An interview invitation (``invite.ics``); ``fields`` replace the defaults."""
    values: dict[str, Any] = {
        "uid": "interview-42@herald",
        "title": "Interview with Acme",
        "starts_at": datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        "ends_at": datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
        "join_url": "https://meet.example.com/abc",
        "organizer_email": "hr@acme.example",
        "attendee_email": "ada@example.org",
    }
    return meeting_ics(**(values | fields))


def self_signed_certificate(directory: Path, subject_alt_name: str) -> tuple[Path, Path]:
    """A certificate and its key, valid for one day and only for ``subject_alt_name``
    (``DNS:hooks.test``, ``IP:127.0.0.1``), made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    common_name = subject_alt_name.partition(":")[2]
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", f"/CN={common_name}", "-addext", f"subjectAltName={subject_alt_name}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def publish_raw(amqp_url: str, namespace: str, routing_key: str, body: bytes) -> None:
    """Publish bytes as they are, bypassing our validation: how a broken producer looks."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(exchange_name(namespace))
        await exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=routing_key,
        )
    finally:
        await connection.close()


async def queue_depth(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
        return int(count or 0)
    finally:
        await connection.close()


def free_ports(count: int) -> list[int]:
    """Distinct free ports: all sockets stay bound until every port is picked."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def queues_named(prefix: str) -> list[str]:
    """Every queue on the broker whose name starts with ``prefix`` (slow: one
    rabbitmqctl call; for tear-downs that cannot know every name in advance)."""
    listed = subprocess.run(
        ["rabbitmqctl", "list_queues", "name", "--quiet", "--no-table-headers"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return [name for name in listed.stdout.split() if name.startswith(prefix)]


class CuttableProxy:
    """A TCP relay to the broker that a test cuts, as a network fault would: every
    connection through it dropped at once, with nothing said to either side.

    ``cut_after(n)`` cuts once ``n`` more bytes went towards the broker (the middle
    of a large publish, say); ``refusing`` turns new connections away until cleared.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 5672) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._budget: int | None = None
        self.refusing = False
        self.cuts = 0

    async def __aenter__(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()

    def url(self, amqp_url: str) -> str:
        """``amqp_url`` (the broker's) through this proxy."""
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        host_port = f"{self._target[0]}:{self._target[1]}"
        return amqp_url.replace(host_port, f"127.0.0.1:{port}")

    def cut(self) -> None:
        self.cuts += 1
        for client, broker in list(self._pairs):
            client.transport.abort()
            broker.transport.abort()
        self._pairs.clear()

    def cut_after(self, bytes_to_broker: int) -> None:
        self._budget = bytes_to_broker

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.refusing:
            client_w.transport.abort()
            return
        broker_r, broker_w = await asyncio.open_connection(*self._target)
        pair = (client_w, broker_w)
        self._pairs.add(pair)
        await asyncio.gather(
            self._pump(client_r, broker_w, to_broker=True),
            self._pump(broker_r, client_w, to_broker=False),
            return_exceptions=True,
        )
        self._pairs.discard(pair)
        for writer in pair:
            writer.transport.abort()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, to_broker: bool
    ) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            if to_broker and self._budget is not None:
                self._budget -= len(data)
                if self._budget <= 0:
                    self._budget = None
                    self.cut()
                    return
            await writer.drain()
