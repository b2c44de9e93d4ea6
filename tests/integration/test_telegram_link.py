"""Telegram chats are bound only when their owner opens the bot's deep link: a user
cannot name a chat, a pending channel gets nothing, the webhook answers only
Telegram, and a link works once, in a private chat, for a while."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from services.gateway import telegram_links
from services.gateway.routes.channels import MAX_ENDPOINTS
from shared.bus import Bus
from shared.events import RequestNotification
from tests.conftest import AMQP_URL, SECRET_KEY, TELEGRAM_BOT, TELEGRAM_WEBHOOK_SECRET
from tests.integration.conftest import Dispatcher, publish, until
from tests.integration.gateway import Gateway, gateway, gateway_factory, start_update
from tests.receivers import Receiver, Reply
from tests.support import eventually, quiescent, sending

__all__ = ["gateway", "gateway_factory"]

Start = Callable[..., Awaitable[Dispatcher]]
BOT_TOKEN = "123456:ABC-test-bot-token-xyz"
LINK = f"https://t.me/{TELEGRAM_BOT}?start="


async def _pending(gateway: Gateway, user: str) -> tuple[str, str]:
    """A new pending Telegram channel of ``user``: (its id, its link code)."""
    async with gateway.as_user(user) as client:
        created = await client.post("/v1/me/channels", json={"type": "telegram"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["status"], body["enabled"], body["chat_id"]) == ("pending", False, None)
    assert body["link"].startswith(LINK)
    return body["id"], body["link"].removeprefix(LINK)


async def _chat_of(gateway: Gateway, channel_id: str) -> Any:
    return await gateway.pool.fetchval(
        "SELECT chat_id FROM channel_endpoints WHERE id = $1", uuid.UUID(channel_id)
    )


async def test_a_user_cannot_name_a_chat_and_is_told_how_to_link_one(gateway: Gateway) -> None:
    user = await gateway.user()
    async with gateway.as_user(user) as client:
        answer = await client.post(
            "/v1/me/channels", json={"type": "telegram", "chat_id": "-1001234567890"}
        )
        listed = await client.get("/v1/me/channels")
    assert answer.status_code == 422
    assert "open the link" in answer.text
    assert sorted(c["type"] for c in listed.json()) == ["email", "inapp"]


async def test_the_chat_that_opens_the_link_is_bound_and_only_then_notified(
    gateway: Gateway, dispatcher: Start, producer: Bus
) -> None:
    async with Receiver("telegram") as telegram:
        d = await dispatcher(telegram_bot_token=SecretStr(BOT_TOKEN), telegram_api_url=telegram.url)
        user = await gateway.user()
        channel_id, code = await _pending(gateway, user)

        # pending: never delivered to, and not to be switched on by hand
        await publish(
            producer, RequestNotification(user_id=user, type="note", title="Early", body="b")
        )
        await until(
            gateway.pool,
            "SELECT count(*) > 0 FROM notifications WHERE user_id = $1",
            user,
            what="the notification recorded",
        )
        async with gateway.as_user(user) as client:
            switched = await client.patch(f"/v1/me/channels/{channel_id}", json={"enabled": True})
        assert switched.status_code == 409

        answer = await gateway.telegram_update(start_update(777001, code))
        assert answer.status_code == 200
        # the confirmation goes back as a Bot API call in the answer itself
        assert answer.json()["method"] == "sendMessage"
        assert answer.json()["chat_id"] == 777001
        assert await _chat_of(gateway, channel_id) == "777001"

        await publish(
            producer, RequestNotification(user_id=user, type="note", title="Late", body="b")
        )
        send = f"/bot{BOT_TOKEN}/sendMessage"
        await eventually(lambda: len(telegram.to(send)) == 1, what="the Telegram message")
        await quiescent(d.bus, also=[sending(gateway.pool, user)])  # "Early" would come now
    (only,) = telegram.to(send)
    assert only.json()["chat_id"] == "777001"
    assert "Late" in only.json()["text"]


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", TELEGRAM_WEBHOOK_SECRET + "x"])
async def test_updates_without_telegrams_secret_token_are_refused(
    gateway: Gateway, secret: str | None
) -> None:
    user = await gateway.user()
    channel_id, code = await _pending(gateway, user)
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    async with gateway.client(headers) as client:
        answer = await client.post("/v1/telegram/webhook", json=start_update(31337, code))
    assert answer.status_code == 403
    assert answer.json() == {"detail": "Forbidden"}
    assert await _chat_of(gateway, channel_id) is None
    # the code was not spent: its owner can still use it
    assert (await gateway.telegram_update(start_update(4100, code))).status_code == 200
    assert await _chat_of(gateway, channel_id) == "4100"


async def test_a_code_binds_once_from_a_private_chat_and_not_after_it_expires(
    gateway: Gateway,
) -> None:
    user = await gateway.user()
    channel_id, code = await _pending(gateway, user)

    group = await gateway.telegram_update(start_update(-100555, code, chat_type="group"))
    assert group.status_code == 200
    assert await _chat_of(gateway, channel_id) is None

    assert (await gateway.telegram_update(start_update(5001, code))).status_code == 200
    stolen = await gateway.telegram_update(start_update(6666, code))
    assert stolen.status_code == 200  # Telegram must not retry it
    assert "no longer valid" in stolen.json()["text"]
    assert await _chat_of(gateway, channel_id) == "5001"

    late_id, late_code = await _pending(gateway, user)
    await gateway.pool.execute(
        "UPDATE telegram_links SET expires_at = now() - interval '1 second' WHERE endpoint_id = $1",
        uuid.UUID(late_id),
    )
    expired = await gateway.telegram_update(start_update(5002, late_code))
    assert expired.status_code == 200
    assert await _chat_of(gateway, late_id) is None
    unknown = await gateway.telegram_update(start_update(5003, "no-such-code"))
    assert unknown.status_code == 200


async def test_links_that_expired_unused_do_not_count_against_the_channel_cap(
    gateway: Gateway,
) -> None:
    """A user who asked for Telegram again and again and never opened the links is
    not stuck at the cap: the expired pending channels make way."""
    user = await gateway.user()
    async with gateway.pool.acquire() as conn:
        for _ in range(MAX_ENDPOINTS):
            await telegram_links.add_pending(conn, user)
        await conn.execute(
            """UPDATE telegram_links SET expires_at = now() - interval '1 second'
               WHERE endpoint_id IN (SELECT id FROM channel_endpoints WHERE user_id = $1)""",
            user,
        )
    await _pending(gateway, user)
    pending = await gateway.pool.fetchval(
        "SELECT count(*) FROM channel_endpoints WHERE user_id = $1 AND type = 'telegram'", user
    )
    assert pending == 1


async def test_link_codes_are_stored_hashed(gateway: Gateway) -> None:
    user = await gateway.user()
    channel_id, code = await _pending(gateway, user)
    stored = await gateway.pool.fetchval(
        "SELECT row_to_json(l)::text FROM telegram_links l WHERE endpoint_id = $1",
        uuid.UUID(channel_id),
    )
    assert stored is not None
    assert code not in stored


async def test_the_webhook_is_rate_limited_per_client_like_other_public_routes(
    gateway_factory: Callable[..., Awaitable[Gateway]],
) -> None:
    gw = await gateway_factory(gateway_rate_per_minute=2)
    update = {"update_id": 1}
    answers = [(await gw.telegram_update(update)).status_code for _ in range(3)]
    assert answers == [200, 200, 429]


async def _herald(tmp_path: Path, telegram: Receiver, *args: str) -> tuple[int, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HERALD_")},
        "HERALD_AMQP_URL": AMQP_URL,
        "HERALD_SECRET_KEY": SECRET_KEY,
        "HERALD_DATA_DIR": str(tmp_path / "cli"),
        "HERALD_PUBLIC_URL": "https://herald.example.org/",
        "HERALD_TELEGRAM_API_URL": telegram.url,
        "HERALD_TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "HERALD_TELEGRAM_WEBHOOK_SECRET": TELEGRAM_WEBHOOK_SECRET,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shared.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_set_webhook_registers_the_gateway_and_its_secret_with_telegram(
    tmp_path: Path,
) -> None:
    async with Receiver("telegram") as telegram:
        code, out = await _herald(tmp_path, telegram, "telegram", "set-webhook")
        assert code == 0, out
        telegram.script(
            f"/bot{BOT_TOKEN}/setWebhook",
            Reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"}),
        )
        refused_code, refused = await _herald(tmp_path, telegram, "telegram", "set-webhook")
    assert "https://herald.example.org/v1/telegram/webhook" in out
    (call, _) = telegram.to(f"/bot{BOT_TOKEN}/setWebhook")
    assert call.json() == {
        "url": "https://herald.example.org/v1/telegram/webhook",
        "secret_token": TELEGRAM_WEBHOOK_SECRET,
        "allowed_updates": ["message"],
    }
    assert refused_code == 1
    assert "Unauthorized" in refused
    for output in (out, refused):
        assert BOT_TOKEN not in output
        assert "ABC-test-bot-token" not in output


async def test_telegram_endpoints_from_before_linking_keep_their_chat(
    pool: asyncpg.Pool, gateway: Gateway
) -> None:
    user = await gateway.user()
    await pool.execute(
        """INSERT INTO channel_endpoints (id, user_id, type, chat_id)
           VALUES ($1, $2, 'telegram', '-100999')""",
        uuid.uuid4(),
        user,
    )
    async with gateway.as_user(user) as client:
        listed = (await client.get("/v1/me/channels")).json()
    (telegram,) = [c for c in listed if c["type"] == "telegram"]
    assert (telegram["status"], telegram["chat_id"]) == ("active", "-100999")
