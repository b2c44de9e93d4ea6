"""Channels: one module each behind the ``Channel`` interface."""

from ._base import (
    Attachment,
    Channel,
    DeliveryResult,
    Notification,
    Outcome,
    classify_http,
    delivery_id,
    parse_retry_after,
    sent_as,
)

__all__ = [
    "Attachment",
    "Channel",
    "DeliveryResult",
    "Notification",
    "Outcome",
    "classify_http",
    "delivery_id",
    "parse_retry_after",
    "sent_as",
]
