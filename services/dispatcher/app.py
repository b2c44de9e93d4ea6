"""Wire the dispatcher: HTTP client, channels, handlers on the bus."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator

import httpx

from shared.bus import catalog
from shared.runner import Background, Runtime

from .channels import Channel
from .channels.webhook import WebhookChannel
from .handlers import (
    DispatcherDeps,
    on_notification_requested,
    on_user_deleted,
    on_user_signed_up,
)
from .url_guard import UrlGuard

HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def build_channels(http: httpx.AsyncClient, guard: UrlGuard) -> dict[str, Channel]:
    return {WebhookChannel.name: WebhookChannel(http, guard)}


@contextlib.asynccontextmanager
async def setup(runtime: Runtime) -> AsyncIterator[list[Background]]:
    async with httpx.AsyncClient(
        timeout=HTTP_TIMEOUT,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    ) as http:
        guard = UrlGuard(runtime.settings.allow_private_urls)
        deps = DispatcherDeps(runtime.pool, runtime.bus, build_channels(http, guard))
        runtime.bus.subscribe(
            catalog.DISPATCHER_USERS,
            {
                "user.signed_up": functools.partial(on_user_signed_up, deps=deps),
                "user.deleted": functools.partial(on_user_deleted, deps=deps),
            },
        )
        runtime.bus.subscribe(
            catalog.DISPATCHER_NOTIFICATIONS,
            {"notification.requested": functools.partial(on_notification_requested, deps=deps)},
        )
        yield []
