"""A batch publish carries the same AMQP properties as a single publish of the event."""

from __future__ import annotations

from typing import Any

import pytest
from pamqp import frame
from pamqp.header import ContentHeader

from shared.bus import Bus
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
