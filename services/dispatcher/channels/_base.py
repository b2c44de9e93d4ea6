"""The one small interface every channel implements, and the outcome it reports."""

from __future__ import annotations

import email.utils
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from shared.endpoints import Endpoint
from shared.events import derived_id


class Outcome(StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    detail: str = ""
    retry_after: float | None = None
    status_code: int | None = None
    # the provider's id for what it accepted (Slack ts, Telegram message_id, SMTP queue id)
    provider_id: str | None = None
    # the endpoint itself is gone (HTTP 410, Discord "Unknown Webhook"): disable it now
    endpoint_gone: bool = False
    # the failure is Herald's own configuration (a wrong SMTP password, a revoked bot
    # token or API key), not the user's endpoint: it never counts against the endpoint
    our_fault: bool = False

    @classmethod
    def delivered(
        cls, detail: str = "", status_code: int | None = None, provider_id: str | None = None
    ) -> DeliveryResult:
        return cls(
            outcome=Outcome.DELIVERED,
            detail=detail,
            status_code=status_code,
            provider_id=provider_id,
        )

    @classmethod
    def transient(
        cls, detail: str, *, retry_after: float | None = None, status_code: int | None = None
    ) -> DeliveryResult:
        return cls(
            outcome=Outcome.TRANSIENT,
            detail=detail,
            retry_after=retry_after,
            status_code=status_code,
        )

    @classmethod
    def permanent(cls, detail: str, status_code: int | None = None) -> DeliveryResult:
        return cls(outcome=Outcome.PERMANENT, detail=detail, status_code=status_code)

    @classmethod
    def misconfigured(cls, detail: str, status_code: int | None = None) -> DeliveryResult:
        return cls(
            outcome=Outcome.PERMANENT, detail=detail, status_code=status_code, our_fault=True
        )

    @classmethod
    def skipped(cls, detail: str) -> DeliveryResult:
        return cls(outcome=Outcome.SKIPPED, detail=detail)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # e.g. "text/calendar; method=REQUEST"
    content: bytes


@dataclass(frozen=True)
class Notification:
    """What a channel sends: rendered content, ready for any channel.

    ``title`` and ``body`` are plain text (``body`` may hold several paragraphs);
    ``html`` is the autoescaped HTML rendering for e-mail; ``link`` the one action
    that matters ("View job", "Join meeting"); ``unsubscribe_url`` a signed one-click
    link (RFC 8058) for e-mail. ``delivery_id`` names the delivery this copy goes out
    on (the dispatcher sets it for every send): stable across retries, it is the
    idempotency key receivers de-duplicate on (webhook-id, Message-ID).
    """

    id: uuid.UUID
    user_id: str
    type: str
    title: str
    body: str
    priority: str
    created_at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    html: str | None = None
    link: str | None = None
    attachments: tuple[Attachment, ...] = ()
    unsubscribe_url: str | None = None
    delivery_id: uuid.UUID | None = None

    def as_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "user_id": self.user_id,
            "type": self.type,
            "title": self.title,
            "body": self.body,
            "data": self.data,
            "priority": self.priority,
            "created_at": self.created_at.isoformat(),
        }


def delivery_id(notification_id: uuid.UUID, endpoint_id: uuid.UUID) -> uuid.UUID:
    """Stable across retries: receivers de-duplicate on it (webhook-id, Message-ID).
    Made once, when the delivery is planned, and passed along from there."""
    return uuid.UUID(derived_id("delivery", str(notification_id), str(endpoint_id)))


def sent_as(notification: Notification, endpoint: Endpoint) -> uuid.UUID:
    """The id of the delivery ``notification`` goes out on: the one the dispatcher
    passed, or, for a notification sent by hand (a plugin's own test), the id its
    delivery to ``endpoint`` would have."""
    if notification.delivery_id is not None:
        return notification.delivery_id
    return delivery_id(notification.id, endpoint.id)


class Channel(Protocol):
    name: ClassVar[str]

    async def send(self, notification: Notification, endpoint: Endpoint) -> DeliveryResult: ...


TRANSIENT_STATUSES = frozenset({408, 425, 429})


def classify_http(
    status: int, retry_after_header: str | None, now: datetime | None = None
) -> DeliveryResult:
    """2xx delivered; 408/425/429/5xx transient (honouring Retry-After); 3xx and other
    4xx permanent, since redirects are never followed for user-supplied URLs."""
    if 200 <= status < 300:
        return DeliveryResult.delivered(f"HTTP {status}", status)
    if status in TRANSIENT_STATUSES or status >= 500:
        return DeliveryResult.transient(
            f"HTTP {status}",
            retry_after=parse_retry_after(retry_after_header, now),
            status_code=status,
        )
    if 300 <= status < 400:
        return DeliveryResult.permanent(f"HTTP {status}: redirects are not followed", status)
    if status == 410:
        return DeliveryResult(
            outcome=Outcome.PERMANENT,
            detail="HTTP 410: endpoint is gone",
            status_code=status,
            endpoint_gone=True,
        )
    return DeliveryResult.permanent(f"HTTP {status}", status)


# an HTTP-date is 29 characters; a longer header is not one worth reading
_RETRY_AFTER_MAX_CHARS = 64


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as delay-seconds or an HTTP date; None if absent or unreadable."""
    if not value or len(value) > _RETRY_AFTER_MAX_CHARS:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit also takes "²" and "٣"
        return wait_seconds(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def wait_seconds(value: object) -> float | None:
    """A wait a service put in its answer (a JSON number), as seconds: finite and not
    negative; None for anything else (a string, a bool, a number too big for a float)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an int of a few hundred digits
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
