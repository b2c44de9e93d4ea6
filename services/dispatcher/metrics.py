"""The dispatcher's own metrics, on the service's registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from prometheus_client import Counter, Histogram

from shared.metrics import ServiceMetrics

# event → delivery: from the notification's creation to the provider's answer
DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


M = TypeVar("M", Counter, Histogram)


@dataclass(frozen=True)
class DispatcherMetrics:
    deliveries: Counter
    latency: Histogram
    notifications: Counter
    endpoints_disabled: Counter
    recipient_lookups: Counter
    endpoints_unreadable: Counter
    retention: Counter
    # the service's registry, whose labelled children are kept (``ServiceMetrics.child``)
    source: ServiceMetrics = field(repr=False, compare=False)

    def child(self, metric: M, *labels: str) -> M:
        """``metric.labels(*labels)``, kept: a delivery asked three times."""
        return self.source.child(metric, *labels)

    @classmethod
    def on(cls, metrics: ServiceMetrics) -> DispatcherMetrics:
        r = metrics.registry
        return cls(
            deliveries=Counter(
                "herald_deliveries_total",
                "Delivery attempts by channel and outcome "
                "(delivered, transient, permanent, skipped, failed)",
                ["service", "channel", "outcome"],
                registry=r,
            ),
            latency=Histogram(
                "herald_delivery_latency_seconds",
                "From a notification's creation to its delivery, by channel",
                ["service", "channel"],
                buckets=DELIVERY_BUCKETS,
                registry=r,
            ),
            notifications=Counter(
                "herald_notifications_total",
                "Notifications planned, by kind and outcome (created, duplicate, "
                "suppressed, digest)",
                ["service", "kind", "outcome"],
                registry=r,
            ),
            endpoints_disabled=Counter(
                "herald_endpoints_disabled_total",
                "Channel endpoints disabled after permanent failures, by channel",
                ["service", "channel"],
                registry=r,
            ),
            recipient_lookups=Counter(
                "herald_recipient_lookups_total",
                "Recipients looked up for notification.requested, by result (hit: from "
                "memory; miss: read from PostgreSQL)",
                ["service", "result"],
                registry=r,
            ),
            endpoints_unreadable=Counter(
                "herald_endpoints_unreadable_total",
                "Channel endpoints left out of a send because no configured key opens "
                "their credentials (HERALD_ENCRYPTION_KEYS), by channel",
                ["service", "channel"],
                registry=r,
            ),
            retention=Counter(
                "herald_dispatcher_retention_removed_total",
                "Rows the dispatcher's daily retention removed, by what they were "
                "(notifications, cancelled_requests, jobs)",
                ["service", "what"],
                registry=r,
            ),
            source=metrics,
        )
