"""The gateway served by uvicorn on free ports (its API and its metrics), in-process,
against the test's broker namespace and database; and the credentials its callers
hold.

Test modules import the fixtures they use from here (``from tests.integration.gateway
import gateway``), so the shared conftest stays as it is.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from services.dispatcher.recipients import record_user
from services.gateway.app import create_app
from services.gateway.serving import api_server, metrics_server
from shared.apikeys import create_api_key
from shared.runner import EmbeddedServer, start_serving
from shared.settings import Settings
from tests.conftest import TELEGRAM_WEBHOOK_SECRET, delete_topology
from tests.support import free_ports

# high enough that only the tests about rate limits ever meet one
GENEROUS = {
    "gateway_rate_per_minute": 100_000,
    "gateway_sensitive_rate_per_minute": 100_000,
    "gateway_ingest_rate_per_minute": 100_000,
}


@dataclass
class Gateway:
    url: str
    # where Prometheus scrapes it: /metrics is not on the API's port
    metrics_url: str
    settings: Settings
    pool: asyncpg.Pool
    app: Any

    def token(self, user_id: str, *, ttl: float = 300, **claims: Any) -> str:
        """A user's bearer JWT, HS256 with the deployment's secret (the default)."""
        assert self.settings.secret_key is not None
        payload = {"sub": user_id, "exp": int(time.time() + ttl), **claims}
        return jwt.encode(payload, self.settings.secret_key.get_secret_value(), "HS256")

    def as_user(self, user_id: str) -> httpx.AsyncClient:
        return self.client({"Authorization": f"Bearer {self.token(user_id)}"})

    async def api_key(self, *scopes: str) -> str:
        async with self.pool.acquire() as conn:
            _, key = await create_api_key(conn, "tests", list(scopes))
        return key

    async def as_key(self, *scopes: str) -> httpx.AsyncClient:
        return self.client({"X-API-Key": await self.api_key(*scopes)})

    def client(self, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=headers or {}, timeout=20)

    async def telegram_update(self, update: dict[str, Any], *, secret: str | None = None) -> Any:
        """Post one bot update to the webhook as Telegram does (with its secret token)."""
        token = TELEGRAM_WEBHOOK_SECRET if secret is None else secret
        async with self.client({"X-Telegram-Bot-Api-Secret-Token": token}) as client:
            return await client.post("/v1/telegram/webhook", json=update)

    async def link_telegram(self, client: httpx.AsyncClient, chat_id: int) -> dict[str, Any]:
        """Add a Telegram channel the way a user does: ask for it, then open its link
        in the chat ``chat_id`` (Telegram sends the bot ``/start <code>``). The channel
        as listed afterwards."""
        created = await client.post("/v1/me/channels", json={"type": "telegram"})
        assert created.status_code == 201, created.text
        link = created.json()["link"]
        prefix = f"https://t.me/{self.settings.telegram_bot_username}?start="
        assert link.startswith(prefix), link
        answer = await self.telegram_update(start_update(chat_id, link.removeprefix(prefix)))
        assert answer.status_code == 200, answer.text
        listed = (await client.get("/v1/me/channels")).json()
        (channel,) = [c for c in listed if c["id"] == created.json()["id"]]
        return dict(channel)

    async def scrape(self) -> str:
        async with httpx.AsyncClient(timeout=20) as client:
            response = await client.get(f"{self.metrics_url}/metrics")
        assert response.status_code == 200, response.text
        return response.text

    async def user(self, user_id: str | None = None, *, email: str | None = None) -> str:
        """A user Herald knows (as ``user.signed_up`` leaves them); their id."""
        user_id = user_id or f"u-{uuid.uuid4().hex[:10]}"
        async with self.pool.acquire() as conn:
            await record_user(conn, user_id, email or f"{user_id}@example.com", "Ada", "UTC", "en")
        return user_id


def start_update(chat_id: int, code: str, *, chat_type: str = "private") -> dict[str, Any]:
    """The update Telegram posts when a user opens ``t.me/<bot>?start=<code>``."""
    return {
        "update_id": abs(chat_id) % 1_000_000,
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type},
            "from": {"id": abs(chat_id), "is_bot": False, "first_name": "Ada"},
            "text": f"/start {code}",
        },
    }


@pytest.fixture
async def gateway_factory(
    settings: Settings, pool: asyncpg.Pool
) -> AsyncIterator[Callable[..., Awaitable[Gateway]]]:
    """Start gateways (each a replica on its own ports, served as ``python -m
    services.gateway`` serves them); all stopped at the end."""
    started: list[tuple[EmbeddedServer, asyncio.Task[None], Any]] = []

    async def start(**overrides: Any) -> Gateway:
        api_port, metrics_port = free_ports(2)
        s = settings.model_copy(
            update={
                **GENEROUS,
                "gateway_host": "127.0.0.1",
                "gateway_port": api_port,
                "metrics_host": "127.0.0.1",
                "gateway_metrics_port": metrics_port,
                **overrides,
            }
        )
        app = create_app(s)
        # the API first: it is stopped first, as in production
        for server in (api_server(s, app), metrics_server(s, app)):
            started.append((server, await start_serving(server, "the gateway"), app))
        await app.state.herald.bus.start(wait=10)
        return Gateway(
            f"http://127.0.0.1:{s.gateway_port}",
            f"http://127.0.0.1:{s.gateway_metrics_port}",
            s,
            pool,
            app,
        )

    try:
        yield start
    finally:
        queues: list[str] = []
        for server, task, app in started:
            if server.config.lifespan != "off":  # the API's: it holds the bus
                queues += app.state.herald.bus.queues
            server.should_exit = True
            await asyncio.wait_for(task, 30)
        await delete_topology(settings.namespace, queues)


@pytest.fixture
async def gateway(gateway_factory: Callable[..., Awaitable[Gateway]]) -> Gateway:
    return await gateway_factory()
