"""Who hears about what, when and where: preferences, routing, quiet hours and
de-duplication as pure functions (no I/O), so every rule is unit-tested directly."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

INAPP = "inapp"
EMAIL = "email"


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time


@dataclass(frozen=True)
class ScoreRoute:
    """Matches scoring at least ``min_score`` go to ``channels`` at once (``None``:
    every channel the user has on) and, with ``digest``, into the next digest."""

    min_score: float
    channels: tuple[str, ...] | None = None
    digest: bool = False

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> ScoreRoute:
        channels = raw.get("channels")
        return cls(
            min_score=float(raw.get("min_score", 0.0)),
            channels=None if channels is None else tuple(str(c) for c in channels),
            digest=bool(raw.get("digest", False)),
        )


# notification kind → the preference switch that silences it
CATEGORY_SWITCH = {
    "job_match": "notify_new_matches",
    "application_status": "notify_application_updates",
    "meeting_reminder": "notify_reminders",
    "reminder": "notify_reminders",
    "digest": "notify_digests",
}


@dataclass(frozen=True)
class Preferences:
    timezone: str = "UTC"
    email_enabled: bool = True
    digest_frequency: str = "instant"
    notify_new_matches: bool = True
    notify_application_updates: bool = True
    notify_reminders: bool = True
    notify_digests: bool = True
    min_match_score: float = 0.0
    quiet_hours: QuietHours | None = None
    channels: Mapping[str, bool] = field(default_factory=dict)
    score_routes: tuple[ScoreRoute, ...] = ()

    def wants(self, kind: str) -> bool:
        switch = CATEGORY_SWITCH.get(kind)
        return True if switch is None else bool(getattr(self, switch))

    def channel_on(self, channel: str) -> bool:
        if channel == EMAIL and not self.email_enabled:
            return False
        return self.channels.get(channel, True)


def route_match(prefs: Preferences, score: float) -> ScoreRoute | None:
    """Where a match goes, or ``None`` when the user does not want it."""
    if not prefs.notify_new_matches or score < prefs.min_match_score:
        return None
    if prefs.score_routes:
        for route in sorted(prefs.score_routes, key=lambda r: r.min_score, reverse=True):
            if score >= route.min_score:
                return route
        return None
    if prefs.digest_frequency == "instant":
        return ScoreRoute(min_score=0.0)
    # daily/weekly: held for the digest, visible in the inbox meanwhile;
    # off: the inbox only
    return ScoreRoute(
        min_score=0.0, channels=(INAPP,), digest=prefs.digest_frequency in ("daily", "weekly")
    )


def choose_channels(
    available: Iterable[str], prefs: Preferences, only: Collection[str] | None
) -> list[str]:
    """The endpoint types to deliver on: switched on, and among ``only`` if given."""
    return [c for c in available if prefs.channel_on(c) and (only is None or c in only)]


def quiet_until(now: datetime, timezone: str, quiet: QuietHours | None) -> datetime | None:
    """When the user's quiet hours end if ``now`` falls inside them (UTC), else None.

    Hours are wall-clock times in the user's zone and may span midnight
    (22:00 to 07:00). Across a daylight-saving change the end is the first instant at
    or after that wall-clock time.
    """
    if quiet is None or quiet.start == quiet.end:
        return None
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    t = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        inside = quiet.start <= t < quiet.end
        end_day = local.date()
    else:
        inside = t >= quiet.start or t < quiet.end
        end_day = local.date() if t < quiet.end else local.date() + timedelta(days=1)
    if not inside:
        return None
    return first_instant(end_day, quiet.end, zone, after=now)


def first_instant(day: date, at: time, zone: ZoneInfo, *, after: datetime) -> datetime:
    """The first instant after ``after`` at which the wall clock in ``zone`` reads
    ``at`` on ``day`` (UTC). On a fall-back night that time happens twice: the
    occurrence still ahead wins. On a spring-forward night it may not happen at all:
    then it is the moment the clocks jump past it.
    """
    occurrences = []
    for fold in (0, 1):
        local = datetime.combine(day, at, tzinfo=zone).replace(fold=fold)
        utc = local.astimezone(UTC)
        if utc.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
            occurrences.append(utc)
    if not occurrences:
        return _end_of_gap(day, at, zone)
    ahead = sorted(t for t in set(occurrences) if t > after)
    return ahead[0] if ahead else max(occurrences)


def _end_of_gap(day: date, at: time, zone: ZoneInfo) -> datetime:
    # A skipped wall-clock time maps (PEP 495) to two instants around the jump:
    # fold=1 with the offset after it, fold=0 with the offset before. The jump is
    # between them; find the first second whose wall clock reads at least ``at``.
    wanted = datetime.combine(day, at)
    lo = datetime.combine(day, at, tzinfo=zone).replace(fold=1).astimezone(UTC)
    hi = datetime.combine(day, at, tzinfo=zone).replace(fold=0).astimezone(UTC)
    low, high = sorted((int(lo.timestamp()), int(hi.timestamp())))
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= wanted:
            high = mid
        else:
            low = mid
    return datetime.fromtimestamp(high, UTC)


class DedupStrategy(StrEnum):
    DEFAULT = "default"  # identical content never twice; changed content may go again
    AGGRESSIVE = "aggressive"  # once per user, subject and type
    OFF = "off"


REPEAT_AFTER = timedelta(hours=24)
ANY_CONTENT = "*"


def content_hash(title: str, body: str, data: Mapping[str, Any] | None = None) -> str:
    payload = json.dumps([title, body, data or {}], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class DedupRule:
    """How the dispatcher records a notification in ``dedup_marks``: the mark's
    content key, and after how long an identical mark may be overwritten (sent
    again); ``None`` means never."""

    content_key: str
    repeat_after: timedelta | None


def dedup_rule(strategy: DedupStrategy, content: str, *, repeatable: bool) -> DedupRule | None:
    """``None``: no de-duplication. ``repeatable`` is for updates that may be worth
    hearing again (``score_improved`` matches, application status changes)."""
    if strategy is DedupStrategy.OFF:
        return None
    if strategy is DedupStrategy.AGGRESSIVE:
        return DedupRule(ANY_CONTENT, None)
    return DedupRule(content, REPEAT_AFTER if repeatable else None)
