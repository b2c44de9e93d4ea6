"""A batch publish carries the same AMQP properties as a single publish of the event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pamqp import commands as spec
from pamqp import frame
from pamqp.header import ContentHeader

from shared.bus import Bus, _pipeline
from shared.events import Event, MatchFound, RequestNotification, new_event
from shared.metrics import ServiceMetrics


def marshalled(properties: Any) -> bytes:
    return frame.marshal(ContentHeader(properties=properties, body_size=10), 1)


MATCH = new_event(
    MatchFound(
        match_id="m-1",
        user_id="u-1",
        job_id="j-1",
        score=0.61,
        score_parts={"vector": 0.5, "skills": 0.11},
        matched_skills=["python"],
        missing_skills=["go"],
        reason="new_match",
    ),
    source="herald/matcher",
    id="evt-1",
    correlation_id="corr-1",
)
URGENT = new_event(
    RequestNotification(user_id="u-1", type="t", title="x", body="y", priority="urgent"),
    source="herald/gateway",
)


@pytest.mark.parametrize(
    ("event", "priority", "headers"),
    [(MATCH, None, None), (URGENT, None, None), (URGENT, 1, {"x-herald-attempt": 2})],
)
def test_batch_properties_are_the_single_publish_ones_byte_for_byte(
    event: Event[Any], priority: int | None, headers: dict[str, Any] | None
) -> None:
    bus = Bus(
        amqp_url="amqp://nowhere",
        namespace="t",
        service="matcher",
        metrics=ServiceMetrics("matcher"),
    )
    single = bus._message(event, priority, headers).properties
    assert marshalled(bus._properties(event, priority, headers)) == marshalled(single)


@pytest.mark.parametrize(
    "properties",
    [
        {},
        {"content_type": "application/cloudevents+json", "headers": {}, "delivery_mode": 2},
        {"priority": 0, "message_id": "", "correlation_id": "c-é", "app_id": "herald-x"},
        {"timestamp": datetime(2026, 12, 7, 14, 0, 5, 999_000, tzinfo=UTC)},
        {"timestamp": datetime(2026, 12, 7, 14, 0, 5)},  # naive: taken as UTC
        {"timestamp": datetime(2026, 12, 7, 15, 0, 5, tzinfo=timezone(timedelta(hours=1)))},
        {"headers": {"x-herald-attempt": 3, "x-herald-error": "boom"}, "priority": 3},
        {"reply_to": "q", "expiration": "60000", "user_id": "guest", "content_encoding": "gzip"},
        {"message_type": "match.found", "message_id": "m" * 255},
    ],
)
def test_header_frames_are_pamqps_byte_for_byte(properties: dict[str, Any]) -> None:
    props = spec.Basic.Properties(**properties)
    for body_size in (0, 10, 70_000):
        expected = frame.marshal(ContentHeader(properties=props, body_size=body_size), 7)
        assert _pipeline.header_frame(props, body_size, 7) == expected


def test_a_header_frame_of_every_publish_is_pamqps() -> None:
    bus = Bus(
        amqp_url="amqp://nowhere", namespace="t", service="matcher", metrics=ServiceMetrics("m")
    )
    for event in (MATCH, URGENT):
        props = bus._properties(event, None)
        assert _pipeline.header_frame(props, 321, 1) == header_of(props, 321)


def test_a_string_too_long_is_refused_as_pamqp_refuses_it() -> None:
    props = spec.Basic.Properties(message_id="m" * 256)
    with pytest.raises(TypeError):
        _pipeline.header_frame(props, 1, 1)


def header_of(properties: Any, body_size: int) -> bytes:
    return frame.marshal(ContentHeader(properties=properties, body_size=body_size), 1)
