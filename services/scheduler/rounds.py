"""The leader's rounds: everything that has fallen due at ``now`` is published.

Each step claims what it publishes in the transaction that publishes it: the lease
is checked and held FOR SHARE (``Lease.fence``), the rows are moved on (a tick
cursor, a reminder's status, a meeting's state, a digest's next time), the events
are published and confirmed, and only then is the transaction committed. Two
replicas can never both publish the same thing; if the broker does not confirm,
the transaction rolls back and the next round tries again. The one window for a
repeat is a leader dying between the broker's confirm and its commit; the repeat
then carries the same deterministic id, and consumers keep one.

``now`` is passed in (the clock is injected), so tests run rounds at any moment
they like without waiting for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

from shared.bus import Bus, broker_connection, catalog, purge_parked
from shared.errors import BusUnavailable
from shared.events import (
    Event,
    MeetingCompleted,
    MeetingScheduled,
    MeetingStarted,
    derived_id,
    new_event,
)
from shared.settings import Settings

from . import agenda, digest_schedules, retention
from .digests import WEEKDAYS, digest_event
from .digests import due as digest_due
from .leadership import Lease
from .metrics import SchedulerMetrics
from .reminders import reminder_event, worth_sending
from .schedules import Schedule
from .ticks import SOURCE, Due, due_slots, tick_event

log = structlog.get_logger("herald.scheduler")

BATCH = 500
# preferences change without an event: compared with the digest schedules this often
DIGEST_SYNC_EVERY = 30.0
RETENTION_EVERY = 3600.0
RETENTION_RETRY = 60.0


@dataclass
class Rounds:
    pool: asyncpg.Pool
    bus: Bus
    lease: Lease
    settings: Settings
    metrics: SchedulerMetrics
    schedules: Sequence[Schedule]
    digest_sync_every: float = DIGEST_SYNC_EVERY
    retention_every: float = RETENTION_EVERY
    _next_sync: float = field(default=0.0, init=False)
    _next_retention: float = field(default=0.0, init=False)

    @property
    def late_within(self) -> timedelta:
        """A slot this late was held up by a fail-over (at most two lease periods),
        not missed in downtime: it is published whatever the catch-up policy."""
        return timedelta(seconds=3 * self.settings.scheduler_lease_seconds)

    def pause(self, now: datetime, longest: float = 1.0) -> float:
        """Seconds until the next slot of any schedule, at most ``longest``."""
        upcoming = min((s.next_after(now) for s in self.schedules), default=None)
        if upcoming is None:
            return longest
        return max(0.0, min(longest, (upcoming - now).total_seconds()))

    async def run(self, now: datetime) -> list[Event[Any]]:
        """One round; the events it published."""
        published = await self.ticks(now)
        published += await self.meetings(now)
        published += await self.reminders(now)
        published += await self.digests(now)
        if time.monotonic() >= self._next_retention:
            self._next_retention = time.monotonic() + RETENTION_RETRY
            await self.retention(now)
            self._next_retention = time.monotonic() + self.retention_every
        return published

    # -- ticks ------------------------------------------------------------------

    async def ticks(self, now: datetime) -> list[Event[Any]]:
        rows = await self.pool.fetch(
            "SELECT schedule, last_slot FROM scheduler_cursors WHERE namespace = $1",
            self.bus.namespace,
        )
        cursors: dict[str, datetime] = {r["schedule"]: r["last_slot"] for r in rows}
        published: list[Event[Any]] = []
        for schedule in self.schedules:
            first = due_slots(
                schedule,
                cursors.get(schedule.name),
                now,
                late_within=self.late_within,
                limit=self.settings.scheduler_catchup_limit,
            )
            if first.cursor == cursors.get(schedule.name):
                continue
            published += await self._tick(schedule, now)
        return published

    async def _tick(self, schedule: Schedule, now: datetime) -> list[Event[Any]]:
        """Publish the schedule's due slots one transaction each: a leader dying
        mid-catch-up leaves at most the slot in flight to its successor."""
        published: list[Event[Any]] = []
        while (event := await self._next_tick(schedule, now)) is not None:
            self.metrics.ticks.labels(self.metrics.service, schedule.name).inc()
            self.metrics.last_tick.labels(self.metrics.service, schedule.name).set_to_current_time()
            log.info("tick_published", schedule=schedule.name, slot=event.data.slot.isoformat())
            published.append(event)
        return published

    async def _next_tick(self, schedule: Schedule, now: datetime) -> Event[Any] | None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self.lease.fence(conn)
            cursor = await conn.fetchval(
                """SELECT last_slot FROM scheduler_cursors
                   WHERE namespace = $1 AND schedule = $2 FOR UPDATE""",
                self.bus.namespace,
                schedule.name,
            )
            due = due_slots(
                schedule,
                cursor,
                now,
                late_within=self.late_within,
                limit=self.settings.scheduler_catchup_limit,
            )
            if due.cursor == cursor:
                return None
            if due.skipped_after is not None:
                self._skipped(schedule, due)
            # the slot published now becomes the cursor, unless it is the last one due
            # (then the cursor takes the slots skipped after it too)
            slot = due.slots[0] if due.slots else None
            moved_to = slot if slot is not None and len(due.slots) > 1 else due.cursor
            await conn.execute(
                """INSERT INTO scheduler_cursors AS c (namespace, schedule, last_slot)
                   VALUES ($1, $2, $3)
                   ON CONFLICT (namespace, schedule) DO UPDATE
                   SET last_slot = EXCLUDED.last_slot, updated_at = now()""",
                self.bus.namespace,
                schedule.name,
                moved_to,
            )
            if slot is None:
                return None
            event = tick_event(schedule.name, slot)
            await self.bus.publish(event)
        return event

    def _skipped(self, schedule: Schedule, due: Due) -> None:
        self.metrics.slots_skipped.labels(self.metrics.service, schedule.name).inc()
        log.warning(
            "missed_slots_skipped",
            schedule=schedule.name,
            policy=schedule.catchup,
            after=due.skipped_after.isoformat() if due.skipped_after else None,
            until=due.skipped_until.isoformat() if due.skipped_until else None,
        )

    # -- meetings ---------------------------------------------------------------

    async def meetings(self, now: datetime) -> list[Event[Any]]:
        """Scheduled meetings whose start came become active, active ones whose end
        came completed, each with its event (both at once after downtime)."""
        published: list[Event[Any]] = []
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                await self.lease.fence(conn)
                rows = await agenda.meetings_to_move(conn, now, BATCH)
                events: list[Event[Any]] = []
                for row in rows:
                    moved = _meeting_moves(row, now)
                    events += moved
                    state = (
                        "completed" if isinstance(moved[-1].data, MeetingCompleted) else "active"
                    )
                    await agenda.set_meeting_state(conn, row["meeting_id"], state)
                for event in events:  # started before completed
                    await self.bus.publish(event)
            for event in events:
                state = "completed" if isinstance(event.data, MeetingCompleted) else "started"
                self.metrics.meetings.labels(self.metrics.service, state).inc()
                log.info("meeting_" + state, meeting_id=event.data.meeting_id)
            published += events
            if len(rows) < BATCH:
                return published

    # -- reminders --------------------------------------------------------------

    async def reminders(self, now: datetime) -> list[Event[Any]]:
        published: list[Event[Any]] = []
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                await self.lease.fence(conn)
                due = await agenda.due_reminders(conn, now, BATCH)
                send, skip = worth_sending(due, now)
                await agenda.settle(conn, [r.reminder_id for r in send], "sent")
                await agenda.settle(conn, [r.reminder_id for r in skip], "skipped")
                events = [reminder_event(r) for r in send]
                await asyncio.gather(*(self.bus.publish(e) for e in events))
            for r in send:
                self.metrics.reminders.labels(self.metrics.service, r.kind, "sent").inc()
                log.info("reminder_due", reminder_id=r.reminder_id, kind=r.kind, user_id=r.user_id)
            for r in skip:
                self.metrics.reminders.labels(self.metrics.service, r.kind, "skipped").inc()
                log.info("reminder_skipped", reminder_id=r.reminder_id, kind=r.kind)
            published += events
            if len(due) < BATCH:
                return published

    # -- digests ----------------------------------------------------------------

    async def digests(self, now: datetime) -> list[Event[Any]]:
        if time.monotonic() >= self._next_sync:
            async with self.pool.acquire() as conn, conn.transaction():
                await self.lease.fence(conn)
                changed = await digest_schedules.sync(
                    conn,
                    now,
                    default_hour=self.settings.digest_hour,
                    weekday=WEEKDAYS.index(self.settings.digest_weekday),
                )
            self._next_sync = time.monotonic() + self.digest_sync_every
            if changed:
                log.info("digest_schedules_synced", changed=changed)
        published: list[Event[Any]] = []
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                await self.lease.fence(conn)
                due = await digest_schedules.due(conn, now, BATCH)
                windows = [(s, digest_due(s.plan, s.window_start, now)) for s in due]
                await digest_schedules.advance(
                    conn, [(s.user_id, w.window_end, w.next_at) for s, w in windows]
                )
                events = [digest_event(s.user_id, s.plan.frequency, w) for s, w in windows]
                await asyncio.gather(*(self.bus.publish(e) for e in events))
            for s, w in windows:
                self.metrics.digests.labels(self.metrics.service, s.plan.frequency).inc()
                log.info(
                    "digest_due",
                    user_id=s.user_id,
                    frequency=s.plan.frequency,
                    window_start=w.window_start.isoformat(),
                    window_end=w.window_end.isoformat(),
                )
            published += events
            if len(due) < BATCH:
                return published

    # -- retention --------------------------------------------------------------

    async def retention(self, now: datetime) -> None:
        cutoff = now - timedelta(days=self.settings.retention_days)
        removed = {
            "scheduler_rows": await retention.purge_settled(self.pool, cutoff),
            "parked_messages": await self._purge_parked(
                now - timedelta(days=self.settings.parked_retention_days)
            ),
        }
        for what, count in removed.items():
            self.metrics.retention.labels(self.metrics.service, what).inc(count)
        log.info("retention_done", **removed)

    async def _purge_parked(self, parked_before: datetime) -> int:
        """Parked messages of every known work queue; a broker that cannot be reached
        now is tried again at the next retention run (nothing is lost by waiting)."""
        queues = [q.names(self.bus.namespace).parked for q in catalog.ALL_QUEUES]
        try:
            async with broker_connection(self.settings.amqp_url.get_secret_value()) as connection:
                return await purge_parked(connection, queues, parked_before=parked_before)
        except BusUnavailable as exc:
            log.warning("parked_purge_failed", error=str(exc))
            return 0


def _meeting_event(
    model: type[MeetingStarted] | type[MeetingCompleted], row: asyncpg.Record
) -> Event[MeetingScheduled]:
    at = row["starts_at"] if model is MeetingStarted else row["ends_at"]
    return new_event(
        model(
            meeting_id=row["meeting_id"],
            user_id=row["user_id"],
            title=row["title"],
            starts_at=row["starts_at"],
            ends_at=row["ends_at"],
            join_url=row["join_url"],
        ),
        source=SOURCE,
        # a meeting moved after it ran starts (and ends) again, under new ids
        id=derived_id(model.event_type, row["meeting_id"], at.isoformat()),
        subject=row["meeting_id"],
        time=at,
    )


def _meeting_moves(row: asyncpg.Record, now: datetime) -> list[Event[MeetingScheduled]]:
    moves = []
    if row["state"] == "scheduled":
        moves.append(_meeting_event(MeetingStarted, row))
    if row["ends_at"] <= now:
        moves.append(_meeting_event(MeetingCompleted, row))
    return moves
