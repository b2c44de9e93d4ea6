"""Channel endpoints' URLs and secrets sealed at rest: nothing readable in the
database, nothing but ``scheme://host/…`` in answers, delivery unchanged, old rows
sealed on upgrade, keys rotated without losing a row.

Each test has a database of its own: resealing under a new key changes every row,
which other tests (sealed under the tests' derived key) must not meet.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from services.dispatcher import recipients
from shared.bus import Bus
from shared.db import ensure_database, migrate
from shared.endpoints import create_endpoint, new_webhook_secret
from shared.sealing import CannotUnseal, Sealer, generate_key
from tests.conftest import AMQP_URL, SECRET_KEY, SERVER_URL
from tests.integration.conftest import (
    Dispatcher,
    add_endpoint,
    endpoint_sealer,
    publish,
)
from tests.integration.gateway import Gateway, gateway_factory
from tests.integration.test_dispatcher import request
from tests.receivers import Receiver
from tests.support import eventually

__all__ = ["gateway_factory"]

Start = Callable[..., Awaitable[Dispatcher]]
# the tests allow http://127.0.0.1 as a chat webhook host (tests.support.local_chat_hosts)
DISCORD = "http://127.0.0.1:9/api/webhooks/123/very-secret-token"
HOOK = "https://93.184.215.14/hooks/private-path-token"


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    name = f"herald_test_sealed_{uuid.uuid4().hex[:10]}"
    url = f"{SERVER_URL}/{name}"
    await ensure_database(url)
    await migrate(url)
    yield url
    conn = await asyncpg.connect(f"{SERVER_URL}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def herald(database_url: str, tmp_path: Path, *args: str, keys: str | None = None) -> str:
    """Run the ``herald`` command line as an operator would; its stdout and stderr."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HERALD_")},
        "HERALD_DATABASE_URL": database_url,
        "HERALD_AMQP_URL": AMQP_URL,
        "HERALD_SECRET_KEY": SECRET_KEY,
        "HERALD_DATA_DIR": str(tmp_path / "cli"),
        **({"HERALD_ENCRYPTION_KEYS": keys} if keys else {}),
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
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def raw_row(pool: asyncpg.Pool, endpoint_id: uuid.UUID) -> str:
    """Every column of the endpoint's row, as the database holds it."""
    text = await pool.fetchval(
        "SELECT row_to_json(e)::text FROM channel_endpoints e WHERE id = $1", endpoint_id
    )
    assert text is not None
    return str(text)


async def test_the_database_holds_no_url_or_secret_and_answers_show_only_the_host(
    gateway_factory: Callable[..., Awaitable[Gateway]],
) -> None:
    gateway = await gateway_factory()
    user = await gateway.user()
    async with gateway.as_user(user) as client:
        hook = await client.post("/v1/me/channels", json={"type": "webhook", "url": HOOK})
        discord = await client.post("/v1/me/channels", json={"type": "discord", "url": DISCORD})
        listed = await client.get("/v1/me/channels")
    assert hook.status_code == discord.status_code == 201, hook.text
    secret = hook.json()["secret"]
    assert secret.startswith("whsec_")
    # shown once, in the 201; no answer carries a full URL
    assert secret not in listed.text
    for answer in (hook.text, discord.text, listed.text):
        assert "private-path-token" not in answer
        assert "very-secret-token" not in answer
    shown = {c["type"]: c["url"] for c in listed.json()}
    assert shown["webhook"] == "https://93.184.215.14/…"
    assert shown["discord"] == "http://127.0.0.1/…"

    for created in (hook, discord):
        row = await raw_row(gateway.pool, uuid.UUID(created.json()["id"]))
        assert "private-path-token" not in row
        assert "very-secret-token" not in row
        assert "/hooks/" not in row
        assert secret not in row
        assert secret.removeprefix("whsec_") not in row
    # what is stored opens to what the user gave (the dispatcher's view)
    stored = await recipients.load(gateway.pool, endpoint_sealer(), user)
    assert stored is not None
    by_type = {e.type: e for e in stored.endpoints}
    assert (by_type["webhook"].url, by_type["webhook"].secret) == (HOOK, secret)
    assert by_type["discord"].url == DISCORD


async def _plaintext_endpoint(pool: asyncpg.Pool, user_id: str, url: str) -> tuple[uuid.UUID, str]:
    """A webhook as Herald stored it before sealing (migration 0011)."""
    endpoint_id, secret = uuid.uuid4(), new_webhook_secret()
    await pool.execute(
        """INSERT INTO channel_endpoints (id, user_id, type, url, secret)
           VALUES ($1, $2, 'webhook', $3, $4)""",
        endpoint_id,
        user_id,
        url,
        secret,
    )
    return endpoint_id, secret


async def test_rows_stored_in_plain_text_are_sealed_at_start_up_and_still_delivered(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    user_id = await sign_up_early(pool)
    async with Receiver("webhook") as receiver:
        endpoint_id, secret = await _plaintext_endpoint(pool, user_id, f"{receiver.url}/old")
        await dispatcher()
        row = await pool.fetchrow(
            "SELECT url, secret, url_sealed, url_shown FROM channel_endpoints WHERE id = $1",
            endpoint_id,
        )
        assert (row["url"], row["secret"]) == (None, None)
        assert "/old" not in (await raw_row(pool, endpoint_id))
        assert secret.removeprefix("whsec_") not in (await raw_row(pool, endpoint_id))
        assert row["url_shown"] == "http://127.0.0.1/…"

        await publish(producer, request(user_id, title="Still here"))
        await eventually(lambda: len(receiver.to("/old")) == 1, what="the webhook")
    call = receiver.to("/old")[0]
    assert Webhook(secret).verify(call.body, call.headers)["data"]["title"] == "Still here"


async def sign_up_early(pool: asyncpg.Pool) -> str:
    """A user stored before any dispatcher runs (as the upgrade finds them)."""
    user_id = f"u-{uuid.uuid4().hex[:10]}"
    await recipients.record_user(pool, user_id, f"{user_id}@example.com", "Ada", "UTC", "en")
    await pool.execute(
        """UPDATE preferences SET email_enabled = false, channels = '{"inapp": false}'
           WHERE user_id = $1""",
        user_id,
    )
    return user_id


async def test_herald_migrate_seals_rows_stored_in_plain_text(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    user_id = await sign_up_early(pool)
    endpoint_id, secret = await _plaintext_endpoint(pool, user_id, HOOK)
    out = await herald(database_url, tmp_path, "migrate")
    assert "sealed the credentials of 1 channel endpoint(s)" in out
    row = await raw_row(pool, endpoint_id)
    assert "private-path-token" not in row
    assert secret.removeprefix("whsec_") not in row
    found = await recipients.load(pool, endpoint_sealer(), user_id)
    assert found is not None
    webhook = next(e for e in found.endpoints if e.type == "webhook")
    assert (webhook.url, webhook.secret) == (HOOK, secret)


async def test_a_new_key_goes_first_rotate_reseals_and_the_old_key_can_go(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    old, new = generate_key(), generate_key()
    user_id = await sign_up_early(pool)
    async with Receiver("webhook") as receiver:
        async with pool.acquire() as conn:
            endpoint = await create_endpoint(
                conn, user_id, "webhook", sealer=Sealer([old.encode()]), url=f"{receiver.url}/r"
            )
        assert endpoint.secret is not None
        # a new key put first: what the old one sealed still opens
        both = Sealer([new.encode(), old.encode()])
        found = await recipients.load(pool, both, user_id)
        assert found is not None
        assert any(e.secret == endpoint.secret for e in found.endpoints)

        out = await herald(database_url, tmp_path, "keys", "rotate", keys=f"{new},{old}")
        assert "resealed 1 channel endpoint(s)" in out
        with pytest.raises(CannotUnseal):
            await recipients.load(pool, Sealer([old.encode()]), user_id)

        # the old key dropped: the dispatcher opens and signs with the new one alone
        await dispatcher(encryption_keys=[SecretStr(new)])
        await publish(producer, request(user_id, title="Rotated"))
        await eventually(lambda: len(receiver.to("/r")) == 1, what="the webhook")
    call = receiver.to("/r")[0]
    assert Webhook(endpoint.secret).verify(call.body, call.headers)["data"]["title"] == "Rotated"


async def test_a_dispatcher_whose_keys_open_nothing_stored_refuses_to_start(
    dispatcher: Start, pool: asyncpg.Pool
) -> None:
    user_id = await sign_up_early(pool)
    await add_endpoint(pool, user_id, "webhook", url=HOOK)
    with pytest.raises(RuntimeError, match="HERALD_ENCRYPTION_KEYS does not open"):
        await dispatcher(encryption_keys=[SecretStr(generate_key())])
