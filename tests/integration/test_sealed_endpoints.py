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
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from services.dispatcher import history, recipients
from services.dispatcher.channels import Notification, delivery_id
from services.dispatcher.delivery import publish_due
from shared import endpoint_sealing
from shared.bus import Bus
from shared.db import ensure_database, migrate
from shared.endpoint_sealing import KeysDoNotOpen
from shared.endpoints import create_endpoint, new_webhook_secret, url_place
from shared.sealing import Sealer, generate_key
from tests.conftest import AMQP_URL, SECRET_KEY, SERVER_URL
from tests.integration.conftest import (
    Dispatcher,
    add_endpoint,
    endpoint_sealer,
    publish,
    sign_up,
    until,
)
from tests.integration.gateway import Gateway, gateway_factory
from tests.integration.test_dispatcher import outbox, request
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


async def herald(
    database_url: str,
    tmp_path: Path,
    *args: str,
    keys: str | None = None,
    secret: bool = True,
    exits: int = 0,
) -> str:
    """Run the ``herald`` command line as an operator would; its stdout and stderr.
    ``secret=False``: from a shell without HERALD_SECRET_KEY (a workstation's)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HERALD_")},
        "HERALD_DATABASE_URL": database_url,
        "HERALD_AMQP_URL": AMQP_URL,
        "HERALD_DATA_DIR": str(tmp_path / "cli"),
        **({"HERALD_SECRET_KEY": SECRET_KEY} if secret else {}),
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
    assert proc.returncode == exits, out.decode()
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
    # the default grace is for rows stored before sealing: a new endpoint is never
    # written in plain text
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
            """SELECT url, secret, url_sealed, secret_sealed, url_shown, sealed_at
               FROM channel_endpoints WHERE id = $1""",
            endpoint_id,
        )
        assert row["url_sealed"]
        assert row["secret_sealed"]
        assert row["sealed_at"]
        assert row["url_shown"] == "http://127.0.0.1/…"
        # a dispatcher of the version before sealing, still running during the
        # rollout, reads only the plain columns: they stay for the grace period
        assert (row["url"], row["secret"]) == (f"{receiver.url}/old", secret)

        await publish(producer, request(user_id, title="Still here"))
        await eventually(lambda: len(receiver.to("/old")) == 1, what="the webhook")
    call = receiver.to("/old")[0]
    assert Webhook(secret).verify(call.body, call.headers)["data"]["title"] == "Still here"


async def test_without_a_grace_start_up_clears_the_plain_copy_at_once(
    dispatcher: Start, pool: asyncpg.Pool
) -> None:
    user_id = await sign_up_early(pool)
    endpoint_id, secret = await _plaintext_endpoint(pool, user_id, HOOK)
    await dispatcher(plaintext_grace_seconds=0.0)
    row = await raw_row(pool, endpoint_id)
    assert "private-path-token" not in row
    assert secret.removeprefix("whsec_") not in row


async def test_rows_an_old_gateway_writes_are_sealed_and_their_plain_copy_cleared_after_the_grace(
    pool: asyncpg.Pool,
) -> None:
    user_id = await sign_up_early(pool)
    tending = asyncio.create_task(
        endpoint_sealing.keep_sealed(pool, endpoint_sealer(), grace=1.0, every=0.1)
    )
    try:
        # written by a gateway older than sealing, while this dispatcher runs
        endpoint_id, secret = await _plaintext_endpoint(pool, user_id, HOOK)
        await until(
            pool,
            "SELECT url_sealed IS NOT NULL FROM channel_endpoints WHERE id = $1",
            endpoint_id,
            what="the row sealed",
        )
        assert (
            await pool.fetchval("SELECT url FROM channel_endpoints WHERE id = $1", endpoint_id)
            == HOOK
        ), "the plain copy went before its grace"
        await until(
            pool,
            "SELECT url IS NULL AND secret IS NULL FROM channel_endpoints WHERE id = $1",
            endpoint_id,
            what="the plain copy cleared",
        )
    finally:
        tending.cancel()
    row = await raw_row(pool, endpoint_id)
    assert "private-path-token" not in row
    assert secret.removeprefix("whsec_") not in row
    found = await recipients.load(pool, endpoint_sealer(), user_id)
    assert found is not None
    webhook = next(e for e in found.endpoints if e.type == "webhook")
    assert (webhook.url, webhook.secret) == (HOOK, secret)


async def test_herald_keys_seal_clear_drops_every_plain_copy_now(
    dispatcher: Start, pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    user_id = await sign_up_early(pool)
    endpoint_id, secret = await _plaintext_endpoint(pool, user_id, HOOK)
    await dispatcher()  # sealed, the plain copy kept for an hour
    assert await pool.fetchval("SELECT url FROM channel_endpoints WHERE id = $1", endpoint_id)
    out = await herald(database_url, tmp_path, "keys", "seal", "--clear")
    assert "cleared the plain copies of 1 channel endpoint(s)" in out
    row = await raw_row(pool, endpoint_id)
    assert "private-path-token" not in row
    assert secret.removeprefix("whsec_") not in row


async def sign_up_early(pool: asyncpg.Pool) -> str:
    """A user stored before any dispatcher runs (as the upgrade finds them)."""
    user_id = f"u-{uuid.uuid4().hex[:10]}"
    await recipients.record_user(pool, user_id, f"{user_id}@example.com", "Ada", "UTC", "en")
    await pool.execute(
        """INSERT INTO preferences (user_id, email_enabled, channels)
           VALUES ($1, false, '{"inapp": false}')""",
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
    found = await recipients.load(pool, endpoint_sealer(), user_id)
    assert found is not None
    webhook = next(e for e in found.endpoints if e.type == "webhook")
    assert (webhook.url, webhook.secret) == (HOOK, secret)
    sealed = await pool.fetchrow(
        "SELECT url_sealed, secret_sealed FROM channel_endpoints WHERE id = $1", endpoint_id
    )
    assert "private-path-token" not in str(dict(sealed))


async def test_herald_migrate_from_a_shell_without_the_secret_key_seals_nothing(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    user_id = await sign_up_early(pool)
    endpoint_id, _ = await _plaintext_endpoint(pool, user_id, HOOK)
    # this shell would derive a key from its own dev secret, which no service has
    out = await herald(database_url, tmp_path, "migrate", secret=False)
    assert "left plaintext endpoints for the services to seal" in out
    assert (
        await pool.fetchval("SELECT url_sealed FROM channel_endpoints WHERE id = $1", endpoint_id)
        is None
    )
    # the services, with the deployment's key, seal it at start-up
    found = await recipients.load(pool, endpoint_sealer(), user_id)
    assert found is not None
    assert any(e.url == HOOK for e in found.endpoints)


async def test_herald_keys_rotate_from_a_shell_without_the_secret_key_refuses(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    user_id = await sign_up_early(pool)
    endpoint = await add_endpoint(pool, user_id, "webhook", url=HOOK)
    before = await raw_row(pool, endpoint.id)
    out = await herald(database_url, tmp_path, "keys", "rotate", secret=False, exits=2)
    assert "refusing to rotate" in out
    assert "HERALD_SECRET_KEY" in out
    assert await raw_row(pool, endpoint.id) == before


async def test_keys_that_open_nothing_stored_seal_nothing_before_refusing(
    dispatcher: Start, pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    user_id = await sign_up_early(pool)
    await add_endpoint(pool, user_id, "webhook", url=HOOK)
    old_id, _ = await _plaintext_endpoint(pool, user_id, f"{HOOK}/old")
    stranger = generate_key()
    with pytest.raises(KeysDoNotOpen, match="HERALD_ENCRYPTION_KEYS does not open"):
        await dispatcher(encryption_keys=[SecretStr(stranger)])
    out = await herald(database_url, tmp_path, "migrate", keys=stranger, exits=1)
    assert "does not open the stored channel endpoints" in out
    # not sealed under a key the rest of the deployment lacks
    assert (
        await pool.fetchval("SELECT url_sealed FROM channel_endpoints WHERE id = $1", old_id)
        is None
    )


async def test_a_new_key_added_last_then_put_first_then_rotate_lets_the_old_key_go(
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
        # the new key added last, then put first: what the old one sealed still opens
        for keys in ([old, new], [new, old]):
            found = await recipients.load(pool, Sealer([k.encode() for k in keys]), user_id)
            assert found is not None
            assert any(e.secret == endpoint.secret for e in found.endpoints)

        out = await herald(database_url, tmp_path, "keys", "rotate", keys=f"{new},{old}")
        assert "resealed 1 channel endpoint(s)" in out
        # the old key alone opens it no more (it is left out of the user's endpoints)
        found = await recipients.load(pool, Sealer([old.encode()]), user_id)
        assert found is not None
        assert all(e.type != "webhook" for e in found.endpoints)

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
    with pytest.raises(KeysDoNotOpen, match="HERALD_ENCRYPTION_KEYS does not open"):
        await dispatcher(encryption_keys=[SecretStr(generate_key())])


async def test_an_endpoint_no_key_opens_is_left_out_and_everyone_else_is_served(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    d = await dispatcher()
    stranger = Sealer([generate_key().encode()])  # a key this dispatcher lacks
    async with Receiver("webhook") as receiver:
        ada, bob = await sign_up(producer, pool, name="Ada"), await sign_up(producer, pool)
        async with pool.acquire() as conn:
            await create_endpoint(conn, ada, "webhook", sealer=stranger, url=f"{receiver.url}/a")
        await add_endpoint(pool, bob, "webhook", url=f"{receiver.url}/b")
        # published together: their recipients are loaded in one batch
        await asyncio.gather(
            publish(producer, request(ada, title="For Ada")),
            publish(producer, request(bob, title="For Bob")),
        )
        await eventually(lambda: len(receiver.to("/b")) == 1, what="Bob's webhook")
        # Ada's other channels are untouched by her unreadable one
        await eventually(
            lambda: any(m["Subject"] == "For Ada" for m in outbox(d)), what="Ada's e-mail"
        )
        await until(
            pool,
            "SELECT inbox_at IS NOT NULL FROM notifications WHERE user_id = $1 AND title = $2",
            ada,
            "For Ada",
            what="Ada's in-app notification",
        )
        assert receiver.to("/a") == []
    registry = d.bus.metrics.registry
    sample = {"service": "dispatcher", "channel": "webhook"}
    assert (registry.get_sample_value("herald_endpoints_unreadable_total", sample) or 0) >= 1


async def test_a_delivery_whose_endpoint_no_key_opens_fails_for_good_and_says_why(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    await dispatcher()
    user_id = await sign_up(producer, pool)
    endpoint = await add_endpoint(pool, user_id, "webhook", url=HOOK)
    notification = Notification(
        id=uuid.uuid4(),
        user_id=user_id,
        type="note",
        title="Hello",
        body="A body",
        priority="normal",
        created_at=datetime.now(UTC),
        data={},
    )
    plan = history.Plan(
        notification=notification,
        kind="generic",
        dedup_key="s",
        sends=(history.Send(id=delivery_id(notification.id, endpoint.id), endpoint=endpoint),),
        dedup=None,
        source_event_id=str(notification.id),
        correlation_id=str(notification.id),
    )
    async with pool.acquire() as conn:
        await history.record_many(conn, [plan])
    # recorded while it opened; then sealed under a key this dispatcher lacks
    stranger = Sealer([generate_key().encode()])
    await pool.execute(
        "UPDATE channel_endpoints SET url_sealed = $2 WHERE id = $1",
        endpoint.id,
        stranger.seal(HOOK, bound_to=url_place(endpoint.id)),
    )
    await publish_due(producer, plan.due(), str(notification.id))
    await until(
        pool,
        "SELECT status = 'failed' FROM deliveries WHERE endpoint_id = $1",
        endpoint.id,
        what="the delivery failed",
    )
    row = await pool.fetchrow(
        """SELECT d.last_error, e.enabled, e.consecutive_failures FROM deliveries d
           JOIN channel_endpoints e ON e.id = d.endpoint_id WHERE d.endpoint_id = $1""",
        endpoint.id,
    )
    assert "no configured key opens the sealed url" in row["last_error"]
    assert "HERALD_ENCRYPTION_KEYS" in row["last_error"]
    assert "private-path-token" not in row["last_error"]
    # the keys are at fault, not the user's URL: the endpoint stays on
    assert row["enabled"]
    assert row["consecutive_failures"] == 0


async def test_a_test_send_to_a_channel_no_key_opens_says_so(
    gateway_factory: Callable[..., Awaitable[Gateway]],
) -> None:
    gateway = await gateway_factory()
    user = await gateway.user()
    stranger = Sealer([generate_key().encode()])  # a key this gateway lacks
    async with gateway.pool.acquire() as conn:
        endpoint = await create_endpoint(
            conn, user, "webhook", sealer=stranger, url="https://93.184.215.14/hook"
        )
    async with gateway.as_user(user) as client:
        answer = await client.post(f"/v1/me/channels/{endpoint.id}/test")
    assert answer.status_code == 409, answer.text
    assert "cannot be read with the server's keys" in answer.json()["detail"]
