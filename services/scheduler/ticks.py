"""Which slots of a schedule to publish now, and the tick event of a slot (pure).

A slot at most ``late_within`` old is *late*, not missed: a leader that just took
over from a dead one publishes it, so a fail-over loses no slot. Older slots were
missed during downtime and follow the schedule's catch-up policy:

- ``skip``: none of them;
- ``once``: the most recent one, and only when no late slot runs anyway;
- ``all``: each of them, oldest first, but at most ``limit`` (the most recent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.events import Event, Tick, derived_id, new_event

from .schedules import Schedule

SOURCE = "herald/scheduler"


@dataclass(frozen=True)
class Due:
    # to publish now, oldest first
    slots: list[datetime]
    # the last slot dealt with (published or skipped): the schedule's new cursor
    cursor: datetime
    # missed slots left out by the policy lie in (skipped_after, skipped_until]
    skipped_after: datetime | None = None
    skipped_until: datetime | None = None


def due_slots(
    schedule: Schedule,
    cursor: datetime | None,
    now: datetime,
    *,
    late_within: timedelta,
    limit: int,
) -> Due:
    """What to publish at ``now`` for a schedule whose slots up to ``cursor`` were
    dealt with (``None``: never ran; nothing from before it started is owed)."""
    horizon = now - late_within
    newest_missed = schedule.latest_at_or_before(horizon)
    if cursor is None:
        cursor = newest_missed
    latest = schedule.latest_at_or_before(now)
    if latest <= cursor:
        return Due([], cursor)
    late = list(schedule.slots_between(max(cursor, newest_missed), now))
    if newest_missed <= cursor:
        return Due(late, latest)
    policy = schedule.catchup
    if policy == "all":
        missed = _recent_slots(schedule, newest_missed, cursor, limit)
        skipped_until = missed[0] - timedelta(microseconds=1) if missed else None
        oldest_kept = schedule.next_after(cursor)
        skipped = skipped_until is not None and skipped_until >= oldest_kept
        return Due(
            missed + late,
            latest,
            cursor if skipped else None,
            skipped_until if skipped else None,
        )
    if policy == "once" and not late:
        return Due([newest_missed], latest, cursor, newest_missed - timedelta(microseconds=1))
    return Due(late, latest, cursor, newest_missed)


def _recent_slots(
    schedule: Schedule, newest: datetime, after: datetime, limit: int
) -> list[datetime]:
    """Up to ``limit`` slots in ``(after, newest]``, oldest first."""
    found = [newest]
    while len(found) < limit:
        earlier = schedule.latest_at_or_before(found[-1] - timedelta(microseconds=1))
        if earlier <= after:
            break
        found.append(earlier)
    return found[::-1]


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
