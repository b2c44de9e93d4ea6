"""Request rate limits held in PostgreSQL, so every gateway replica counts together.

Each (caller, route) pair is a generic cell rate algorithm bucket in the
``rate_limits`` table, taken with the dispatcher's ``herald_reserve()`` function in
one round trip: ``per_minute`` requests spread over a minute, all of them allowed
at once as a burst. A request over the limit takes no slot and learns how long to
wait (``Retry-After``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from shared.settings import Settings

KEY_PREFIX = "gw:"


class Policy(StrEnum):
    DEFAULT = "default"
    # sends, erasure, replays, channel changes, public token links
    SENSITIVE = "sensitive"
    INGEST = "ingest"


def per_minute(settings: Settings, policy: Policy) -> int:
    return {
        Policy.DEFAULT: settings.gateway_rate_per_minute,
        Policy.SENSITIVE: settings.gateway_sensitive_rate_per_minute,
        Policy.INGEST: settings.gateway_ingest_rate_per_minute,
    }[policy]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # whole seconds, at least 1 when refused


def bucket_key(caller: str, route: str) -> str:
    return f"{KEY_PREFIX}{caller}:{route}"


async def take(pool: asyncpg.Pool, key: str, limit: int) -> Verdict:
    interval = 60.0 / limit
    row = await pool.fetchrow(
        "SELECT granted, wait FROM herald_reserve($1::text[], $2::float8[], $3::float8[], $4::float8[])",
        [key],
        [interval],
        [60.0],  # a whole minute's worth may come at once
        [0.0],  # never wait in line: answer 429 instead
    )
    assert row is not None
    if row["granted"]:
        return Verdict(True, 0)
    return Verdict(False, max(1, math.ceil(row["wait"])))


async def forget_idle(pool: asyncpg.Pool) -> None:
    """Drop buckets that are full again (their slot time has passed): a bucket at
    rest holds no information, and callers come and go."""
    await pool.execute(
        "DELETE FROM rate_limits WHERE key LIKE $1 AND tat < now() - interval '1 minute'",
        KEY_PREFIX + "%",
    )
