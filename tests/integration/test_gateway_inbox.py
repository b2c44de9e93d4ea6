"""The in-app inbox through the gateway, filled by the real dispatcher: pages,
filters, read marks, deletion, the live stream over SSE and WebSocket, and that
no user reaches another's notifications."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from services.gateway.auth import LEEWAY_SECONDS
from shared.bus import Bus
from shared.events import RequestNotification
from tests.integration.conftest import Dispatcher, publish, sign_up
from tests.integration.gateway import Gateway, gateway, gateway_factory
from tests.support import eventually

__all__ = ["gateway", "gateway_factory"]


async def notify(
    bus: Bus, pool: asyncpg.Pool, user_id: str, title: str, type_: str = "note"
) -> str:
    """Ask the dispatcher for an in-app notification; its id once it is in the inbox."""
    event = await publish(
        bus,
        RequestNotification(
            user_id=user_id, type=type_, title=title, body=f"{title} body", channels=["inapp"]
        ),
    )
    found: list[str] = []

    async def arrived() -> bool:
        row = await pool.fetchval(
            "SELECT id::text FROM notifications WHERE source_event_id = $1 AND inbox_at IS NOT NULL",
            event.id,
        )
        if row:
            found.append(row)
        return bool(row)

    await eventually(arrived, what=f"{title!r} in the inbox")
    return found[0]


async def test_the_inbox_pages_filters_and_marks(
    gateway: Gateway,
    dispatcher: Callable[..., Awaitable[Dispatcher]],
    producer: Bus,
    pool: asyncpg.Pool,
) -> None:
    await dispatcher()
    user = await sign_up(producer, pool)
    ids = [
        await notify(producer, pool, user, f"n{i}", "job" if i % 2 else "note") for i in range(5)
    ]
    async with gateway.as_user(user) as client:
        # the welcome is in the inbox too
        assert (await client.get("/v1/me/notifications/unread-count")).json() == {"unread": 6}

        seen: list[str] = []
        cursor: str | None = None
        for _ in range(10):
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/v1/me/notifications", params=params)).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 6  # every item once, newest first
        assert seen[:5] == ids[::-1]
        item = (await client.get(f"/v1/me/notifications/{ids[0]}")).json()
        assert {"id", "type", "title", "body", "data", "priority", "created_at", "read_at"} <= set(
            item
        )

        jobs = (await client.get("/v1/me/notifications", params={"type": "job"})).json()
        assert [i["title"] for i in jobs["items"]] == ["n3", "n1"]

        read = await client.post(f"/v1/me/notifications/{ids[1]}/read")
        assert read.status_code == 200
        assert read.json()["read_at"] is not None
        unread = (await client.get("/v1/me/notifications", params={"unread": "true"})).json()
        assert ids[1] not in [i["id"] for i in unread["items"]]
        assert (await client.get("/v1/me/notifications/unread-count")).json() == {"unread": 5}

        assert (await client.delete(f"/v1/me/notifications/{ids[2]}")).status_code == 204
        assert (await client.get(f"/v1/me/notifications/{ids[2]}")).status_code == 404
        everything = (await client.post("/v1/me/notifications/read-all")).json()
        assert everything == {"updated": 4}
        assert (await client.get("/v1/me/notifications/unread-count")).json() == {"unread": 0}
        assert (
            await client.get("/v1/me/notifications", params={"cursor": "bogus"})
        ).status_code == 400


async def test_one_user_cannot_read_or_change_anothers_notifications(
    gateway: Gateway,
    dispatcher: Callable[..., Awaitable[Dispatcher]],
    producer: Bus,
    pool: asyncpg.Pool,
) -> None:
    await dispatcher()
    alice, bob = await sign_up(producer, pool), await sign_up(producer, pool)
    secret = await notify(producer, pool, alice, "Offer from Acme")
    async with gateway.as_user(alice) as a, gateway.as_user(bob) as b:
        listing = await b.get("/v1/me/notifications")
        assert "Offer from Acme" not in listing.text
        for answer in await asyncio.gather(
            b.get(f"/v1/me/notifications/{secret}"),
            b.post(f"/v1/me/notifications/{secret}/read"),
            b.post(f"/v1/me/notifications/{secret}/unread"),
            b.delete(f"/v1/me/notifications/{secret}"),
        ):
            assert answer.status_code == 404
        await b.post("/v1/me/notifications/read-all")
        mine = (await a.get(f"/v1/me/notifications/{secret}")).json()
    assert mine["read_at"] is None  # Bob's read-all touched only his own


@contextlib.asynccontextmanager
async def sse(client: httpx.AsyncClient, path: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    """Server-sent events as {"event", "id", "data"} dicts."""
    async with client.stream("GET", path) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")

        async def events() -> AsyncIterator[dict[str, Any]]:
            current: dict[str, Any] = {}
            async for line in response.aiter_lines():
                if not line:
                    if "event" in current:
                        yield current
                    current = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    current[name] = value.strip()

        yield events()


async def test_the_live_stream_pushes_what_the_dispatcher_delivered_on_any_replica(
    gateway_factory: Callable[..., Awaitable[Gateway]],
    dispatcher: Callable[..., Awaitable[Dispatcher]],
    producer: Bus,
    pool: asyncpg.Pool,
) -> None:
    await dispatcher()
    # two replicas: the user's stream is held by one, the event is ingested by the other
    ingress, streaming = await gateway_factory(), await gateway_factory()
    user, other = await sign_up(producer, pool), await sign_up(producer, pool)
    key = await ingress.api_key("events:write")
    async with (
        streaming.as_user(user) as client,
        sse(client, "/v1/me/notifications/stream") as events,
    ):
        ready = await asyncio.wait_for(anext(events), 10)
        assert ready["event"] == "ready"
        assert "unread" in json.loads(ready["data"])

        async with ingress.client({"X-API-Key": key}) as system:
            for who, title in ((other, "Not yours"), (user, "Interview booked")):
                answer = await system.post(
                    "/v1/events",
                    json={
                        "specversion": "1.0",
                        "id": f"evt-{who}",
                        "source": "tests",
                        "type": "notification.requested",
                        "data": {
                            "user_id": who,
                            "type": "interview",
                            "title": title,
                            "body": "Tuesday 10:00",
                            "channels": ["inapp"],
                        },
                    },
                    headers={"content-type": "application/cloudevents+json"},
                )
                assert answer.status_code == 202, answer.text
        pushed: list[dict[str, Any]] = []
        async with asyncio.timeout(15):
            # the welcome may still be on its way too; "Not yours" never comes
            while not pushed or json.loads(pushed[-1]["data"])["title"].startswith("Welcome"):
                pushed.append(await anext(events))
    assert all(p["event"] == "notification" for p in pushed)
    item = json.loads(pushed[-1]["data"])
    assert item["title"] == "Interview booked"
    assert item["type"] == "interview"
    assert pushed[-1]["id"] == item["id"]


async def test_the_websocket_stream_pushes_new_notifications(
    gateway: Gateway,
    dispatcher: Callable[..., Awaitable[Dispatcher]],
    producer: Bus,
    pool: asyncpg.Pool,
) -> None:
    await dispatcher()
    user = await sign_up(producer, pool)
    ws_url = gateway.url.replace("http://", "ws://") + "/v1/me/notifications/ws"
    async with websockets.connect(f"{ws_url}?access_token={gateway.token(user)}") as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "ready"
        await publish(
            producer,
            RequestNotification(
                user_id=user, type="note", title="Live!", body="b", channels=["inapp"]
            ),
        )
        titles: list[str] = []
        async with asyncio.timeout(15):
            # the welcome may still be on its way too
            while "Live!" not in titles:
                message = json.loads(await ws.recv())
                assert message["type"] == "notification"
                titles.append(message["notification"]["title"])
    assert titles[-1] == "Live!"


async def test_live_sessions_end_when_their_token_expires(gateway: Gateway) -> None:
    """A stream lasts no longer than its token: the client must come back with a
    fresh one. These tokens are past their exp but within the leeway auth allows for
    clock skew, so they are accepted with a few seconds left."""
    user = await gateway.user()
    nearly_expired = gateway.token(user, ttl=3 - LEEWAY_SECONDS)
    path = "/v1/me/notifications/stream"
    async with (
        gateway.client({"Authorization": f"Bearer {nearly_expired}"}) as client,
        sse(client, path) as events,
    ):
        assert (await asyncio.wait_for(anext(events), 10))["event"] == "ready"
        last = await asyncio.wait_for(anext(events), 15)
        assert last["event"] == "expired"
        assert json.loads(last["data"]) == {"reason": "token expired"}
        with pytest.raises(StopAsyncIteration):  # the server ended the stream
            await asyncio.wait_for(anext(events), 10)

    ws_url = gateway.url.replace("http://", "ws://") + "/v1/me/notifications/ws"
    nearly_expired = gateway.token(user, ttl=3 - LEEWAY_SECONDS)
    async with (
        websockets.connect(f"{ws_url}?access_token={gateway.token(user)}") as fresh,
        websockets.connect(f"{ws_url}?access_token={nearly_expired}") as ws,
    ):
        for session in (fresh, ws):
            assert json.loads(await asyncio.wait_for(session.recv(), 10))["type"] == "ready"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 15)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "token expired")
        # a session whose token holds stays open
        await asyncio.wait_for(await fresh.ping(), 5)


async def test_the_streams_refuse_callers_without_a_user_token(gateway: Gateway) -> None:
    async with gateway.client() as client:
        assert (await client.get("/v1/me/notifications/stream")).status_code == 401
        bad = await client.get("/v1/me/notifications/stream", params={"access_token": "nope"})
        assert bad.status_code == 401
    ws_url = gateway.url.replace("http://", "ws://") + "/v1/me/notifications/ws"
    for url in (ws_url, f"{ws_url}?access_token=nope"):
        assert await refusal(url) in (4401, 403)


async def refusal(url: str) -> int:
    """The close code (or HTTP status) a WebSocket handshake to ``url`` met; 0 if
    it was served."""
    try:
        async with websockets.connect(url) as ws:
            await ws.recv()
    except websockets.ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else 0
    except websockets.InvalidStatus as exc:
        return exc.response.status_code
    return 0
