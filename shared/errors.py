"""The error tree handlers and adapters speak.

    HeraldError
    ├── Retry(after=None)        transient: try again, after ``after`` seconds if given
    │   └── BusUnavailable       the broker did not confirm a publish in time
    ├── Defer(after)             not yet (a rate limit, a hold): come back, no attempt spent
    ├── Permanent(reason)        will never succeed: park it, do not retry
    │   └── Unpublishable        a message the bus cannot encode (a property too long)
    ├── Ignore(reason)           no longer applies (its user was erased): acknowledge it
    └── InvalidEvent(reason)     the input itself is malformed or breaks the schema

Handlers raise ``Retry`` or ``Permanent``; any other exception counts as transient.
Adapters translate foreign errors (aiohttp, asyncpg, aiormq) into this tree at the edge
that meets them, ``raise ... from exc``. The consumer wrapper in ``shared.bus`` is
the one place that turns them into ack, retry or park.
"""

from __future__ import annotations


class HeraldError(Exception):
    """Base of every error Herald raises on purpose."""


class Retry(HeraldError):
    def __init__(self, reason: str = "retry requested", *, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after


class BusUnavailable(Retry):
    pass


class Defer(HeraldError):
    """Nothing failed; the message is due later. It waits in a delay queue without
    using up one of its retry attempts."""

    def __init__(self, after: float, reason: str = "deferred") -> None:
        super().__init__(reason)
        self.after = after
        self.reason = reason


class Permanent(HeraldError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unpublishable(Permanent):
    """A message that cannot go on the wire as it is (a property AMQP cannot encode,
    headers too large for a frame): publishing it again would fail again."""


class Ignore(HeraldError):
    """The event is valid but no longer applies (say, its user was erased since):
    acknowledged and counted, neither retried nor parked, since parking would keep
    the personal data the erasure removed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidEvent(HeraldError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
