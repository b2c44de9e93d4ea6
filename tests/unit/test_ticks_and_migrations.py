"""Tick slots and the migration files shipped in the package."""

from __future__ import annotations

from datetime import UTC, datetime

from services.scheduler.ticks import current_slot, next_slot, tick_event
from shared.db import load_migrations


def test_slots_fall_on_minute_boundaries() -> None:
    now = datetime(2026, 11, 23, 10, 5, 59, 999_000, tzinfo=UTC)
    assert current_slot(now) == datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    assert next_slot(now) == datetime(2026, 11, 23, 10, 6, tzinfo=UTC)
    assert next_slot(datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC
    )


def test_two_replicas_emit_the_same_tick_for_the_same_slot() -> None:
    slot = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    one, two = tick_event("minute", slot), tick_event("minute", slot)
    assert one.id == two.id
    assert one.type == "tick.minute"
    assert one.time == slot
    assert tick_event("minute", next_slot(slot)).id != one.id


def test_migrations_are_ordered_and_numbered_from_one() -> None:
    migrations = load_migrations()
    versions = [m.version for m in migrations]
    assert versions[0] == 1
    assert versions == sorted(versions)
    assert all(m.sql.strip() for m in migrations)
