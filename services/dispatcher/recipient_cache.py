"""Recipients kept in memory between notifications, dropped the moment they change.

Reading a recipient (user, preferences, endpoints) is the first of intake's round
trips to PostgreSQL, and most notifications go to someone who was notified a moment
ago. Triggers on ``users``, ``preferences`` and ``channel_endpoints`` (migration
0008) ``NOTIFY herald_recipients`` with the user id on every change, whoever makes
it (the gateway, another replica, this dispatcher disabling an endpoint, an
operator's SQL); each dispatcher listens on a connection of its own and drops that
user. What makes a stale entry impossible rather than unlikely:

- a lookup only keeps what it read if no change was announced while it was reading
  (``epoch``): a change committed after the read's snapshot always announces itself
  before or after the result, never unseen;
- while the listening connection is down nothing is kept or served (a change
  announced then would be missed); the cache is emptied the moment it is lost;
- entries also expire (``HERALD_RECIPIENT_CACHE_SECONDS``), for changes made
  around the triggers (``session_replication_role = replica``, say).

A change is honoured by this dispatcher as soon as its announcement arrives: in
the same millisecond or so as its commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import asyncpg
import structlog

from .metrics import DispatcherMetrics
from .recipients import Recipient

log = structlog.get_logger("herald.dispatcher")

CHANNEL = "herald_recipients"
MAX_RETRY_DELAY = 10.0

Connect = Callable[[], Awaitable[asyncpg.Connection]]


class RecipientCache:
    def __init__(
        self,
        connect: Connect,
        metrics: DispatcherMetrics,
        service: str,
        *,
        ttl: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._hits = metrics.recipient_lookups.labels(service, "hit")
        self._misses = metrics.recipient_lookups.labels(service, "miss")
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Recipient]] = OrderedDict()
        self._epoch = 0
        self.changes_heard = 0
        self._listening = asyncio.Event()

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    async def wait_listening(self) -> None:
        await self._listening.wait()

    async def get(
        self, user_id: str, load: Callable[[str], Awaitable[Recipient | None]]
    ) -> Recipient | None:
        """The recipient from memory when it is known and unchanged, else ``load``ed
        (and kept, when nothing changed meanwhile)."""
        if not self.listening:
            return await load(user_id)
        kept = self._entries.get(user_id)
        if kept is not None and kept[0] > self._clock():
            self._hits.inc()
            return kept[1]
        self._misses.inc()
        epoch = self._epoch
        recipient = await load(user_id)
        if recipient is not None and epoch == self._epoch and self.listening:
            self._keep(user_id, recipient)
        return recipient

    def _keep(self, user_id: str, recipient: Recipient) -> None:
        self._entries[user_id] = (self._clock() + self._ttl, recipient)
        self._entries.move_to_end(user_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def forget(self, user_id: str) -> None:
        self._epoch += 1
        self._entries.pop(user_id, None)

    def _forget_all(self) -> None:
        self._epoch += 1
        self._entries.clear()

    def _announced(self, _conn: object, _pid: int, _channel: str, user_id: object) -> None:
        self.changes_heard += 1
        self.forget(str(user_id))

    async def run(self) -> None:
        """Listen for changes for as long as the dispatcher runs, reconnecting after
        the database goes away; the cache is off while not listening."""
        delay = 0.5
        while True:
            try:
                conn = await self._connect()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("recipient_cache_unavailable", error=str(exc), retry_in=delay)
            else:
                try:
                    await self._listen(conn)
                    delay = 0.5
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("recipient_cache_lost", error=str(exc), retry_in=delay)
                finally:
                    self._listening.clear()
                    self._forget_all()
                    with contextlib.suppress(Exception):
                        await asyncio.shield(_close(conn))
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)

    async def _listen(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        await conn.add_listener(CHANNEL, self._announced)
        # nothing was kept while not listening: losing the last connection forgot all
        self._listening.set()
        log.info("recipient_cache_listening")
        await _until_lost(conn, lost)
        log.warning("recipient_cache_lost")


async def _until_lost(conn: asyncpg.Connection, lost: asyncio.Event, every: float = 5.0) -> None:
    """Return when the connection is gone: its termination callback, or a probe
    that fails (a half-open TCP connection gives no callback)."""
    while not lost.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lost.wait(), every)
            return
        async with asyncio.timeout(every):
            await conn.execute("SELECT 1")


async def _close(conn: asyncpg.Connection) -> None:
    if not conn.is_closed():
        await conn.close(timeout=2)
