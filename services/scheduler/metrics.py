"""The scheduler's own metrics, on the service's registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from shared.metrics import ServiceMetrics


@dataclass(frozen=True)
class SchedulerMetrics:
    service: str
    leader: Gauge
    ticks: Counter
    last_tick: Gauge
    slots_skipped: Counter
    reminders: Counter
    meetings: Counter
    digests: Counter
    retention: Counter

    @classmethod
    def on(cls, metrics: ServiceMetrics) -> SchedulerMetrics:
        r = metrics.registry
        return cls(
            metrics.service,
            Gauge(
                "herald_scheduler_leader",
                "1 while this replica holds the scheduler lease",
                ["service"],
                registry=r,
            ),
            Counter(
                "herald_scheduler_ticks_published_total",
                "Ticks published, by schedule",
                ["service", "schedule"],
                registry=r,
            ),
            Gauge(
                "herald_scheduler_last_tick_timestamp_seconds",
                "When this replica last published a tick of the schedule (Unix time): "
                "the clock's heartbeat, for the no-tick alert",
                ["service", "schedule"],
                registry=r,
            ),
            Counter(
                "herald_scheduler_catchups_skipped_total",
                "Times missed slots of a schedule were left out by its catch-up policy",
                ["service", "schedule"],
                registry=r,
            ),
            Counter(
                "herald_scheduler_reminders_total",
                "Reminders by kind and outcome (sent; skipped: overtaken or pointless)",
                ["service", "kind", "outcome"],
                registry=r,
            ),
            Counter(
                "herald_scheduler_meeting_transitions_total",
                "Meeting state changes published (started, completed)",
                ["service", "state"],
                registry=r,
            ),
            Counter(
                "herald_scheduler_digests_emitted_total",
                "digest.due events published, by frequency",
                ["service", "frequency"],
                registry=r,
            ),
            Counter(
                "herald_scheduler_retention_removed_total",
                "Rows and messages removed or closed by retention, by what they were",
                ["service", "what"],
                registry=r,
            ),
        )
