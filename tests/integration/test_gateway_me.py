"""A user's own resources through the gateway: preferences, channels and saved
searches; and that no user reaches another's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from services.dispatcher import recipients
from shared.bus import Bus
from shared.endpoints import create_endpoint
from shared.events import Event
from tests.integration.conftest import endpoint_sealer
from tests.integration.gateway import Gateway, gateway, gateway_factory
from tests.support import Heard, eventually, hear, quiescent

__all__ = ["gateway", "gateway_factory"]

PUBLIC_HOOK = "https://93.184.215.14/hooks/herald"  # an IP literal: no DNS needed


@pytest.fixture
async def heard(bus_factory: Callable[..., Bus]) -> Heard:
    """Every alert.* and notification.requested event published in the test."""
    return await hear(bus_factory("probe"), ["alert.*", "notification.requested"])


# -- preferences -------------------------------------------------------------------


async def test_preferences_are_replaced_patched_and_read_back(gateway: Gateway) -> None:
    user = await gateway.user()
    async with gateway.as_user(user) as client:
        put = await client.put(
            "/v1/me/preferences",
            json={
                "digest_frequency": "daily",
                "min_match_score": 0.7,
                "timezone": "Europe/Paris",
                "quiet_hours": {"start": "22:00", "end": "07:00"},
                "channels": {"slack": False},
            },
        )
        assert put.status_code == 200, put.text
        patched = await client.patch(
            "/v1/me/preferences", json={"email_enabled": False, "channels": {"teams": False}}
        )
        assert patched.status_code == 200, patched.text
        read = (await client.get("/v1/me/preferences")).json()
    assert read["email_enabled"] is False
    assert read["digest_frequency"] == "daily"
    assert read["min_match_score"] == 0.7
    assert read["timezone"] == "Europe/Paris"
    assert read["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    assert read["channels"] == {"slack": False, "teams": False}
    # the dispatcher reads the same row; the product's zone on the user is left alone
    row = await gateway.pool.fetchrow(
        "SELECT p.email_enabled, p.timezone, u.timezone AS product_zone"
        " FROM preferences p JOIN users u USING (user_id) WHERE user_id = $1",
        user,
    )
    assert dict(row) == {"email_enabled": False, "timezone": "Europe/Paris", "product_zone": "UTC"}


async def test_put_leaves_out_nothing_it_was_not_told(gateway: Gateway) -> None:
    user = await gateway.user()
    async with gateway.as_user(user) as client:
        await client.patch(
            "/v1/me/preferences", json={"quiet_hours": {"start": "23:00", "end": "06:30"}}
        )
        cleared = await client.patch("/v1/me/preferences", json={"quiet_hours": None})
        assert cleared.json()["quiet_hours"] is None
        replaced = await client.put("/v1/me/preferences", json={"notify_reminders": False})
    assert replaced.json()["notify_reminders"] is False
    assert replaced.json()["digest_frequency"] == "instant"  # the default again


@pytest.mark.parametrize(
    "body",
    [
        {"timezone": "Mars/Olympus"},
        {"timezone": "UTC+2"},
        {"min_match_score": 1.5},
        {"min_match_score": -0.1},
        {"digest_frequency": "hourly"},
        {"quiet_hours": {"start": "25:00", "end": "07:00"}},
        {"quiet_hours": {"start": "22:00", "end": "22:00"}},
        {"quiet_hours": {"start": "22:00"}},
        {"channels": {"carrier-pigeon": False}},
        {"email_enabled": None},
        {"emial_enabled": False},  # a typo is an error, not a silent no-op
    ],
)
async def test_bad_preferences_are_refused_and_change_nothing(
    gateway: Gateway, body: dict[str, Any]
) -> None:
    user = await gateway.user()
    async with gateway.as_user(user) as client:
        before = (await client.get("/v1/me/preferences")).json()
        for method in ("PATCH", "PUT"):
            answer = await client.request(method, "/v1/me/preferences", json=body)
            assert answer.status_code == 422, (method, answer.text)
        assert (await client.get("/v1/me/preferences")).json() == before


async def test_a_zone_is_the_users_only_once_they_send_one(gateway: Gateway) -> None:
    """Until the user picks a zone they have the product's, and a new one from the
    product (a repeated user.signed_up) is theirs too; a change of another field
    does not make the zone they were shown their choice."""
    user = await gateway.user()
    async with gateway.as_user(user) as client:
        assert (await client.get("/v1/me/preferences")).json()["timezone"] == "UTC"
        await client.patch("/v1/me/preferences", json={"email_enabled": False})
        async with gateway.pool.acquire() as conn:  # the product moves them
            await recipients.record_user(
                conn, user, f"{user}@example.com", "Ada", "Europe/Lisbon", "en"
            )
        assert (await client.get("/v1/me/preferences")).json()["timezone"] == "Europe/Lisbon"


async def test_patches_of_different_fields_at_once_both_land(gateway: Gateway) -> None:
    user = await gateway.user()  # no preferences of their own yet: the defaults
    async with gateway.as_user(user) as client:
        answers = await asyncio.gather(
            client.patch("/v1/me/preferences", json={"email_enabled": False}),
            client.patch("/v1/me/preferences", json={"digest_frequency": "weekly"}),
        )
        assert [a.status_code for a in answers] == [200, 200]
        read = (await client.get("/v1/me/preferences")).json()
    assert (read["email_enabled"], read["digest_frequency"]) == (False, "weekly")


async def test_a_user_herald_does_not_know_yet_gets_404(gateway: Gateway) -> None:
    async with gateway.as_user("nobody-yet") as client:
        answers = [
            await client.request(method, "/v1/me/preferences", json=body)
            for method, body in (("GET", None), ("PUT", {}), ("PATCH", {"timezone": "UTC"}))
        ]
    assert [a.status_code for a in answers] == [404, 404, 404]
    assert all("user.signed_up" in a.json()["detail"] for a in answers)


# -- channels ----------------------------------------------------------------------


async def test_a_webhook_gets_a_secret_shown_once(gateway: Gateway) -> None:
    user = await gateway.user()
    async with gateway.as_user(user) as client:
        created = await client.post("/v1/me/channels", json={"type": "webhook", "url": PUBLIC_HOOK})
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        assert secret.startswith("whsec_")
        listed = await client.get("/v1/me/channels")
    assert secret not in listed.text
    types = sorted(c["type"] for c in listed.json())
    assert types == ["email", "inapp", "webhook"]
    # the dispatcher signs with the stored secret (sealed: test_sealed_endpoints.py)
    stored = await recipients.load(gateway.pool, endpoint_sealer(), user)
    assert stored is not None
    assert [e.secret for e in stored.endpoints if e.type == "webhook"] == [secret]


async def test_chat_webhook_urls_are_credentials_and_listed_masked(gateway: Gateway) -> None:
    user = await gateway.user()
    # the test settings add the local receivers' host to Discord's
    url = "http://127.0.0.1:9/api/webhooks/123/very-secret-token"
    async with gateway.as_user(user) as client:
        created = await client.post("/v1/me/channels", json={"type": "discord", "url": url})
        assert created.status_code == 201
        assert created.json()["secret"] is None
        listed = await client.get("/v1/me/channels")
        telegram = await gateway.link_telegram(client, 4242)
    assert "very-secret-token" not in listed.text
    assert (telegram["chat_id"], telegram["status"]) == ("4242", "active")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/hook",
        "http://[::1]/hook",
        "http://2130706433/hook",  # 127.0.0.1 as one number
        "http://localhost/hook",
        "file:///etc/passwd",
        "gopher://93.184.215.14/",
        "https://no-such-host.invalid/hook",
    ],
)
async def test_urls_that_do_not_reach_public_addresses_are_refused(
    gateway_factory: Callable[..., Awaitable[Gateway]], url: str
) -> None:
    gw = await gateway_factory(allow_private_urls=[])
    user = await gw.user()
    async with gw.as_user(user) as client:
        answer = await client.post("/v1/me/channels", json={"type": "webhook", "url": url})
        assert answer.status_code == 422, answer.text
        assert "127.0.0.1" not in answer.json()["detail"] or "127.0.0.1" in url
        listed = await client.get("/v1/me/channels")
    assert sorted(c["type"] for c in listed.json()) == ["email", "inapp"]


@pytest.mark.parametrize(
    ("type_", "url", "reason"),
    [
        ("discord", "https://93.184.215.14/api/webhooks/1/tok", "93.184.215.14 is not a discord"),
        ("discord", "https://discord.com.evil.example/api/webhooks/1/tok", "is not a discord"),
        ("slack", "http://hooks.slack.com/services/T/B/tok", "must use https"),
        ("slack", "https://hooks.slack.com@evil.example/services/T/B/tok", "user info"),
        ("teams", "https://webhook.office.com/webhookb2/a@b/IncomingWebhook/1/tok", "not a teams"),
        (
            "teams",
            "https://evil.example/workflows/1/triggers/manual/paths/invoke?sig=tok",
            "(allowed",
        ),
    ],
)
async def test_chat_urls_must_name_their_vendors_host(
    gateway: Gateway, type_: str, url: str, reason: str
) -> None:
    user = await gateway.user()
    async with gateway.as_user(user) as client:
        answer = await client.post("/v1/me/channels", json={"type": type_, "url": url})
        listed = await client.get("/v1/me/channels")
    assert answer.status_code == 422, answer.text
    assert reason in answer.json()["detail"]
    assert "tok" not in answer.json()["detail"]  # the URL's secret part is not echoed
    assert sorted(c["type"] for c in listed.json()) == ["email", "inapp"]


async def test_a_test_send_to_a_host_no_longer_listed_is_refused(
    gateway_factory: Callable[..., Awaitable[Gateway]], heard: Heard
) -> None:
    """Stored while the operator allowed the host; the list has shrunk since."""
    gw = await gateway_factory(slack_webhook_hosts=["hooks.slack.com"])
    user = await gw.user()
    async with gw.pool.acquire() as conn:
        endpoint = await create_endpoint(
            conn,
            user,
            "slack",
            sealer=endpoint_sealer(),
            url="http://127.0.0.1:9/services/T/B/tok",
        )
    async with gw.as_user(user) as client:
        answer = await client.post(f"/v1/me/channels/{endpoint.id}/test")
    assert answer.status_code == 422, answer.text
    assert "127.0.0.1 is not a slack webhook host" in answer.json()["detail"]
    await quiescent(heard.bus)
    assert heard == []


@pytest.mark.parametrize(
    "body",
    [
        {"type": "telegram", "url": PUBLIC_HOOK},
        {"type": "telegram", "chat_id": "not a chat"},
        # the bot would write to any chat it is in: chats are linked, never named
        {"type": "telegram", "chat_id": "-100123"},
        {"type": "slack", "chat_id": "123"},
        {"type": "apprise", "url": PUBLIC_HOOK},
        {"type": "email", "url": PUBLIC_HOOK},
        {"type": "webhook"},
    ],
)
async def test_channel_shapes_that_do_not_fit_are_refused(
    gateway: Gateway, body: dict[str, Any]
) -> None:
    user = await gateway.user()
    async with gateway.as_user(user) as client:
        assert (await client.post("/v1/me/channels", json=body)).status_code == 422


async def test_a_test_send_asks_the_dispatcher_for_that_channel(
    gateway: Gateway, heard: list[Event[Any]]
) -> None:
    user = await gateway.user()
    async with gateway.as_user(user) as client:
        channel = (
            await client.post("/v1/me/channels", json={"type": "webhook", "url": PUBLIC_HOOK})
        ).json()
        answer = await client.post(f"/v1/me/channels/{channel['id']}/test")
        again = await client.post(f"/v1/me/channels/{channel['id']}/test")
    assert answer.status_code == 202
    await eventually(lambda: len(heard) == 2, what="two notification.requested events")
    first = heard[0].data
    assert (first.user_id, first.type, first.channels) == (user, "test", ["webhook"])
    assert [str(i) for i in first.endpoint_ids or []] == [channel["id"]]
    # each test is its own notification, never taken for a repeat
    assert first.dedup_key != heard[1].data.dedup_key
    assert {e.id for e in heard} == {answer.json()["event_id"], again.json()["event_id"]}


async def test_channels_switch_off_and_on_and_built_ins_stay(gateway: Gateway) -> None:
    user = await gateway.user()
    async with gateway.as_user(user) as client:
        channels = (await client.get("/v1/me/channels")).json()
        email = next(c for c in channels if c["type"] == "email")
        assert (await client.delete(f"/v1/me/channels/{email['id']}")).status_code == 409
        hook = (
            await client.post("/v1/me/channels", json={"type": "webhook", "url": PUBLIC_HOOK})
        ).json()
        off = await client.patch(f"/v1/me/channels/{hook['id']}", json={"enabled": False})
        assert off.json()["enabled"] is False
        assert (await client.post(f"/v1/me/channels/{hook['id']}/test")).status_code == 409
        on = await client.patch(f"/v1/me/channels/{hook['id']}", json={"enabled": True})
        assert on.json()["enabled"] is True
        assert (await client.delete(f"/v1/me/channels/{hook['id']}")).status_code == 204
        assert (await client.delete(f"/v1/me/channels/{hook['id']}")).status_code == 404


# -- alerts ------------------------------------------------------------------------


async def test_an_alert_is_kept_and_the_matcher_told(
    gateway: Gateway, heard: list[Event[Any]]
) -> None:
    user = await gateway.user()
    async with gateway.as_user(user) as client:
        created = await client.post(
            "/v1/me/alerts",
            json={
                "name": "Python in Berlin",
                "keywords": ["python", "django"],
                "location": "Berlin",
                "salary_floor": 60000,
                "job_types": ["full_time"],
                "frequency": "weekly",
            },
        )
        assert created.status_code == 201, created.text
        alert = created.json()
        changed = await client.patch(f"/v1/me/alerts/{alert['id']}", json={"remote": True})
        assert changed.status_code == 200, changed.text
        listed = (await client.get("/v1/me/alerts")).json()
        deleted = await client.delete(f"/v1/me/alerts/{alert['id']}")
    assert deleted.status_code == 204
    assert [a["name"] for a in listed] == ["Python in Berlin"]
    assert listed[0]["remote"] is True
    assert listed[0]["frequency"] == "weekly"
    await eventually(lambda: len(heard) == 3, what="saved, saved again, deleted")
    saved, resaved, gone = heard
    assert saved.type == resaved.type == "alert.saved"
    assert gone.type == "alert.deleted"
    assert saved.data.alert_id == alert["id"]
    assert saved.data.user_id == user
    assert saved.data.keywords == ["python", "django"]
    assert resaved.data.remote is True
    # the matcher keeps only the newest version it hears: times must increase
    assert saved.time < resaved.time


@pytest.mark.parametrize(
    "body",
    [
        {"frequency": "hourly"},
        {"keywords": [""]},
        {"keywords": ["x"] * 21},
        {"job_types": ["gig"]},
        {"salary_floor": -1},
        {"colour": "blue"},
    ],
)
async def test_bad_alerts_are_refused(gateway: Gateway, body: dict[str, Any]) -> None:
    user = await gateway.user()
    async with gateway.as_user(user) as client:
        assert (await client.post("/v1/me/alerts", json=body)).status_code == 422


# -- nobody reaches another user's data ---------------------------------------------


async def test_one_user_can_neither_read_nor_change_anothers_things(
    gateway: Gateway, heard: Heard
) -> None:
    alice, bob = await gateway.user(), await gateway.user()
    async with gateway.as_user(alice) as a, gateway.as_user(bob) as b:
        await a.patch("/v1/me/preferences", json={"timezone": "Asia/Tokyo"})
        hook = (
            await a.post("/v1/me/channels", json={"type": "webhook", "url": PUBLIC_HOOK})
        ).json()
        alert = (await a.post("/v1/me/alerts", json={"keywords": ["rust"]})).json()

        # Bob sees only his own
        assert (await b.get("/v1/me/preferences")).json()["timezone"] == "UTC"
        assert hook["id"] not in (await b.get("/v1/me/channels")).text
        assert (await b.get("/v1/me/alerts")).json() == []
        # and every way of touching Alice's by id finds nothing
        attempts = [
            b.patch(f"/v1/me/channels/{hook['id']}", json={"enabled": False}),
            b.delete(f"/v1/me/channels/{hook['id']}"),
            b.post(f"/v1/me/channels/{hook['id']}/test"),
            b.get(f"/v1/me/alerts/{alert['id']}"),
            b.put(f"/v1/me/alerts/{alert['id']}", json={"keywords": ["go"]}),
            b.patch(f"/v1/me/alerts/{alert['id']}", json={"keywords": ["go"]}),
            b.delete(f"/v1/me/alerts/{alert['id']}"),
        ]
        for answer in await asyncio.gather(*attempts):
            assert answer.status_code == 404, (answer.request.method, answer.request.url)

        # Alice's things are as she left them
        assert (await a.get(f"/v1/me/alerts/{alert['id']}")).json()["keywords"] == ["rust"]
        mine = {c["id"]: c for c in (await a.get("/v1/me/channels")).json()}
        assert mine[hook["id"]]["enabled"] is True
    await quiescent(heard.bus)
    assert [e.type for e in heard] == ["alert.saved"]  # Bob's attempts published nothing
