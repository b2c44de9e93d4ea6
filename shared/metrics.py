"""Prometheus metrics a service owns, against its own registry.

Names follow ``herald_<what>_<unit>`` and every series carries a ``service`` label,
so one Grafana board can put the four services side by side. The registry also has
the client's standard process and Python series (``process_resident_memory_bytes``,
``process_cpu_seconds_total``, ``python_gc_*``, ``python_info``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

M = TypeVar("M", Counter, Gauge, Histogram)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServiceMetrics:
    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry if registry is not None else CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.consumed = Counter(
            "herald_events_consumed_total",
            "Messages taken from a work queue, by event type and outcome (ok, retried, parked)",
            ["service", "queue", "type", "outcome"],
            registry=r,
        )
        self.published = Counter(
            "herald_events_published_total",
            "Events published, by type and outcome (confirmed, failed)",
            ["service", "type", "outcome"],
            registry=r,
        )
        self.handler_seconds = Histogram(
            "herald_handler_duration_seconds",
            "Time spent handling one message, by event type",
            ["service", "type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "herald_retries_total",
            "Messages sent to a retry delay queue",
            ["service", "queue"],
            registry=r,
        )
        self.parked = Counter(
            "herald_parked_total",
            "Messages moved to a parking queue, by reason",
            ["service", "queue", "reason"],
            registry=r,
        )
        self.in_flight = Gauge(
            "herald_messages_in_flight",
            "Messages being handled right now",
            ["service"],
            registry=r,
        )
        self.bus_connected = Gauge(
            "herald_bus_connected",
            "1 while the service holds a live broker connection",
            ["service"],
            registry=r,
        )
        self.reconnects = Counter(
            "herald_bus_reconnects_total",
            "Broker connections re-established after a loss",
            ["service"],
            registry=r,
        )

    def child(self, metric: M, *labels: str) -> M:
        """``metric.labels(*labels)``, cached: the bus calls this several times per
        message and prometheus-client's lookup takes a lock and validates each time."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
