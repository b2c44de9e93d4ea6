"""The bus: what a service holds, composed of one part per idea.

Bus
├── Supervisor   (_supervision)  the connection: connect, rebuild everything on loss
├── Publisher    (_publishing)   confirmed publishing, one path for one or many
├── Consumer     (_consuming)    subscriptions: ack, retry, defer, park
└── listeners    (_listening)    live views, no acks
topology (_topology): names and declarations, used by all of them
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aio_pika.abc import AbstractConnection

from shared.events import Event
from shared.metrics import ServiceMetrics

from . import _headers as h
from ._consuming import Consumer
from ._listening import Listener, Listening, open_listener
from ._outgoing import MAX_PRIORITY, event_message
from ._publishing import Publisher
from ._subscription import Handler, Subscription
from ._supervision import Supervisor
from ._topology import QueueNames, declare_exchange, exchange_name
from ._versions import check_versions
from .catalog import WorkQueue

__all__ = ["Bus", "Handler", "Listener"]


class Bus:
    def __init__(
        self,
        *,
        amqp_url: str,
        namespace: str,
        service: str,
        metrics: ServiceMetrics,
        retry_delays: Sequence[float] = (1.0, 5.0, 30.0, 120.0, 600.0),
        prefetch: int = 32,
        publish_timeout: float = 10.0,
        event_time_allowance: float = 60.0,
    ) -> None:
        self.namespace = namespace
        self.service = service
        self.metrics = metrics
        self.retry_delays = tuple(retry_delays)
        self.prefetch = prefetch
        self.publish_timeout = publish_timeout
        # how far ahead of our clock an event's time may be before it is clamped
        self.event_time_allowance = timedelta(seconds=event_time_allowance)
        self._app_id = f"herald-{service}"
        self._listeners: list[Listening] = []
        self._supervisor = Supervisor(
            url=amqp_url,
            name=f"{namespace}.{service}",
            service=service,
            metrics=metrics,
            on_open=self._open,
            on_lost=self._drop,
        )
        self._publisher = Publisher(
            service=service,
            metrics=metrics,
            timeout=publish_timeout,
            connected=self._supervisor.connected,
        )
        self._consumer = Consumer(
            service=service,
            metrics=metrics,
            send=lambda message: self._publisher.publish([message]),
            received=self.received,
        )

    # -- what it is -------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._supervisor.connected.is_set()

    @property
    def exchange(self) -> str:
        return exchange_name(self.namespace)

    @property
    def connection(self) -> AbstractConnection:
        """The live broker connection, for inspection (queue depths, parked
        messages) on channels of the caller's own; ``BusUnavailable`` if there is none."""
        return self._supervisor.connection

    @property
    def queues(self) -> list[str]:
        """Every queue this bus declares (for clean-up and for the docs)."""
        return [n for s in self._consumer.subscriptions for n in s.names.all(s.delays)]

    @property
    def holding_queues(self) -> list[str]:
        """The queues where this bus's messages wait rather than get handled: each
        work queue's delay queues and its parking queue (what erasure sweeps)."""
        return [
            name
            for s in self._consumer.subscriptions
            for name in (*(s.names.retry(d) for d in s.delays), s.names.parked)
        ]

    # -- before start -----------------------------------------------------------

    def subscribe(
        self,
        queue: WorkQueue | str,
        handlers: Mapping[str, Handler],
        *,
        prefetch: int | None = None,
        retry_delays: Sequence[float] | None = None,
        defer_steps: Sequence[float] = (),
        priorities: bool = False,
    ) -> QueueNames:
        """Bind a work queue ``<ns>.<service>.<concern>`` to the handlers' event types.

        ``queue`` is a catalog entry (whose bindings the handlers must cover exactly)
        or a bare concern name. Must be called before ``start``. A message whose type
        no handler takes is parked: the queue is bound to exactly these types, so it
        means a mistake upstream.

        ``retry_delays`` overrides the bus-wide back-off for this queue; ``defer_steps``
        are the waits a handler's ``Defer`` can pick from; ``priorities`` makes the
        work queue a priority queue (messages carry ``PRIORITY_LEVELS``).
        """
        if self._supervisor.started:
            raise RuntimeError("subscribe before start")
        if isinstance(queue, WorkQueue):
            if queue.service != self.service or set(queue.bindings) != set(handlers):
                raise ValueError(f"handlers {sorted(handlers)} do not match catalog entry {queue}")
            concern = queue.concern
        else:
            concern = queue
        names = QueueNames.of(self.namespace, self.service, concern)
        self._consumer.subscriptions.append(
            Subscription(
                names=names,
                handlers=dict(handlers),
                prefetch=prefetch or self.prefetch,
                retry_delays=tuple(retry_delays or self.retry_delays),
                defer_steps=tuple(sorted(defer_steps)),
                max_priority=MAX_PRIORITY if priorities else None,
            )
        )
        return names

    def listen(
        self, bindings: Sequence[str], callback: Listener, *, max_length: int = 10_000
    ) -> None:
        """Hear every event of ``bindings`` published while connected, on a queue of
        this process's own (exclusive, deleted with its connection, re-made on each
        reconnect). For live views, not work: nothing is acked, retried or parked,
        and what is published while disconnected is never heard. A slow listener
        loses the oldest events beyond ``max_length``. Call before ``start``."""
        if self._supervisor.started:
            raise RuntimeError("listen before start")
        self._listeners.append(Listening(tuple(bindings), callback, max_length))

    # -- running ----------------------------------------------------------------

    async def start(self, *, wait: float | None = None) -> None:
        """Start the supervisor; with ``wait``, block until connected (or raise).
        Refuses (``UntestedLibrary``) on AMQP libraries of untested versions."""
        check_versions()
        self._supervisor.start()
        if wait is not None:
            await self._supervisor.wait_connected(wait)

    async def stop(self, drain_timeout: float = 20.0) -> None:
        """Stop consuming, let in-flight messages finish, then close.

        Whatever is still running after ``drain_timeout`` is cancelled without an
        ack, so the broker hands it to another consumer: nothing is lost.
        """
        await self._consumer.stop(drain_timeout)
        await self._supervisor.stop()

    def received(self, event: Event[Any]) -> Event[Any]:
        """``event`` as Herald takes it in: its time no later than now plus the
        allowed clock skew (``Event.clamped``). Applied to every delivery, retries
        included, and by the gateway before it publishes, so no handler stores or
        compares a time that a producer's clock made up."""
        return event.clamped(datetime.now(UTC) + self.event_time_allowance)

    async def publish(self, event: Event[Any], *, priority: int | None = None) -> None:
        """Publish to the events exchange; returns once the broker confirmed it.

        A payload with a ``priority`` field travels with the matching AMQP priority
        unless ``priority`` says otherwise, so priority queues serve it first.
        ``BusUnavailable`` when it is not confirmed within ``publish_timeout``;
        ``Unpublishable`` when it cannot be encoded (a property too long).
        """
        await self._publisher.publish(
            [event_message(event, app_id=self._app_id, priority=priority)]
        )

    async def publish_many(self, events: Iterable[Event[Any]]) -> None:
        """Publish ``events`` to the events exchange; returns once the broker has
        confirmed every one of them.

        All are written before any confirm is awaited, so a batch costs about one
        round trip rather than one each. ``events`` may be a generator: it is read
        as the batch is written, so the first events are on their way while the
        last are still being built. Those left unconfirmed by a lost connection are
        published again, as ``publish`` does, until ``publish_timeout``; then
        ``BusUnavailable``. Priorities come from the payloads, as with ``publish``.
        """
        app_id = self._app_id
        await self._publisher.publish(event_message(e, app_id=app_id) for e in events)

    async def publish_later(
        self, queue: WorkQueue, event: Event[Any], *, after: float, attempts: int
    ) -> float:
        """Put ``event`` straight into one of this service's work queues, ``after``
        seconds from now, as if its handler had run ``attempts`` times: what a
        handler's ``Retry``/``Defer`` does to a message, for work that started
        without one. The wait is the queue's first delay step at least ``after``
        long (its longest if none is); returns it."""
        names = queue.names(self.namespace)
        sub = next((s for s in self._consumer.subscriptions if s.names == names), None)
        if sub is None:
            raise ValueError(f"{names.work} is not subscribed on this bus")
        delay = sub.delay_for(after)
        message = event_message(
            event, app_id=self._app_id, headers={h.ATTEMPT: attempts}, queue=names.retry(delay)
        )
        await self._publisher.publish([message])
        return delay

    # -- on each connection -------------------------------------------------------

    async def _open(self, connection: AbstractConnection, lost: Callable[..., None]) -> None:
        # A channel the broker closed (e.g. a stale delivery tag) takes the whole
        # connection down with it, so every part is rebuilt consistently.
        channel = await connection.channel(publisher_confirms=True)
        channel.close_callbacks.add(lost)
        exchange = await declare_exchange(channel, self.namespace)
        self._publisher.attach(await channel.get_underlay_channel(), exchange.name)
        await self._consumer.open(connection, self.namespace, lost)
        for listening in self._listeners:
            await open_listener(
                connection,
                self.namespace,
                self.service,
                listening,
                received=self.received,
                on_closed=lost,
            )

    def _drop(self) -> None:
        self._publisher.detach()
        self._consumer.drop()
