"""When a user's digest falls due, and the window it covers (pure, no I/O).

A digest is due at ``hour``:00 in the user's IANA zone, every day or on one weekday.
The zone's rules (daylight saving included) decide the instant, so 09:00 in Berlin
is 08:00 UTC in winter and 07:00 in summer, and a window spanning a change is 23 or
25 hours long. After downtime, one digest covers everything since the last one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.events import DigestDue, Event, derived_id, new_event

from .schedules import Schedule, ScheduleError, zone
from .ticks import SOURCE

Frequency = Literal["daily", "weekly"]
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class DigestPlan:
    frequency: Frequency
    timezone: str
    hour: int
    # 0 = Monday
    weekday: int

    def schedule(self) -> Schedule:
        # cron counts Sunday as 0, Python (and our setting) Monday as 0
        day = "*" if self.frequency == "daily" else str((self.weekday + 1) % 7)
        try:
            tz = zone(self.timezone)
        except ScheduleError:
            tz = zone("UTC")  # the gateway validates zones; an odd row still gets digests
        return Schedule(f"digest_{self.frequency}", f"0 {self.hour} * * {day}", tz, "once")

    def start(self, now: datetime) -> tuple[datetime, datetime]:
        """For a user new to this plan: (next due time, start of its window). The
        first window reaches back one period, as if the last digest had gone out."""
        s = self.schedule()
        return s.next_after(now), s.latest_at_or_before(now)


@dataclass(frozen=True)
class Due:
    window_start: datetime
    window_end: datetime
    next_at: datetime


def due(plan: DigestPlan, window_start: datetime, now: datetime) -> Due:
    """The digest due at ``now`` (its ``next_at`` has passed): it ends at the latest
    due time, however many were missed, and starts where the last one ended."""
    s = plan.schedule()
    return Due(window_start, s.latest_at_or_before(now), s.next_after(now))


def digest_event(user_id: str, frequency: str, window: Due) -> Event[DigestDue]:
    """Same user, frequency and window end: same id, whichever replica sends it."""
    return new_event(
        DigestDue(
            user_id=user_id,
            frequency=frequency,
            window_start=window.window_start,
            window_end=window.window_end,
        ),
        source=SOURCE,
        id=derived_id("digest.due", user_id, frequency, window.window_end.isoformat()),
        subject=user_id,
        time=window.window_end,
    )
