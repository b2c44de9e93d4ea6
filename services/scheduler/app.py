"""Wire the scheduler: every replica follows meetings and applications on the bus and
competes for the lease; the one holding it runs the rounds (ticks, meeting states,
reminders, digests, retention)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import structlog

from shared.bus import catalog
from shared.errors import BusUnavailable
from shared.runner import Background, Runtime

from . import handlers as h
from .leadership import Lease, NotLeader, holder_id
from .metrics import SchedulerMetrics
from .rounds import Rounds
from .schedules import cron_table

log = structlog.get_logger("herald.scheduler")

Clock = Callable[[], datetime]
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


def utc_now() -> datetime:
    return datetime.now(UTC)


async def keep_lease(lease: Lease, metrics: SchedulerMetrics, gained: asyncio.Event) -> None:
    """Take or renew the lease every third of its period until cancelled; hand it
    over on the way out so a follower need not wait for it to run out."""
    gauge = metrics.leader.labels(metrics.service)
    try:
        while True:
            was = lease.held
            try:
                await lease.hold()
            except _DB_ERRORS as exc:
                lease.lost()
                log.warning("lease_unavailable", error=str(exc))
            if lease.held and not was:
                log.info("leadership_taken", term=lease.term, holder=lease.holder)
                gained.set()
            elif was and not lease.held:
                log.warning("leadership_lost", holder=lease.holder)
            gauge.set(1 if lease.held else 0)
            await asyncio.sleep(lease.period / 3)
    finally:
        gauge.set(0)
        with contextlib.suppress(*_DB_ERRORS):
            await lease.release()


async def run_rounds(lease: Lease, rounds: Rounds, gained: asyncio.Event, clock: Clock) -> None:
    """While leading, run a round at every slot and at least once a second."""
    while True:
        if lease.held:
            try:
                await rounds.run(clock())
            except NotLeader as exc:
                log.info("round_abandoned", reason=str(exc))
            except (*_DB_ERRORS, BusUnavailable) as exc:
                log.warning("round_failed", error=str(exc))
            except Exception:  # a bug in one round must not stop the clock for good
                log.exception("round_crashed")
        gained.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gained.wait(), rounds.pause(clock()))


@dataclass(frozen=True)
class Scheduler:
    lease: Lease
    rounds: Rounds
    metrics: SchedulerMetrics
    # set when this replica takes the lease: its first round runs at once
    gained: asyncio.Event = field(default_factory=asyncio.Event)

    def background(self, clock: Clock) -> list[Background]:
        return [
            keep_lease(self.lease, self.metrics, self.gained),
            run_rounds(self.lease, self.rounds, self.gained, clock),
        ]


def build(runtime: Runtime, clock: Clock = utc_now) -> Scheduler:
    """Subscribe the handlers and make the lease and the rounds (not started)."""
    settings = runtime.settings
    metrics = SchedulerMetrics.on(runtime.metrics)
    schedules = cron_table(settings.schedules, settings.scheduler_catchup)
    deps = h.SubjectDeps(pool=runtime.pool, bus=runtime.bus, settings=settings, clock=clock)
    runtime.bus.subscribe(
        catalog.SCHEDULER_SUBJECTS,
        {
            "meeting.scheduled": functools.partial(h.on_meeting_changed, deps=deps),
            "meeting.cancelled": functools.partial(h.on_meeting_changed, deps=deps),
            "application.status_changed": functools.partial(
                h.on_application_status_changed, deps=deps
            ),
            "user.deleted": functools.partial(h.on_user_deleted, deps=deps),
        },
    )
    lease = Lease(runtime.pool, settings.namespace, holder_id(), settings.scheduler_lease_seconds)
    rounds = Rounds(runtime.pool, runtime.bus, lease, settings, metrics, schedules)
    log.info(
        "cron_table",
        schedules={s.name: f"{s.expression} {s.zone.key} catchup={s.catchup}" for s in schedules},
    )
    return Scheduler(lease, rounds, metrics)


@contextlib.asynccontextmanager
async def setup(runtime: Runtime, clock: Clock = utc_now) -> AsyncIterator[list[Background]]:
    yield build(runtime, clock).background(clock)
