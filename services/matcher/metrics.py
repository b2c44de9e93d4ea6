"""The matcher's own metrics, on the service's registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from shared.metrics import ServiceMetrics

SCORE_BUCKETS = (0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)


@dataclass(frozen=True)
class MatcherMetrics:
    service: str
    matches: Counter
    scores: Histogram
    jobs_expired: Counter

    @classmethod
    def on(cls, metrics: ServiceMetrics) -> MatcherMetrics:
        r = metrics.registry
        return cls(
            metrics.service,
            Counter(
                "herald_matches_total",
                "match.found announcements published, by reason (new_match, score_improved, alert)",
                ["service", "reason"],
                registry=r,
            ),
            Histogram(
                "herald_match_score",
                "Score of each announced match (0 to 1; none below HERALD_MATCH_THRESHOLD)",
                ["service"],
                buckets=SCORE_BUCKETS,
                registry=r,
            ),
            Counter(
                "herald_matcher_jobs_expired_total",
                "Open jobs closed because their expires_at passed (each announced as job.expired)",
                ["service"],
                registry=r,
            ),
        )

    def announced(self, reason: str, score: float) -> None:
        self.matches.labels(self.service, reason).inc()
        self.scores.labels(self.service).observe(score)
