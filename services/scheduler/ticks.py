"""Tick slots: pure arithmetic on minute boundaries (no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.events import Event, Tick, derived_id, new_event

SOURCE = "herald/scheduler"
MINUTE = timedelta(minutes=1)


def current_slot(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def next_slot(now: datetime) -> datetime:
    return current_slot(now) + MINUTE


def tick_event(schedule: str, slot: datetime) -> Event[Tick]:
    """The id is a function of schedule and slot, so two replicas (or one replica
    restarted within the minute) emit the same event and consumers keep one."""
    slot_text = slot.isoformat()
    return new_event(
        Tick(schedule=schedule, slot=slot),
        source=SOURCE,
        id=derived_id("tick", schedule, slot_text),
        subject=schedule,
        time=slot,
    )
