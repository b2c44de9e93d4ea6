"""Inspect, replay and delete parked messages (``herald parked``, the gateway's
operations routes), and read queue depths.

Listing takes messages without acking them and then closes the channel, which hands
them all back to the queue in their original order: nothing moves.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from shared.errors import BusUnavailable

from . import _headers as h
from ._publishing import BROKER_ERRORS
from ._topology import QueueNames


@dataclass(frozen=True)
class ParkedMessage:
    queue: str
    event_id: str | None
    type: str | None
    reason: str
    error: str
    attempts: int
    parked_at: str | None
    origin_queue: str
    body: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def _describe(queue: str, message: AbstractIncomingMessage) -> ParkedMessage:
    headers: dict[str, Any] = dict(message.headers or {})
    return ParkedMessage(
        queue=queue,
        event_id=message.message_id,
        type=message.type,
        reason=str(headers.get(h.PARKED_REASON, "")),
        error=str(headers.get(h.LAST_ERROR, "")),
        attempts=int(str(headers.get(h.ATTEMPT, 0))),
        parked_at=str(headers[h.PARKED_AT]) if h.PARKED_AT in headers else None,
        origin_queue=str(headers.get(h.ORIGIN_QUEUE, queue.removesuffix(".parked"))),
        body=message.body.decode("utf-8", errors="replace"),
    )


async def _existing(connection: AbstractConnection, queue: str) -> AbstractChannel | None:
    """A channel on which ``queue`` exists, or None (a passive declare of a missing
    queue closes its channel, so each probe gets a channel of its own)."""
    found = await _probe(connection, queue)
    return found[0] if found else None


async def _probe(connection: AbstractConnection, queue: str) -> tuple[AbstractChannel, int] | None:
    """A channel on which ``queue`` exists and how many messages it holds now."""
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    return channel, int(declared.declaration_result.message_count or 0)


async def list_parked(
    connection: AbstractConnection, queues: Sequence[str], limit: int = 100
) -> list[ParkedMessage]:
    found: list[ParkedMessage] = []
    for queue in queues:
        channel = await _existing(connection, queue)
        if channel is None:
            continue
        q = await channel.get_queue(queue, ensure=False)
        while len(found) < limit and (message := await q.get(no_ack=False, fail=False)):
            found.append(_describe(queue, message))
        await channel.close()  # unacked: every message goes back where it was
    return found


async def _matching(
    connection: AbstractConnection, queues: Sequence[str], event_id: str | None, limit: int
) -> AsyncGenerator[tuple[AbstractIncomingMessage, ParkedMessage], None]:
    """The parked messages to act on, unacked; the caller acks each one it settles.
    Only what was parked when we began: a replayed message that fails again is parked
    again behind us and must not be taken a second time. Messages left unacked (not
    matching ``event_id``, or past ``limit``) go back to their queue when its channel
    closes."""
    if limit <= 0:
        return
    handed = 0
    async with contextlib.aclosing(held_messages(connection, queues)) as held:
        async for queue, message in held:
            parked = _describe(queue, message)
            if event_id is not None and parked.event_id != event_id:
                continue
            yield message, parked
            handed += 1
            if handed >= limit:
                return


async def held_messages(
    connection: AbstractConnection, queues: Sequence[str]
) -> AsyncGenerator[tuple[str, AbstractIncomingMessage], None]:
    """Each message the ``queues`` hold when the walk reaches them, taken unacked on a
    channel of that queue's own, with its queue's name. What the caller does not ack
    goes back in place when that channel closes: after the queue, or when the caller
    stops early (close the generator: ``contextlib.aclosing``). Messages that arrive
    during the walk are not taken."""
    for queue in queues:
        found = await _probe(connection, queue)
        if found is None:
            continue
        channel, present = found
        try:
            q = await channel.get_queue(queue, ensure=False)
            for _ in range(present):
                message = await q.get(no_ack=False, fail=False)
                if message is None:  # expired or taken meanwhile
                    break
                yield queue, message
        finally:
            await channel.close()


async def replay_parked(
    connection: AbstractConnection,
    queues: Sequence[str],
    *,
    event_id: str | None = None,
    limit: int = 1000,
) -> list[ParkedMessage]:
    """Move parked messages back to the work queue they came from, attempts reset."""
    replayed: list[ParkedMessage] = []
    publisher = await connection.channel(publisher_confirms=True)
    try:
        async with contextlib.aclosing(_matching(connection, queues, event_id, limit)) as found:
            async for message, parked in found:
                headers = {
                    k: v
                    for k, v in (message.headers or {}).items()
                    if k not in (h.ATTEMPT, h.PARKED_REASON, h.PARKED_AT, h.LAST_ERROR)
                }
                headers[h.REPLAYED] = int(str(headers.get(h.REPLAYED, 0))) + 1
                await publisher.default_exchange.publish(
                    h.copy_message(message, headers), routing_key=parked.origin_queue
                )
                await message.ack()
                replayed.append(parked)
    finally:
        await publisher.close()
    return replayed


async def delete_parked(
    connection: AbstractConnection,
    queues: Sequence[str],
    *,
    event_id: str | None = None,
    limit: int = 1000,
) -> list[ParkedMessage]:
    """Drop parked messages for good (all, or the one with ``event_id``)."""
    deleted: list[ParkedMessage] = []
    async with contextlib.aclosing(_matching(connection, queues, event_id, limit)) as found:
        async for message, parked in found:
            await message.ack()
            deleted.append(parked)
    return deleted


@dataclass(frozen=True)
class QueueStats:
    queue: str
    messages: int
    consumers: int


async def queue_stats(connection: AbstractConnection, queues: Sequence[str]) -> list[QueueStats]:
    """Depth and consumer count of each queue that exists (a passive declare: the
    broker's own figures, no management plugin needed); missing ones are left out.

    One channel serves every probe until a missing queue makes the broker close it;
    only then is another opened. ``BusUnavailable`` when the broker cannot be read."""
    found: list[QueueStats] = []
    channel: AbstractChannel | None = None
    try:
        for queue in queues:
            if channel is None or channel.is_closed:
                channel = await connection.channel()
            try:
                declared = await channel.declare_queue(queue, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                channel = None  # the broker closed the channel with the refusal
                continue
            result = declared.declaration_result
            found.append(
                QueueStats(queue, int(result.message_count or 0), int(result.consumer_count or 0))
            )
    except BROKER_ERRORS as exc:
        raise BusUnavailable(f"cannot read queue depths: {exc}") from exc
    finally:
        if channel is not None and not channel.is_closed:
            await channel.close()
    return found


@dataclass(frozen=True)
class WorkQueueState:
    """A work queue as an operator sees it: ready messages, what waits in its delay
    queues (retries and deferrals), what is parked, and its consumers."""

    queue: str
    messages: int
    retrying: int
    parked: int
    consumers: int


async def work_queue_states(
    connection: AbstractConnection, work_queues: Sequence[QueueNames], delays: Sequence[float]
) -> list[WorkQueueState]:
    """Each work queue that exists on the broker, with its delay and parking queues.

    Delay queues are named by their delay: ``delays`` are all the ones that may exist
    (those that do not are simply not counted)."""
    wanted = [name for names in work_queues for name in names.all(delays)]
    stats = {s.queue: s for s in await queue_stats(connection, wanted)}
    found: list[WorkQueueState] = []
    for names in work_queues:
        main = stats.get(names.work)
        if main is None:
            continue
        parked = stats.get(names.parked)
        delayed = {names.retry(d) for d in delays}
        found.append(
            WorkQueueState(
                queue=names.work,
                messages=main.messages,
                retrying=sum(s.messages for n, s in stats.items() if n in delayed),
                parked=parked.messages if parked else 0,
                consumers=main.consumers,
            )
        )
    return found


async def purge_parked(
    connection: AbstractConnection, queues: Sequence[str], *, parked_before: datetime
) -> int:
    """Drop parked messages parked before ``parked_before``; how many.

    A parking queue is in parking order, so the walk stops at the first younger
    message; it and whatever was taken with it go back unacked when the channel
    closes. A message without a readable parking time is kept.
    """
    dropped = 0
    for queue in queues:
        channel = await _existing(connection, queue)
        if channel is None:
            continue
        q = await channel.get_queue(queue, ensure=False)
        while message := await q.get(no_ack=False, fail=False):
            parked_at = _parked_at(message)
            if parked_at is None or parked_at >= parked_before:
                break
            await message.ack()
            dropped += 1
        await channel.close()
    return dropped


def _parked_at(message: AbstractIncomingMessage) -> datetime | None:
    value = (message.headers or {}).get(h.PARKED_AT)
    try:
        parked_at = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parked_at if parked_at.tzinfo is not None else None
