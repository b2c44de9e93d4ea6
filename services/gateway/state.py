"""What the gateway's lifespan opens and its routes use."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from shared.bus import Bus
from shared.metrics import ServiceMetrics
from shared.sealing import Sealer
from shared.settings import Settings
from shared.url_guard import UrlGuard

from .auth import TokenVerifier
from .live import LiveHub
from .metrics import QueueDepths


@dataclass(frozen=True)
class GatewayState:
    settings: Settings
    pool: asyncpg.Pool
    bus: Bus
    metrics: ServiceMetrics
    tokens: TokenVerifier
    # users' URLs (webhooks, chat webhooks) must reach public addresses only
    url_guard: UrlGuard
    # this replica's open live streams, fed from the bus
    hub: LiveHub
    # the work queues' depths, read from the broker for each scrape of /metrics
    queue_depths: QueueDepths
    # seals the URLs and secrets of the channels users add
    sealer: Sealer
