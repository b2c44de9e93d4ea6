"""Which delay queue a failed message goes to, and when it is exhausted."""

from __future__ import annotations

import pytest

from shared.bus import QueueNames, topic_matches
from shared.bus._backoff import retry_step

DELAYS = [1.0, 5.0, 30.0, 120.0, 600.0]


@pytest.mark.parametrize(("attempt", "step"), [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4)])
def test_each_failure_waits_longer(attempt: int, step: int) -> None:
    assert retry_step(attempt, DELAYS) == step


def test_exhausted_after_every_delay_was_used() -> None:
    assert retry_step(len(DELAYS) + 1, DELAYS) is None


def test_retry_after_jumps_to_the_first_step_that_waits_long_enough() -> None:
    assert retry_step(1, DELAYS, retry_after=20) == 2
    assert retry_step(1, DELAYS, retry_after=5) == 1


def test_retry_after_shorter_than_the_schedule_keeps_the_schedule() -> None:
    assert retry_step(3, DELAYS, retry_after=2) == 2


def test_retry_after_longer_than_every_step_uses_the_longest() -> None:
    assert retry_step(1, DELAYS, retry_after=86_400) == len(DELAYS) - 1


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        retry_step(0, DELAYS)


def test_delay_queues_are_named_by_their_delay_in_milliseconds() -> None:
    names = QueueNames.of("herald", "dispatcher", "notifications")
    assert names.work == "herald.dispatcher.notifications"
    assert names.retry(1.0) == "herald.dispatcher.notifications.retry.1000"
    assert names.retry(0.2) == "herald.dispatcher.notifications.retry.200"
    assert names.parked == "herald.dispatcher.notifications.parked"
    assert names.all([1.0, 5.0]) == [
        "herald.dispatcher.notifications",
        "herald.dispatcher.notifications.retry.1000",
        "herald.dispatcher.notifications.retry.5000",
        "herald.dispatcher.notifications.parked",
    ]


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("job.posted", "job.posted", True),
        ("job.*", "job.posted", True),
        ("job.*", "job.posted.late", False),
        ("job.#", "job", True),
        ("job.#", "job.posted.late", True),
        ("#", "anything.at.all", True),
        ("*.deleted", "user.deleted", True),
        ("*.deleted", "user.signed_up", False),
        ("tick.*", "tick", False),
        ("#.due", "reminder.due", True),
        ("#.due", "digest.weekly.due", True),
    ],
)
def test_topic_patterns_follow_amqp_semantics(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches
