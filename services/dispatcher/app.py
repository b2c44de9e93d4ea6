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
from .safe_http import guarded_client


def build_channels(http: httpx.AsyncClient) -> dict[str, Channel]:
    return {WebhookChannel.name: WebhookChannel(http)}


@contextlib.asynccontextmanager
async def setup(runtime: Runtime) -> AsyncIterator[list[Background]]:
    settings = runtime.settings
    async with guarded_client(settings.allow_private_urls, timeout=settings.http_timeout) as http:
        deps = DispatcherDeps(runtime.pool, runtime.bus, build_channels(http))
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
