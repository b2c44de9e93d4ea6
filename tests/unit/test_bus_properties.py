"""The AMQP properties an event travels with: the same for a single publish, a batch,
a copy sent straight to a queue."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.bus import PRIORITY_LEVELS
from shared.bus._outgoing import event_message
from shared.events import CONTENT_TYPE, MatchFound, RequestNotification, new_event

MATCH = new_event(
    MatchFound.model_construct(
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
    time=datetime(2026, 12, 7, 14, 0, 5, tzinfo=UTC),
)
URGENT = new_event(
    RequestNotification(user_id="u-1", type="t", title="x", body="y", priority="urgent"),
    source="herald/gateway",
)


def test_an_event_travels_persistent_with_its_ids_type_and_time() -> None:
    message = event_message(MATCH, app_id="herald-matcher")
    p = message.properties
    assert (message.routing_key, message.label, message.to_queue) == (
        "match.found",
        "match.found",
        False,
    )
    assert message.body == MATCH.to_json()
    assert p.delivery_mode == 2
    assert (p.message_id, p.correlation_id, p.message_type) == ("evt-1", "corr-1", "match.found")
    assert (p.content_type, p.app_id, p.headers) == (CONTENT_TYPE, "herald-matcher", {})
    assert p.timestamp == MATCH.time
    assert p.priority == 0  # no priority field


def test_a_payload_priority_becomes_the_amqp_priority_unless_overridden() -> None:
    assert event_message(URGENT, app_id="a").properties.priority == PRIORITY_LEVELS["urgent"]
    assert event_message(URGENT, app_id="a", priority=1).properties.priority == 1


def test_a_message_for_a_queue_goes_there_with_its_headers() -> None:
    message = event_message(
        URGENT, app_id="a", headers={"x-herald-attempt": 2}, queue="q.retry.1000"
    )
    assert (message.routing_key, message.to_queue, message.label) == (
        "q.retry.1000",
        True,
        "notification.requested",
    )
    assert message.properties.headers == {"x-herald-attempt": 2}
