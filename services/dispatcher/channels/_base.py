"""The one small interface every channel implements, and the outcome it reports."""

from __future__ import annotations

import email.utils
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

    @classmethod
    def delivered(cls, detail: str = "", status_code: int | None = None) -> DeliveryResult:
        return cls(Outcome.DELIVERED, detail, status_code=status_code)

    @classmethod
    def transient(
        cls, detail: str, *, retry_after: float | None = None, status_code: int | None = None
    ) -> DeliveryResult:
        return cls(Outcome.TRANSIENT, detail, retry_after, status_code)

    @classmethod
    def permanent(cls, detail: str, status_code: int | None = None) -> DeliveryResult:
        return cls(Outcome.PERMANENT, detail, status_code=status_code)

    @classmethod
    def skipped(cls, detail: str) -> DeliveryResult:
        return cls(Outcome.SKIPPED, detail)


@dataclass(frozen=True)
class Notification:
    id: uuid.UUID
    user_id: str
    type: str
    title: str
    body: str
    priority: str
    created_at: datetime
    data: dict[str, Any] = field(default_factory=dict)

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
    """Stable across retries: receivers de-duplicate on it (webhook-id, Message-ID)."""
    return uuid.UUID(derived_id("delivery", str(notification_id), str(endpoint_id)))


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
    return DeliveryResult.permanent(f"HTTP {status}", status)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as delay-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
