"""The zone a user chose through the API is theirs: the product's zone, sent again
with a repeated ``user.signed_up``, does not replace it: not in the API's answer,
not for digests, not for quiet hours."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from services.scheduler import digest_schedules
from shared.bus import Bus
from shared.events import RequestNotification, UserSignedUp
from tests.integration.conftest import Dispatcher, deliveries, publish, sign_up, until
from tests.integration.gateway import Gateway, gateway, gateway_factory
from tests.support import eventually

__all__ = ["gateway", "gateway_factory"]

TOKYO = ZoneInfo("Asia/Tokyo")


async def test_a_repeated_sign_up_leaves_the_zone_the_user_chose(
    gateway: Gateway,
    dispatcher: Callable[..., Awaitable[Dispatcher]],
    producer: Bus,
    pool: asyncpg.Pool,
) -> None:
    await dispatcher()
    user = await sign_up(producer, pool, timezone="America/New_York")
    # quiet hours around the present moment in Tokyo: in New York or Lisbon the
    # same hours are far from now
    local = datetime.now(TOKYO)
    start = (local - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (local + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    async with gateway.as_user(user) as client:
        chosen = await client.patch(
            "/v1/me/preferences",
            json={
                "timezone": "Asia/Tokyo",
                "digest_frequency": "daily",
                "quiet_hours": {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}"},
            },
        )
        assert chosen.status_code == 200, chosen.text

        # the product re-sends the sign-up (a new address) with its own idea of the zone
        address = f"new-{user}@example.com"
        await publish(
            producer,
            UserSignedUp(user_id=user, email=address, name="Ada", timezone="Europe/Lisbon"),
        )
        await until(
            pool,
            "SELECT email = $2 FROM users WHERE user_id = $1",
            user,
            address,
            what="the repeated sign-up recorded",
        )
        shown = (await client.get("/v1/me/preferences")).json()
    assert shown["timezone"] == "Asia/Tokyo"

    # the scheduler's digest time: 08:00 in Tokyo
    async with pool.acquire() as conn:
        await digest_schedules.sync(conn, datetime.now(UTC), default_hour=8, weekday=0)
    schedule = await pool.fetchrow(
        "SELECT timezone, next_at FROM digest_schedules WHERE user_id = $1", user
    )
    assert schedule["timezone"] == "Asia/Tokyo"
    assert schedule["next_at"].astimezone(TOKYO).hour == 8

    # the dispatcher's quiet hours: an e-mail now waits for their end in Tokyo
    await publish(producer, RequestNotification(user_id=user, type="note", title="Later", body="."))

    async def mailed() -> list[asyncpg.Record]:
        return [d for d in await deliveries(pool, user, "email") if d["title"] == "Later"]

    await eventually(mailed, what="the e-mail planned")
    (held,) = await mailed()
    assert held["status"] == "held"
    assert held["not_before"].astimezone(TOKYO).time() == end
