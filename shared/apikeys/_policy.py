"""What a key may do, decided without I/O: its scopes, the event types it may
publish, and how long it lives.

    events:write   POST /v1/events, for the types its allow-list names (every type the
                   gateway takes when it has none), except the guarded ones below
    users:erase    erasure: DELETE /v1/users/{id}, and user.deleted over POST /v1/events
                   (which also needs events:write)
    admin          every route, erasure included: the operator could always erase

An allow-list holds AMQP topic patterns, as the bus binds queues: ``job.*`` is
``job.posted``, ``job.updated`` and ``job.closed``; ``#`` is any number of words.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

from shared.bus import topic_matches
from shared.events import INTEGRATOR_TYPES

KEY_PREFIX = "hk_"
SCOPES = frozenset({"events:write", "users:erase", "admin"})
# the scope's first name: keys created with it keep working, new ones get the new name
ALIASES = {"events:publish": "events:write"}
# types that need a scope beyond events:write: publishing one erases a person's data
GUARDED_TYPES = {"user.deleted": "users:erase"}

MAX_NAME = 100
MAX_EVENT_TYPES = 50
MAX_LIFETIME = timedelta(days=3650)
MAX_GRACE = timedelta(days=30)
_WORD = r"(?:[a-z0-9_]+|\*|#)"
_PATTERN = re.compile(rf"^{_WORD}(?:\.{_WORD}){{0,9}}$")
_DURATION = re.compile(r"^(\d{1,7})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def canonical_scopes(scopes: list[str] | frozenset[str]) -> frozenset[str]:
    return frozenset(ALIASES.get(s, s) for s in scopes)


def check_scopes(scopes: list[str] | frozenset[str]) -> list[str]:
    """The scopes as stored (canonical, sorted), or ``ValueError``."""
    canonical = canonical_scopes(scopes)
    unknown = canonical - SCOPES
    if unknown or not canonical:
        raise ValueError(f"unknown scopes {sorted(unknown)}; choose from {sorted(SCOPES)}")
    return sorted(canonical)


def check_name(name: str) -> str:
    if not name.strip() or len(name) > MAX_NAME or not name.isprintable():
        raise ValueError(f"a key's name is 1 to {MAX_NAME} printable characters")
    return name


def check_event_types(patterns: list[str]) -> list[str]:
    """The allow-list as stored (unique, sorted), or ``ValueError`` naming the pattern
    that is not one or that could never match (a typo would otherwise lock a feed
    out without a word)."""
    if not patterns:
        raise ValueError("an event-type allow-list names at least one type; omit it for all")
    if len(patterns) > MAX_EVENT_TYPES:
        raise ValueError(f"at most {MAX_EVENT_TYPES} event types per key")
    for pattern in patterns:
        if not _PATTERN.fullmatch(pattern):
            raise ValueError(
                f"{pattern!r} is not an event type pattern (dot-separated words of a-z, "
                "0-9 and _; * for one word, # for any number)"
            )
        if not any(topic_matches(pattern, t) for t in INTEGRATOR_TYPES):
            raise ValueError(
                f"{pattern!r} matches no event type the gateway takes "
                f"({', '.join(sorted(INTEGRATOR_TYPES))})"
            )
    return sorted(set(patterns))


def parse_duration(text: str, *, most: timedelta = MAX_LIFETIME) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``45s`` or ``2w``; at most ``most``."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration: a number and s, m, h, d or w (90d)")
    duration = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if duration > most:
        raise ValueError(f"{text!r} is longer than {most.days} days")
    return duration


@dataclass(frozen=True)
class ApiKey:
    """An authenticated key: what it may do, not what it is (that is ``KeyRecord``)."""

    id: uuid.UUID
    name: str
    scopes: frozenset[str]
    # None: every type the gateway takes
    event_types: tuple[str, ...] | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def refusal(self, event_type: str) -> str | None:
        """Why this key may not publish ``event_type``; None when it may."""
        if self.event_types is not None and not any(
            topic_matches(pattern, event_type) for pattern in self.event_types
        ):
            return (
                f"this key may not publish {event_type}: it is limited to "
                f"{', '.join(self.event_types)}"
            )
        needed = GUARDED_TYPES.get(event_type)
        if needed is not None and not self.allows(needed):
            return f"{event_type} erases a person's data: it needs a key with the {needed!r} scope"
        return None
