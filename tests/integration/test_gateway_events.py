"""Event ingestion over HTTP in the CloudEvents binding's three modes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest

from shared.apikeys import create_api_key
from shared.bus import Bus, exchange_name
from shared.events import CLAIMED_TIME, Event, parse_event
from shared.settings import Settings
from tests.integration.gateway import Gateway, gateway, gateway_factory
from tests.support import Heard, eventually, hear, quiescent

__all__ = ["gateway", "gateway_factory"]

STRUCTURED = {"content-type": "application/cloudevents+json"}


@pytest.fixture
async def published(bus_factory: Callable[..., Bus]) -> Heard:
    return await hear(bus_factory("probe"), ["user.*", "job.*", "notification.requested"])


def binary_headers(**attributes: str) -> dict[str, str]:
    return {"content-type": "application/json"} | {
        f"ce-{name}": value for name, value in attributes.items()
    }


async def test_binary_mode_events_are_published_like_structured_ones(
    gateway: Gateway, published: Heard
) -> None:
    data = {"user_id": "ada", "type": "note", "title": "Hi", "body": "there"}
    async with await gateway.as_key("events:write") as system:
        answer = await system.post(
            "/v1/events",
            content=json.dumps(data),
            headers=binary_headers(
                specversion="1.0",
                id="bin-1",
                source="my-board",
                type="notification.requested",
                subject="ada",
                correlationid="trace%2042",  # header values are percent-encoded
            ),
        )
        again = await system.post(
            "/v1/events",
            content=json.dumps(data),
            headers=binary_headers(
                specversion="1.0", id="bin-1", source="my-board", type="notification.requested"
            ),
        )
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": ["bin-1"], "duplicates": []}
    assert again.status_code == 200  # the same id again: acknowledged, not republished
    assert again.json() == {"accepted": [], "duplicates": ["bin-1"]}
    await eventually(lambda: len(published) == 1, what="the event on the bus")
    await quiescent(published.bus)
    (event,) = published
    assert event.id == "bin-1"
    assert event.source == "my-board"
    assert event.subject == "ada"
    assert event.correlation_id == "trace 42"
    assert event.data.title == "Hi"


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        # no id
        (binary_headers(specversion="1.0", source="s", type="user.deleted"), {"user_id": "u"}, 422),
        # the data breaks its schema
        (binary_headers(specversion="1.0", id="x", source="s", type="user.deleted"), {}, 422),
        # binary mode carries JSON data only
        (
            {
                "content-type": "text/plain",
                "ce-specversion": "1.0",
                "ce-id": "x",
                "ce-source": "s",
                "ce-type": "user.deleted",
            },
            {"user_id": "u"},
            415,
        ),
        # ce- headers on a structured body are a mix-up, not an event
        ({**STRUCTURED, "ce-specversion": "1.0"}, {"user_id": "u"}, 400),
    ],
)
async def test_bad_binary_events_get_precise_answers(
    gateway: Gateway, headers: dict[str, str], body: dict[str, Any], status: int
) -> None:
    async with await gateway.as_key("events:write") as system:
        answer = await system.post("/v1/events", content=json.dumps(body), headers=headers)
    assert answer.status_code == status, answer.text


async def test_a_batch_is_accepted_whole(gateway: Gateway, published: list[Event[Any]]) -> None:
    batch = [
        {"specversion": "1.0", "id": f"b-{n}", "source": "s", "type": "user.signed_up",
         "data": {"user_id": f"u{n}", "email": f"u{n}@example.com"}}
        for n in range(3)
    ]  # fmt: skip
    async with await gateway.as_key("events:write") as system:
        answer = await system.post(
            "/v1/events",
            content=json.dumps(batch),
            headers={"content-type": "application/cloudevents-batch+json"},
        )
    assert answer.status_code == 202
    assert answer.json()["accepted"] == ["b-0", "b-1", "b-2"]
    await eventually(lambda: len(published) == 3, what="three events on the bus")


async def test_herald_s_own_event_types_are_refused_and_nothing_of_the_batch_is_published(
    gateway: Gateway, published: Heard
) -> None:
    """A key for publishing events cannot make Herald announce a match, fire a
    reminder or send a delivery on its own say: those types are Herald's."""
    own = {
        "specversion": "1.0",
        "id": "forged-1",
        "source": "my-board",
        "type": "delivery.due",
        "data": {
            "delivery_id": "00000000-0000-0000-0000-000000000001",
            "notification_id": "00000000-0000-0000-0000-000000000002",
            "user_id": "ada",
            "channel": "webhook",
        },
    }
    fine = {
        "specversion": "1.0",
        "id": "fine-1",
        "source": "my-board",
        "type": "user.deleted",
        "data": {"user_id": "ada"},
    }
    async with await gateway.as_key("events:write") as system:
        answer = await system.post(
            "/v1/events",
            json=[fine, own],
            headers={"content-type": "application/cloudevents-batch+json"},
        )
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]["errors"]
    assert problem["index"] == 1
    assert "published by Herald itself" in problem["error"]
    await quiescent(published.bus)
    assert published == []  # the batch is refused whole


def cloudevent(type_: str, data: dict[str, Any], id_: str) -> dict[str, Any]:
    # ids are remembered for the whole test run's database: each test makes its own
    return {"specversion": "1.0", "id": f"{id_}-{uuid.uuid4().hex[:8]}", "source": "s",
            "type": type_, "data": data}  # fmt: skip


JOB = {
    "job_id": "j-1",
    "title": "Critical Care Staff Nurse",
    "company": "Northgate General Hospital",
    "description": "ICU",
    "remote": False,
    "job_type": "full_time",
    "url": "https://jobs.example.org/jobs/1",
    "posted_at": "2026-11-23T08:00:00Z",
}


async def jobs_feed(gateway: Gateway) -> str:
    async with gateway.pool.acquire() as conn:
        _, key = await create_api_key(conn, "job feed", ["events:write"], event_types=["job.*"])
    return key


async def test_a_key_limited_to_job_types_publishes_those_and_nothing_else(
    gateway: Gateway, published: Heard
) -> None:
    async with gateway.client({"X-API-Key": await jobs_feed(gateway)}) as feed:
        job = await feed.post(
            "/v1/events", json=cloudevent("job.posted", JOB, "j-1"), headers=STRUCTURED
        )
        assert job.status_code == 202, job.text
        person = {"user_id": "ada", "email": "ada@example.com"}
        binary = await feed.post(
            "/v1/events",
            content=json.dumps(person),
            headers=binary_headers(specversion="1.0", id="u-1", source="s", type="user.signed_up"),
        )
        assert binary.status_code == 403
        assert "user.signed_up" in binary.text
        assert "job.*" in binary.text
    await eventually(lambda: len(published) == 1, what="the job on the bus")
    await quiescent(published.bus)
    assert [e.type for e in published] == ["job.posted"]


async def test_a_batch_with_one_type_the_key_may_not_publish_is_refused_whole(
    gateway: Gateway, published: Heard
) -> None:
    batch = [
        cloudevent("job.posted", JOB, "j-1"),
        cloudevent("user.signed_up", {"user_id": "ada", "email": "ada@example.com"}, "u-1"),
        cloudevent("job.closed", {"job_id": "j-1"}, "j-2"),
    ]
    async with gateway.client({"X-API-Key": await jobs_feed(gateway)}) as feed:
        answer = await feed.post(
            "/v1/events", json=batch, headers={"content-type": "application/cloudevents-batch+json"}
        )
        assert answer.status_code == 403, answer.text
        (refused,) = answer.json()["detail"]["errors"]
        assert (refused["index"], refused["id"], refused["type"]) == (
            1,
            batch[1]["id"],
            "user.signed_up",
        )
        assert "user.signed_up" in refused["error"]
        # nothing of it was recorded either: the same jobs alone go through afterwards
        alone = await feed.post(
            "/v1/events",
            json=[batch[0], batch[2]],
            headers={"content-type": "application/cloudevents-batch+json"},
        )
    assert alone.status_code == 202, alone.text
    assert alone.json()["accepted"] == [batch[0]["id"], batch[2]["id"]]
    await eventually(lambda: len(published) == 2, what="the two jobs on the bus")
    await quiescent(published.bus)
    assert [e.id for e in published] == [batch[0]["id"], batch[2]["id"]]


async def test_erasure_by_event_needs_the_erase_grant(gateway: Gateway, published: Heard) -> None:
    """events:write publishes what a product reports; erasing a person everywhere is
    a grant of its own (users:erase), which admin keys hold as they always could erase."""

    def erase() -> dict[str, Any]:
        return cloudevent("user.deleted", {"user_id": "ada"}, "erase")

    async with await gateway.as_key("events:write") as writer:
        refused = await writer.post("/v1/events", json=erase(), headers=STRUCTURED)
        assert refused.status_code == 403
        assert "user.deleted" in refused.text
        assert "users:erase" in refused.text
        assert (await writer.delete("/v1/users/ada")).status_code == 403
    for scopes in [("events:write", "users:erase"), ("admin",)]:
        async with await gateway.as_key(*scopes) as eraser:
            answer = await eraser.post("/v1/events", json=erase(), headers=STRUCTURED)
            assert answer.status_code == 202, (scopes, answer.text)
    async with await gateway.as_key("users:erase") as eraser:
        assert (await eraser.delete("/v1/users/ada")).status_code == 202
    await eventually(lambda: len(published) == 3, what="three erasures on the bus")
    await quiescent(published.bus)
    assert len(published) == 3  # not the refused one


async def test_a_time_far_ahead_is_published_clamped_with_the_claimed_time_beside_it(
    gateway: Gateway, settings: Settings
) -> None:
    """An event claiming a time years ahead goes on the bus with its time clamped to
    now plus the allowance, and the time it claimed kept as ``heraldclaimedtime``:
    every consumer then weighs it against erasures as older than any."""
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(exchange_name(settings.namespace))
        tap = await channel.declare_queue(exclusive=True)
        await tap.bind(exchange, routing_key="user.signed_up")
        event = {
            "specversion": "1.0",
            "id": "ahead-1",
            "source": "s",
            "type": "user.signed_up",
            "time": "2100-01-01T00:00:00Z",
            "data": {"user_id": "ada", "email": "ada@example.org"},
        }
        async with await gateway.as_key("events:write") as system:
            answer = await system.post("/v1/events", json=event, headers=STRUCTURED)
        assert answer.status_code == 202, answer.text
        message = await tap.get(timeout=10)
        sent = json.loads(message.body)
    finally:
        await connection.close()
    allowance = timedelta(seconds=settings.event_time_allowance_seconds)
    assert datetime.fromisoformat(sent["time"]) <= datetime.now(UTC) + allowance
    assert datetime.fromisoformat(sent[CLAIMED_TIME]) == datetime(2100, 1, 1, tzinfo=UTC)
    assert parse_event(sent).trusted_time < datetime.now(UTC) - timedelta(days=365)
