"""The event contract: what a producer may send and what it is told when it is wrong."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.bus import about_user
from shared.errors import InvalidEvent
from shared.events import (
    ALL_PAYLOADS,
    JobPosted,
    JobType,
    RequestNotification,
    Tick,
    UserDeleted,
    UserSignedUp,
    derived_id,
    new_event,
    parse_event,
    payload_model,
)


def envelope(type_: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "jobboard/test",
        "type": type_,
        "time": "2026-11-23T10:00:00Z",
        "data": data,
        **extra,
    }


SIGNED_UP = {"user_id": "u1", "email": "ada@example.com", "timezone": "Europe/Paris"}


def test_a_valid_event_parses_into_its_typed_payload() -> None:
    event = parse_event(json.dumps(envelope("user.signed_up", SIGNED_UP)))
    assert isinstance(event.data, UserSignedUp)
    assert event.data.timezone == "Europe/Paris"
    assert event.time == datetime(2026, 11, 23, 10, tzinfo=UTC)


def test_correlation_id_defaults_to_the_event_id() -> None:
    plain = parse_event(envelope("user.signed_up", SIGNED_UP))
    carried = parse_event(envelope("user.signed_up", SIGNED_UP, correlationid="req-9"))
    assert plain.correlation_id == "evt-1"
    assert carried.correlation_id == "req-9"


def test_extension_attributes_and_extra_payload_fields_survive_a_round_trip() -> None:
    raw = envelope("user.signed_up", {**SIGNED_UP, "plan": "pro"}, traceparent="00-abc")
    event = parse_event(raw)
    again = json.loads(event.to_json())
    assert again["traceparent"] == "00-abc"
    assert again["data"]["plan"] == "pro"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"id": "x"}).encode(), "'type' is required"),
        (json.dumps(envelope("job.exploded", {})).encode(), "unknown event type 'job.exploded'"),
    ],
)
def test_broken_bodies_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        parse_event(body)


def test_a_missing_payload_field_is_named_in_the_reason() -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(envelope("user.signed_up", {"email": "ada@example.com"}))
    assert "data.user_id: Field required" in info.value.reason


def test_a_time_without_offset_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="UTC offset"):
        parse_event(envelope("user.signed_up", SIGNED_UP, time="2026-11-23T10:00:00"))


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="IANA time zone"):
        parse_event(envelope("user.signed_up", {**SIGNED_UP, "timezone": "Mars/Olympus"}))


@pytest.mark.parametrize("spec", ["0.3", "2.0"])
def test_only_cloudevents_1_0_is_accepted(spec: str) -> None:
    with pytest.raises(InvalidEvent, match="specversion"):
        parse_event(envelope("user.signed_up", SIGNED_UP, specversion=spec))


def test_every_payload_type_is_reachable_by_its_type_name() -> None:
    for model in ALL_PAYLOADS:
        name = "tick.minute" if model is Tick else model.event_type
        assert payload_model(name) is model
    assert payload_model("tick.hourly") is Tick
    assert payload_model("nope.never") is None


def test_ticks_take_their_type_from_the_schedule() -> None:
    slot = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    event = new_event(Tick(schedule="minute", slot=slot), source="herald/scheduler")
    assert event.type == "tick.minute"
    assert parse_event(event.to_json()).data == Tick(schedule="minute", slot=slot)


def test_new_event_stamps_type_and_schema() -> None:
    data = RequestNotification(user_id="u1", type="welcome", title="Hi", body="Welcome")
    event = new_event(data, source="herald/test")
    assert event.type == "notification.requested"
    assert event.dataschema == "urn:herald:notification.requested:v1"
    assert event.id
    assert event.time.tzinfo is not None


def test_derived_ids_are_stable_and_distinct() -> None:
    assert derived_id("tick", "minute", "10:05") == derived_id("tick", "minute", "10:05")
    assert derived_id("tick", "minute", "10:05") != derived_id("tick", "minute", "10:06")
    # the separator keeps ("ab", "c") and ("a", "bc") apart
    assert derived_id("ab", "c") != derived_id("a", "bc")


@pytest.mark.parametrize(
    "parts",
    [("tick", "minute", "10:05"), ("match", "u-1", "j-1"), ("",), ("é", "求人", "😀", "\x1f")],
)
def test_derived_ids_are_the_uuid5_of_the_joined_parts(parts: tuple[str, ...]) -> None:
    # ids already published and stored must not change
    expected = uuid.uuid5(uuid.UUID("6a0d6b0e-6c1b-5d0e-9a57-6865726c6400"), "\x1f".join(parts))
    assert derived_id(*parts) == str(expected)


def test_job_posted_needs_a_real_url_and_a_known_job_type() -> None:
    job = {
        "job_id": "j1",
        "title": "Engineer",
        "company": "Acme",
        "description": "",
        "location": None,
        "remote": True,
        "salary_min": None,
        "salary_max": None,
        "currency": None,
        "job_type": "full_time",
        "url": "https://jobs.example.com/j1",
        "posted_at": "2026-11-23T09:00:00Z",
    }
    assert isinstance(parse_event(envelope("job.posted", job)).data, JobPosted)
    with pytest.raises(InvalidEvent, match=r"data\.url"):
        parse_event(envelope("job.posted", {**job, "url": "not a url"}))
    with pytest.raises(InvalidEvent, match=r"data\.job_type"):
        parse_event(envelope("job.posted", {**job, "job_type": "gig"}))


def test_a_job_with_no_place_and_no_salary_survives_the_wire() -> None:
    """Null fields are left out of the JSON; reading it back must not miss them."""
    job = JobPosted(
        job_id="j-1",
        title="Remote Python developer",
        company="Acme",
        description="...",
        location=None,
        remote=True,
        salary_min=None,
        salary_max=None,
        currency=None,
        job_type=JobType.CONTRACT,
        url="https://jobs.example.com/1",  # type: ignore[arg-type]
        posted_at=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
    )
    back = parse_event(new_event(job, source="tests").to_json()).data
    assert back == job


def test_a_time_far_ahead_is_clamped_and_then_counts_as_older_than_any_erasure() -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    ahead = new_event(UserDeleted(user_id="u"), source="t", time=now + timedelta(days=3650))
    clamped = ahead.clamped(now + timedelta(seconds=60))
    assert clamped.time == now + timedelta(seconds=60)
    assert clamped.trusted_time < now - timedelta(days=365)
    # the mark travels with the event: a consumer downstream sees it too
    again = parse_event(clamped.to_json()).clamped(now + timedelta(seconds=90))
    assert again.time == clamped.time
    assert again.trusted_time == clamped.trusted_time
    # within the allowance the event is left as it is
    near = new_event(UserDeleted(user_id="u"), source="t", time=now + timedelta(seconds=30))
    assert near.clamped(now + timedelta(seconds=60)) is near
    assert near.trusted_time == near.time


def test_a_message_is_about_a_user_by_its_data_user_id_valid_or_not() -> None:
    about = about_user("ada")
    assert about(new_event(UserDeleted(user_id="ada"), source="t").to_json())
    assert about(json.dumps({"type": "user.signed_up", "data": {"user_id": "ada"}}).encode())
    # a subject is a job's, a meeting's or a schedule's id as often as a user's: erasing
    # user "42" must leave job 42's events and others' reminders about meeting 42
    assert not about(json.dumps({"type": "job.expired", "subject": "ada", "data": {}}).encode())
    assert not about(
        json.dumps(
            {
                "type": "reminder.due",
                "subject": "ada",
                "data": {"user_id": "bo", "subject_id": "ada"},
            }
        ).encode()
    )
    assert not about(new_event(UserDeleted(user_id="adam"), source="t").to_json())
    assert not about(b"not json, ada")
    assert not about(b'["ada"]')
