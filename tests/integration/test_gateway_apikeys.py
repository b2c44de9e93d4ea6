"""API keys over ``/v1/admin/apikeys``: listed without their secrets, revoked,
rotated with a grace period, expired; and ``last_used_at`` kept without a write
per request."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.gateway import Gateway, gateway, gateway_factory

__all__ = ["gateway", "gateway_factory"]

KEYS = "/v1/admin/apikeys"


async def issue(admin: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await admin.post(KEYS, json={"name": "feed", "scopes": ["events:write"], **body})
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    issued: dict[str, Any] = answer.json()
    return issued


async def authenticates(gateway: Gateway, key: str) -> bool:
    """Whether the key gets past authentication (a 401 says it does not)."""
    async with gateway.client({"X-API-Key": key}) as client:
        answer = await client.get(KEYS)
    assert answer.status_code in (200, 401, 403), answer.text
    return answer.status_code != 401


async def listed(admin: httpx.AsyncClient, key_id: str) -> dict[str, Any]:
    answer = await admin.get(KEYS)
    assert answer.status_code == 200
    (found,) = [k for k in answer.json() if k["id"] == key_id]
    return dict(found)


async def test_keys_are_listed_with_their_prefix_never_the_key_or_its_hash(
    gateway: Gateway,
) -> None:
    async with await gateway.as_key("admin") as admin:
        issued = await issue(admin, event_types=["job.*"], expires_in="90d")
        key, view = issued["key"], issued["api_key"]
        answer = await admin.get(KEYS)
    assert answer.status_code == 200
    assert key not in answer.text
    assert hashlib.sha256(key.encode()).hexdigest() not in answer.text
    row = next(k for k in answer.json() if k["id"] == view["id"])
    assert key.startswith(row["prefix"])
    assert row["name"] == "feed"
    assert row["scopes"] == ["events:write"]
    assert row["event_types"] == ["job.*"]
    assert row["state"] == "active"
    assert row["lifetime_seconds"] == 90 * 86400
    expires = datetime.fromisoformat(row["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=90))) < timedelta(minutes=1)


async def test_only_admin_keys_manage_keys(gateway: Gateway) -> None:
    writer = await gateway.as_key("events:write")
    person = gateway.as_user(await gateway.user())
    async with writer, person:
        for client in (writer, person):
            assert (await client.get(KEYS)).status_code == 403
            answer = await client.post(KEYS, json={"name": "x", "scopes": ["admin"]})
            assert answer.status_code == 403


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"scopes": ["root"]}, "unknown scopes"),
        ({"scopes": []}, "scopes"),
        ({"event_types": ["job.teleported"]}, "job.teleported"),
        ({"event_types": ["Job!"]}, "not an event type pattern"),
        ({"expires_in": "90d", "expires_at": "2099-01-01T00:00:00Z"}, "not both"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "has passed"),
        ({"expires_in": "9999d"}, "longer than"),
        ({"expires_in": "soon"}, "expires_in"),
        ({"name": "   "}, "name"),
    ],
)
async def test_bad_keys_are_refused_with_a_reason(
    gateway: Gateway, body: dict[str, Any], reason: str
) -> None:
    async with await gateway.as_key("admin") as admin:
        answer = await admin.post(KEYS, json={"name": "x", "scopes": ["events:write"], **body})
    assert answer.status_code == 422, answer.text
    assert reason in answer.text


async def test_a_revoked_key_authenticates_nothing(gateway: Gateway) -> None:
    async with await gateway.as_key("admin") as admin:
        issued = await issue(admin)
        key, key_id = issued["key"], issued["api_key"]["id"]
        assert await authenticates(gateway, key)
        revoked = await admin.post(f"{KEYS}/{key_id}/revoke")
        assert revoked.status_code == 200
        assert revoked.json()["state"] == "revoked"
        assert not await authenticates(gateway, key)
        again = await admin.post(f"{KEYS}/{key_id}/revoke")
        assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
        unknown = await admin.post(f"{KEYS}/00000000-0000-0000-0000-000000000000/revoke")
        assert unknown.status_code == 404
        # a revoked key is not brought back by rotating it
        assert (await admin.post(f"{KEYS}/{key_id}/rotate")).status_code == 409


async def test_an_expired_key_authenticates_nothing(gateway: Gateway) -> None:
    async with await gateway.as_key("admin") as admin:
        issued = await issue(admin, expires_in="2s")
        assert await authenticates(gateway, issued["key"])
        await asyncio.sleep(2.2)  # a wait for a time: past the key's two seconds
        assert not await authenticates(gateway, issued["key"])
        assert (await listed(admin, issued["api_key"]["id"]))["state"] == "expired"


async def test_rotation_with_grace_keeps_the_old_key_working_until_it_ends(
    gateway: Gateway,
) -> None:
    async with await gateway.as_key("admin") as admin:
        old = await issue(admin, event_types=["job.*"], expires_in="30d")
        answer = await admin.post(f"{KEYS}/{old['api_key']['id']}/rotate", json={"grace": "1h"})
        assert answer.status_code == 201, answer.text
        assert answer.headers["cache-control"] == "no-store"
        rotated = answer.json()
        new, replaced = rotated["api_key"], rotated["replaced"]
        # the same powers and lifetime, a new secret and id
        assert rotated["key"] != old["key"]
        assert new["id"] != old["api_key"]["id"]
        assert (new["name"], new["scopes"], new["event_types"]) == (
            "feed",
            ["events:write"],
            ["job.*"],
        )
        assert new["lifetime_seconds"] == 30 * 86400
        # both work during the grace period; the old one ends with it
        assert await authenticates(gateway, old["key"])
        assert await authenticates(gateway, rotated["key"])
        assert replaced["replaced_by"] == new["id"]
        assert replaced["revoked_at"] is None
        ends = datetime.fromisoformat(replaced["expires_at"])
        assert abs(ends - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(minutes=1)
        # a key has one successor
        again = await admin.post(f"{KEYS}/{old['api_key']['id']}/rotate")
        assert again.status_code == 409
        assert new["id"] in again.text


async def test_rotation_without_grace_revokes_the_old_key_at_once(gateway: Gateway) -> None:
    async with await gateway.as_key("admin") as admin:
        old = await issue(admin)
        answer = await admin.post(f"{KEYS}/{old['api_key']['id']}/rotate")
        assert answer.status_code == 201, answer.text
        assert answer.json()["replaced"]["state"] == "revoked"
        assert answer.json()["api_key"]["expires_at"] is None  # it never expired; nor does this
        assert not await authenticates(gateway, old["key"])
        assert await authenticates(gateway, answer.json()["key"])
        too_long = await admin.post(f"{KEYS}/{answer.json()['api_key']['id']}/rotate",
                                    json={"grace": "90d"})  # fmt: skip
        assert too_long.status_code == 422


async def test_last_use_is_written_at_most_once_a_minute(gateway: Gateway) -> None:
    async with await gateway.as_key("admin") as admin:
        issued = await issue(admin)
        key_id = issued["api_key"]["id"]
        assert issued["api_key"]["last_used_at"] is None
        assert await authenticates(gateway, issued["key"])
        first = (await listed(admin, key_id))["last_used_at"]
        assert first is not None
        for _ in range(3):
            assert await authenticates(gateway, issued["key"])
        assert (await listed(admin, key_id))["last_used_at"] == first
        # a minute later (moved back rather than waited for), the next use is recorded
        async with gateway.pool.acquire() as conn:
            await conn.execute(
                "UPDATE api_keys SET last_used_at = last_used_at - interval '61 seconds' "
                "WHERE id = $1::uuid",
                key_id,
            )
        assert await authenticates(gateway, issued["key"])
        later = (await listed(admin, key_id))["last_used_at"]
        assert datetime.fromisoformat(later) > datetime.fromisoformat(first)
