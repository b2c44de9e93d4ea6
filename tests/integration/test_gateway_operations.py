"""What operators and the platform rely on: queue and parking status, replay and
deletion of parked messages, delivery attempts, erasure, rate limits shared by
replicas, bounded bodies, and unsubscribe links."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg

from shared import signing
from shared.bus import Bus
from shared.events import RequestNotification
from tests.integration.conftest import Dispatcher, publish, sign_up, until
from tests.integration.gateway import Gateway, gateway, gateway_factory
from tests.observability import sample_value
from tests.support import eventually, publish_raw

__all__ = ["gateway", "gateway_factory"]


async def test_operators_see_queues_and_replay_or_drop_parked_messages(
    gateway: Gateway,
    dispatcher: Callable[..., Awaitable[Dispatcher]],
    producer: Bus,
) -> None:
    d = await dispatcher()
    ns = gateway.settings.namespace
    for n in range(3):
        # what a broken producer sends: parked at once with the reason
        await publish_raw(d.settings.amqp_url.get_secret_value(), ns, "notification.requested",
                          json.dumps({"id": f"bad-{n}", "type": "notification.requested"}).encode())  # fmt: skip
    async with await gateway.as_key("admin") as admin:

        async def parked() -> int:
            states = (await admin.get("/v1/admin/queues")).json()
            return next(
                q["parked"] for q in states if q["queue"] == f"{ns}.dispatcher.notifications"
            )

        await until_value(parked, 3)
        states = {q["queue"]: q for q in (await admin.get("/v1/admin/queues")).json()}
        assert states[f"{ns}.dispatcher.notifications"]["consumers"] >= 1
        # the same figures for Prometheus, read from the broker at the scrape
        exposition = await gateway.scrape()
        queue = f"{ns}.dispatcher.notifications"
        assert sample_value(exposition, "herald_queue_messages", queue=queue, state="parked") == 3
        assert sample_value(exposition, "herald_queue_messages", queue=queue, state="ready") == 0
        assert sample_value(exposition, "herald_queue_consumers", queue=queue) == 1

        listed = (await admin.get("/v1/admin/parked")).json()
        assert len(listed) == 3
        assert all(m["reason"] == "invalid" for m in listed)
        assert listed[0]["origin_queue"] == f"{ns}.dispatcher.notifications"
        # listing moves nothing
        assert len((await admin.get("/v1/admin/parked")).json()) == 3

        dropped = await admin.post("/v1/admin/parked/delete", json={"limit": 1})
        assert dropped.json()["count"] == 1
        # replayed invalid messages are parked again: replay moves them and says so
        replayed = await admin.post(
            "/v1/admin/parked/replay", json={"queue": f"{ns}.dispatcher.notifications"}
        )
        assert replayed.json()["count"] == 2
        await until_value(parked, 2)


async def until_value(read: Callable[[], Awaitable[int]], wanted: int) -> None:
    async def check() -> bool:
        return await read() == wanted

    await eventually(check, what=f"the value {wanted}")


async def test_a_notifications_delivery_attempts_are_shown_to_operators(
    gateway: Gateway,
    dispatcher: Callable[..., Awaitable[Dispatcher]],
    producer: Bus,
    pool: asyncpg.Pool,
) -> None:
    await dispatcher()
    user = await sign_up(producer, pool)
    event = await publish(
        producer, RequestNotification(user_id=user, type="note", title="Hi", body="b")
    )
    await until(
        pool,
        """SELECT bool_and(d.status = 'delivered') AND count(*) = 2 FROM deliveries d
           JOIN notifications n ON n.id = d.notification_id WHERE n.source_event_id = $1""",
        event.id,
        what="delivered by e-mail and in-app",
    )
    notification_id = await pool.fetchval(
        "SELECT id::text FROM notifications WHERE source_event_id = $1", event.id
    )
    async with await gateway.as_key("admin") as admin:
        answer = await admin.get(f"/v1/admin/notifications/{notification_id}/deliveries")
        missing = await admin.get(
            "/v1/admin/notifications/00000000-0000-0000-0000-000000000000/deliveries"
        )
    assert answer.status_code == 200
    body = answer.json()
    assert body["user_id"] == user
    assert sorted(d["channel"] for d in body["deliveries"]) == ["email", "inapp"]
    assert all(d["status"] == "delivered" and d["attempts"] == 1 for d in body["deliveries"])
    assert missing.status_code == 404


async def test_erasing_a_user_removes_them_everywhere(
    gateway: Gateway,
    dispatcher: Callable[..., Awaitable[Dispatcher]],
    producer: Bus,
    pool: asyncpg.Pool,
) -> None:
    await dispatcher()
    user = await sign_up(producer, pool)
    async with gateway.as_user(user) as client:
        created = await client.post("/v1/me/alerts", json={"keywords": ["python"]})
        assert created.status_code == 201
    async with await gateway.as_key("admin") as admin:
        answer = await admin.delete(f"/v1/users/{user}")
    assert answer.status_code == 202
    assert answer.json()["user_id"] == user
    await until(pool, "SELECT NOT EXISTS (SELECT 1 FROM users WHERE user_id = $1)", user,
                what="the dispatcher erased the user")  # fmt: skip
    await until(pool, "SELECT NOT EXISTS (SELECT 1 FROM user_alerts WHERE user_id = $1)", user,
                what="the gateway erased the user's alerts")  # fmt: skip
    async with gateway.as_user(user) as client:
        assert (await client.get("/v1/me/preferences")).status_code == 404
        assert (await client.get("/v1/me/alerts")).json() == []


async def test_rate_limits_hold_across_replicas_and_say_when_to_retry(
    gateway_factory: Callable[..., Awaitable[Gateway]],
) -> None:
    one = await gateway_factory(gateway_rate_per_minute=3)
    two = await gateway_factory(gateway_rate_per_minute=3)
    user = await one.user()
    async with one.as_user(user) as a, two.as_user(user) as b:
        statuses = [(await client.get("/v1/me/preferences")).status_code for client in (a, b, a)]
        refused = await b.get("/v1/me/preferences")
        # another route has a bucket of its own
        other_route = await a.get("/v1/me/alerts")
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    assert other_route.status_code == 200
    # another user is not held back by this one
    async with one.as_user(await one.user()) as c:
        assert (await c.get("/v1/me/preferences")).status_code == 200


async def test_sensitive_routes_have_a_stricter_limit(
    gateway_factory: Callable[..., Awaitable[Gateway]],
) -> None:
    gw = await gateway_factory(gateway_rate_per_minute=100, gateway_sensitive_rate_per_minute=2)
    user = await gw.user()
    body = {"type": "telegram"}
    async with gw.as_user(user) as client:
        answers = [(await client.post("/v1/me/channels", json=body)).status_code for _ in range(3)]
    assert answers == [201, 201, 429]


async def test_request_bodies_are_bounded(gateway: Gateway) -> None:
    user = await gateway.user()
    async with gateway.as_user(user) as client:
        huge = {"timezone": "UTC", "padding": "x" * 100_000}
        declared = await client.patch("/v1/me/preferences", json=huge)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b"x" * 1024

        streamed = await client.patch(
            "/v1/me/preferences", content=chunks(), headers={"content-type": "application/json"}
        )
    assert declared.status_code == 413
    assert streamed.status_code == 413


async def test_unsubscribe_links_work_when_signed_and_fail_when_tampered_or_expired(
    gateway: Gateway,
) -> None:
    user = await gateway.user()
    link = signing.unsubscribe_url(gateway.settings, user).replace(
        gateway.settings.public_url, gateway.url
    )
    token = link.rsplit("/", 1)[1]
    payload, mac = token.split(".")
    tampered = f"{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{mac}"
    expired = signing.unsubscribe_url(gateway.settings, user, now=0).rsplit("/", 1)[1]
    async with gateway.client() as client:
        page = await client.get(link)
        assert page.status_code == 200
        assert "<form" in page.text
        assert await _email_enabled(gateway, user)  # looking is not unsubscribing
        for bad, status in ((tampered, 400), (expired, 410)):
            assert (await client.post(f"/v1/unsubscribe/{bad}")).status_code == status
            assert (await client.get(f"/v1/unsubscribe/{bad}")).status_code == status
        assert await _email_enabled(gateway, user)
        one_click = await client.post(link, data={"List-Unsubscribe": "One-Click"})
        assert one_click.status_code == 200
        assert not await _email_enabled(gateway, user)
        assert (await client.post(link)).status_code == 200  # again: still fine


def _local(gateway: Gateway, link: str) -> str:
    return link.replace(gateway.settings.public_url, gateway.url)


async def test_a_flood_of_bad_links_does_not_refuse_a_real_one_click_unsubscribe(
    gateway_factory: Callable[..., Awaitable[Gateway]],
) -> None:
    """Behind an Ingress every caller can share one address: one of them sending bad
    links must not 429 everybody's real unsubscribe. A real link is limited by its
    own user's bucket, and still limited."""
    gw = await gateway_factory(gateway_sensitive_rate_per_minute=3)
    ada, bob = await gw.user(), await gw.user()
    bad = signing.unsubscribe_url(gw.settings, ada).rsplit("/", 1)[1][:-4] + "AAAA"
    async with gw.client() as client:
        flood = [(await client.post(f"/v1/unsubscribe/{bad}")).status_code for _ in range(5)]
        assert flood == [400, 400, 400, 429, 429]
        # the same address, a real link: answered
        one_click = await client.post(
            _local(gw, signing.unsubscribe_url(gw.settings, ada)),
            data={"List-Unsubscribe": "One-Click"},
        )
        assert one_click.status_code == 200
        assert not await _email_enabled(gw, ada)
        # a user's own link is still limited, whoever sends it, and only theirs
        link = _local(gw, signing.unsubscribe_url(gw.settings, ada))
        assert [(await client.post(link)).status_code for _ in range(3)] == [200, 200, 429]
        assert (
            await client.post(_local(gw, signing.unsubscribe_url(gw.settings, bob)))
        ).status_code == 200


async def test_the_client_address_is_the_forwarded_one_only_from_trusted_proxies(
    gateway_factory: Callable[..., Awaitable[Gateway]],
) -> None:
    """HERALD_FORWARDED_ALLOW_IPS: behind a trusted proxy, callers are told apart by
    the address it forwards; from anyone else, X-Forwarded-For is ignored."""

    async def bad_links(gw: Gateway, client_ip: str, count: int) -> list[int]:
        async with gw.client({"X-Forwarded-For": client_ip}) as client:
            return [(await client.get("/v1/unsubscribe/x.y")).status_code for _ in range(count)]

    behind = await gateway_factory(
        gateway_sensitive_rate_per_minute=2, forwarded_allow_ips=["127.0.0.0/8"]
    )
    assert await bad_links(behind, "203.0.113.7", 3) == [400, 400, 429]
    assert await bad_links(behind, "203.0.113.8", 1) == [400]

    # the test's connections come from 127.0.0.1, which this one does not trust
    exposed = await gateway_factory(
        gateway_sensitive_rate_per_minute=2, forwarded_allow_ips=["192.0.2.1"]
    )
    assert await bad_links(exposed, "203.0.113.7", 3) == [400, 400, 429]
    assert await bad_links(exposed, "203.0.113.8", 1) == [429]


async def _email_enabled(gateway: Gateway, user: str) -> bool:
    return bool(
        await gateway.pool.fetchval(
            # no row: the defaults (e-mail on)
            """SELECT COALESCE((SELECT email_enabled FROM preferences WHERE user_id = $1),
                               true)""",
            user,
        )
    )


async def test_metrics_count_requests_by_route_template(gateway: Gateway) -> None:
    user = await gateway.user()
    async with gateway.as_user(user) as client:
        await client.get("/v1/me/preferences")
        await client.get("/v1/me/alerts/00000000-0000-0000-0000-000000000001")
    exposition = await gateway.scrape()
    assert (
        'herald_http_requests_total{method="GET",route="/v1/me/preferences",'
        'service="gateway",status="200"} 1.0'
    ) in exposition
    assert 'route="/v1/me/alerts/{alert_id}"' in exposition
    assert "00000000-0000-0000-0000-000000000001" not in exposition
    assert 'herald_live_sessions{service="gateway"} 0.0' in exposition


async def test_metrics_are_not_served_on_the_public_api_port(gateway: Gateway) -> None:
    async with gateway.client() as client:
        assert (await client.get("/metrics")).status_code == 404
    assert "herald_http_requests_total" in await gateway.scrape()


async def test_callers_cannot_grow_the_metrics_with_request_methods(gateway: Gateway) -> None:
    """HTTP allows any token as a method: each one a series, and 4 KB each, would let
    anyone fill the gateway's memory and every scrape."""
    async with gateway.client() as client:
        for n in range(40):
            method = f"X{n:02d}" + secrets.token_hex(512).upper()
            await client.request(method, "/v1/me/preferences")
            await client.request(method, f"/nowhere/{n}")
        await client.request("GET", "/v1/me/preferences")
    exposition = await gateway.scrape()
    requests = [
        line for line in exposition.splitlines() if line.startswith("herald_http_requests_total{")
    ]
    methods = {re.search(r'method="([^"]*)"', line)[1] for line in requests}  # type: ignore[index]
    assert methods == {"GET", "OTHER"}
    assert sample_value(
        exposition, "herald_http_requests_total",
        method="OTHER", route="/v1/me/preferences", status="405",
    ) == 40  # fmt: skip
    assert len(exposition) < 100_000
