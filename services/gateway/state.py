"""What the gateway's lifespan opens and its routes use."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from shared.bus import Bus
from shared.metrics import ServiceMetrics
from shared.settings import Settings


@dataclass(frozen=True)
class GatewayState:
    settings: Settings
    pool: asyncpg.Pool
    bus: Bus
    metrics: ServiceMetrics
