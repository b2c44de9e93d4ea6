"""Small tools the integration and end-to-end tests share."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika

from shared.bus import exchange_name
from shared.events import Event, RequestNotification, new_event


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


def notification(
    user_id: str = "u1", *, correlation_id: str | None = None, **fields: Any
) -> Event[RequestNotification]:
    data = {"user_id": user_id, "type": "test", "title": "Hello", "body": "Body"} | fields
    return new_event(RequestNotification(**data), source="tests", correlation_id=correlation_id)


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
