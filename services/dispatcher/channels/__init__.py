"""Channels: one module each behind the ``Channel`` interface."""

from ._base import (
    Channel,
    DeliveryResult,
    Notification,
    Outcome,
    classify_http,
    delivery_id,
    parse_retry_after,
)

__all__ = [
    "Channel",
    "DeliveryResult",
    "Notification",
    "Outcome",
    "classify_http",
    "delivery_id",
    "parse_retry_after",
]
