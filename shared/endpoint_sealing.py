"""Keeping stored endpoints sealed: plaintext rows sealed at start-up, every row
resealed under the newest key on demand.

Rows written before migration 0011 hold their URL and secret in plain ``url`` and
``secret``; the gateway and the dispatcher call ``prepare`` before they serve (as
does ``herald migrate``), which seals them and clears the plain columns. Concurrent
callers split the rows between them (``SKIP LOCKED``). ``herald keys rotate`` calls
``reseal_all``: afterwards no row needs any key but the first, and the others can be
dropped from ``HERALD_ENCRYPTION_KEYS``.
"""

from __future__ import annotations

import asyncpg
import structlog

from shared.endpoints import secret_place, shown_url, url_place
from shared.sealing import CannotUnseal, Sealer

log = structlog.get_logger("herald.endpoints")

BATCH = 500


async def seal_plaintext(pool: asyncpg.Pool, sealer: Sealer) -> int:
    """Seal every row that still holds a plain URL or secret; how many were."""
    sealed = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT id, type, url, secret FROM channel_endpoints
                   WHERE url IS NOT NULL OR secret IS NOT NULL
                   LIMIT $1 FOR UPDATE SKIP LOCKED""",
                BATCH,
            )
            if not rows:
                return sealed
            await conn.executemany(
                """UPDATE channel_endpoints
                   SET url_sealed = COALESCE($2, url_sealed),
                       url_shown = COALESCE($3, url_shown),
                       secret_sealed = COALESCE($4, secret_sealed),
                       url = NULL, secret = NULL
                   WHERE id = $1""",
                [
                    (
                        r["id"],
                        sealer.seal(r["url"], bound_to=url_place(r["id"])) if r["url"] else None,
                        shown_url(r["type"], r["url"]) if r["url"] else None,
                        sealer.seal(r["secret"], bound_to=secret_place(r["id"]))
                        if r["secret"]
                        else None,
                    )
                    for r in rows
                ],
            )
            sealed += len(rows)


async def reseal_all(pool: asyncpg.Pool, sealer: Sealer) -> int:
    """Seal plaintext rows, then reseal every sealed value under the first key; how
    many rows were resealed. ``CannotUnseal`` if some value opens with no key given
    (nothing of that batch is changed)."""
    await seal_plaintext(pool, sealer)
    resealed = 0
    after = None
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT id, url_sealed, secret_sealed FROM channel_endpoints
                   WHERE (url_sealed IS NOT NULL OR secret_sealed IS NOT NULL)
                     AND ($1::uuid IS NULL OR id > $1)
                   ORDER BY id LIMIT $2 FOR UPDATE""",
                after,
                BATCH,
            )
            if not rows:
                return resealed
            await conn.executemany(
                """UPDATE channel_endpoints SET url_sealed = $2, secret_sealed = $3
                   WHERE id = $1""",
                [
                    (
                        r["id"],
                        sealer.reseal(r["url_sealed"]) if r["url_sealed"] else None,
                        sealer.reseal(r["secret_sealed"]) if r["secret_sealed"] else None,
                    )
                    for r in rows
                ],
            )
            resealed += len(rows)
            after = rows[-1]["id"]


async def check_keys(pool: asyncpg.Pool, sealer: Sealer) -> None:
    """Refuse to start when the keys do not open the newest sealed row: every send
    to a webhook would fail, and better at start-up than one delivery at a time."""
    row = await pool.fetchrow(
        """SELECT id, url_sealed, secret_sealed FROM channel_endpoints
           WHERE url_sealed IS NOT NULL OR secret_sealed IS NOT NULL
           ORDER BY created_at DESC LIMIT 1"""
    )
    if row is None:
        return
    try:
        if row["url_sealed"]:
            sealer.unseal(row["url_sealed"], bound_to=url_place(row["id"]))
        if row["secret_sealed"]:
            sealer.unseal(row["secret_sealed"], bound_to=secret_place(row["id"]))
    except CannotUnseal as exc:
        raise RuntimeError(
            "HERALD_ENCRYPTION_KEYS does not open the stored channel endpoints: "
            "add back the key they were sealed with (after the new one)"
        ) from exc


async def prepare(pool: asyncpg.Pool, sealer: Sealer) -> None:
    """Start-up of a service that reads or writes endpoints."""
    sealed = await seal_plaintext(pool, sealer)
    if sealed:
        log.info("endpoints_sealed", rows=sealed)
    await check_keys(pool, sealer)
