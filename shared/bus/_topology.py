"""Names and declarations of the exchange and queues (DESIGN §2, §8).

Declaration is idempotent: every service declares what it uses at start-up and on
every reconnect, so a broker that lost its state gets it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue


def exchange_name(namespace: str) -> str:
    return f"{namespace}.events"


def delay_ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


@dataclass(frozen=True)
class QueueNames:
    """A work queue ``Q``, its delay queues ``Q.retry.<n>`` and its parking queue.

    ``n`` is the queue's delay in milliseconds. A queue's TTL cannot change once
    declared, so naming each delay queue by its delay lets an operator change
    ``HERALD_RETRY_DELAYS`` without a clash: new delays get new queues, and an
    abandoned one still empties into ``Q`` as its messages expire.
    """

    work: str

    @classmethod
    def of(cls, namespace: str, service: str, concern: str) -> QueueNames:
        return cls(f"{namespace}.{service}.{concern}")

    def retry(self, delay_seconds: float) -> str:
        return f"{self.work}.retry.{delay_ms(delay_seconds)}"

    @property
    def parked(self) -> str:
        return f"{self.work}.parked"

    def all(self, delays: Sequence[float]) -> list[str]:
        return [self.work, *(self.retry(d) for d in delays), self.parked]


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic semantics: ``*`` is one word, ``#`` is zero or more."""
    return _match(pattern.split("."), key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and _match(rest, words[1:])


async def declare_exchange(channel: AbstractChannel, namespace: str) -> AbstractExchange:
    return await channel.declare_exchange(
        exchange_name(namespace), aio_pika.ExchangeType.TOPIC, durable=True
    )


async def declare_work_queue(
    channel: AbstractChannel,
    exchange: AbstractExchange,
    names: QueueNames,
    bindings: Iterable[str],
    delays: Sequence[float],
    *,
    max_priority: int | None = None,
) -> AbstractQueue:
    # Each delay queue holds messages for one fixed TTL and then dead-letters them
    # straight back to the work queue through the default exchange: no plugin, no
    # head-of-line blocking, and the retry reaches only this queue, not every
    # subscriber of the topic.
    for delay in delays:
        await channel.declare_queue(
            names.retry(delay),
            durable=True,
            arguments={
                "x-message-ttl": delay_ms(delay),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": names.work,
            },
        )
    await channel.declare_queue(names.parked, durable=True)
    arguments: dict[str, Any] | None = {"x-max-priority": max_priority} if max_priority else None
    queue = await channel.declare_queue(names.work, durable=True, arguments=arguments)
    for key in bindings:
        await queue.bind(exchange, routing_key=key)
    return queue
