"""What an API key may publish, and the durations and patterns its owner writes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from shared.apikeys import ApiKey, check_event_types, parse_duration


def key(*scopes: str, event_types: tuple[str, ...] | None = None) -> ApiKey:
    return ApiKey(uuid.uuid4(), "k", frozenset(scopes), event_types)


def test_an_allow_list_lets_through_only_the_types_it_names() -> None:
    feed = key("events:write", event_types=("job.*",))
    assert feed.refusal("job.posted") is None
    assert feed.refusal("job.closed") is None
    reason = feed.refusal("user.signed_up")
    assert reason is not None
    assert "user.signed_up" in reason
    assert "job.*" in reason


def test_a_key_without_an_allow_list_publishes_every_type_but_erasure() -> None:
    writer = key("events:write")
    assert writer.refusal("user.signed_up") is None
    assert writer.refusal("notification.requested") is None
    reason = writer.refusal("user.deleted")
    assert reason is not None
    assert "users:erase" in reason


@pytest.mark.parametrize(
    "eraser",
    [
        key("events:write", "users:erase"),
        key("admin"),  # admin could always erase (DELETE /v1/users/{id}); it still can
        key("events:write", "users:erase", event_types=("user.*",)),
    ],
)
def test_erasure_by_event_takes_the_erase_grant(eraser: ApiKey) -> None:
    assert eraser.refusal("user.deleted") is None


def test_the_grant_does_not_widen_an_allow_list() -> None:
    jobs_only = key("events:write", "users:erase", event_types=("job.*",))
    assert jobs_only.refusal("user.deleted") is not None


@pytest.mark.parametrize(
    ("patterns", "stored"),
    [
        (["job.*"], ["job.*"]),
        (["job.posted", "job.posted", "meeting.#"], ["job.posted", "meeting.#"]),
        (["#"], ["#"]),
    ],
)
def test_allow_lists_are_stored_unique_and_sorted(patterns: list[str], stored: list[str]) -> None:
    assert check_event_types(patterns) == stored


@pytest.mark.parametrize(
    ("patterns", "reason"),
    [
        ([], "at least one"),
        (["Job.Posted"], "not an event type pattern"),
        (["job..posted"], "not an event type pattern"),
        (["job.teleported"], "matches no event type"),
        # Herald's own types never come through the gateway: a pattern for them is a mistake
        (["delivery.*"], "matches no event type"),
    ],
)
def test_allow_lists_that_could_never_match_are_refused(patterns: list[str], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_event_types(patterns)


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_durations_read_as_written(text: str, duration: timedelta) -> None:
    assert parse_duration(text) == duration


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("90", "not a duration"),
        ("d", "not a duration"),
        ("1y", "not a duration"),
        ("-1d", "not a duration"),
        ("1.5h", "not a duration"),
        ("99999999d", "not a duration"),
        ("4000d", "longer than 3650 days"),
    ],
)
def test_durations_that_are_not_one_or_too_long_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_duration(text)
