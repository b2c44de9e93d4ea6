"""The cron table: which schedules exist and when their slots fall (pure, no I/O).

An expression is a five-field cron line, evaluated in the schedule's time zone by
cronsim (DST-aware: a local 09:00 stays 09:00 on both sides of a change), or
``@every <n>s|m|h`` for a fixed interval counted from the Unix epoch, so every
replica agrees on the slots without sharing any state.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from shared.settings import CatchUp, ScheduleSpec

# The defaults of the issue: the matcher already listens to hourly, daily and weekly.
DEFAULT_SCHEDULES: Mapping[str, str] = {
    "minute": "* * * * *",
    "hourly": "0 * * * *",
    "daily": "0 9 * * *",
    "weekly": "0 9 * * 1",
    "monthly": "0 10 1 * *",
}

_EVERY = re.compile(r"^@every\s+(\d+)\s*([smh])$")
_UNITS = {"s": 1, "m": 60, "h": 3600}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TINY = timedelta(microseconds=1)


class ScheduleError(ValueError):
    """A schedule that cannot be evaluated: a bad expression or time zone."""


@dataclass(frozen=True)
class Schedule:
    name: str
    expression: str
    zone: ZoneInfo
    catchup: CatchUp

    def __post_init__(self) -> None:
        # evaluate once so a bad expression fails at start-up, not at the first slot
        self.next_after(_EPOCH)

    @property
    def _interval(self) -> timedelta | None:
        match = _EVERY.match(self.expression.strip())
        if match is None:
            return None
        seconds = int(match[1]) * _UNITS[match[2]]
        if seconds <= 0:
            raise ScheduleError(f"{self.name}: @every needs a positive interval")
        return timedelta(seconds=seconds)

    def next_after(self, moment: datetime) -> datetime:
        """The first slot strictly after ``moment`` (UTC)."""
        interval = self._interval
        if interval is not None:
            steps = (moment - _EPOCH) // interval
            return _EPOCH + (steps + 1) * interval
        try:
            found = next(CronSim(self.expression, moment.astimezone(self.zone)))
        except (CronSimError, StopIteration) as exc:
            raise ScheduleError(f"{self.name}: {self.expression!r}: {exc}") from exc
        return found.astimezone(UTC)

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The last slot at or before ``moment`` (UTC)."""
        interval = self._interval
        if interval is not None:
            return _EPOCH + ((moment - _EPOCH) // interval) * interval
        # cronsim's reverse walk is strict at an exact slot: start just after it
        start = (moment + _TINY).astimezone(self.zone)
        try:
            found = next(CronSim(self.expression, start, reverse=True))
        except (CronSimError, StopIteration) as exc:
            raise ScheduleError(f"{self.name}: {self.expression!r}: {exc}") from exc
        return found.astimezone(UTC)

    def slots_between(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Slots in ``(after, until]``, oldest first."""
        slot = self.next_after(after)
        while slot <= until:
            yield slot
            slot = self.next_after(slot)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"{name!r} is not an IANA time zone") from exc


def cron_table(
    configured: Mapping[str, ScheduleSpec | None], default_catchup: CatchUp
) -> list[Schedule]:
    """The defaults, with configured entries added or replacing them (None removes)."""
    specs: dict[str, ScheduleSpec | None] = {
        name: ScheduleSpec(cron=cron) for name, cron in DEFAULT_SCHEDULES.items()
    }
    specs.update(configured)
    return [
        Schedule(name, spec.cron, zone(spec.timezone), spec.catchup or default_catchup)
        for name, spec in sorted(specs.items())
        if spec is not None
    ]
