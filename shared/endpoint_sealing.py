"""Keeping stored endpoints sealed: plaintext rows sealed, their plain copies cleared
after a grace period, every row resealed under the newest key on demand.

Rows written before migration 0011 (or by a gateway of that age, during a rolling
upgrade) hold their URL and secret only in plain ``url`` and ``secret``. Sealing
fills the sealed columns and stamps ``sealed_at`` but keeps the plain copy for
``HERALD_PLAINTEXT_GRACE_SECONDS``: dispatchers of the old version, still running
until the rollout ends, read only the plain columns, and would fail (then disable)
every endpoint emptied under their feet. The dispatcher's ``keep_sealed`` seals
what old gateways keep writing and clears the plain copies whose grace ran out; so
does ``prepare`` at start-up, after checking that the keys open what is stored.
Concurrent callers split the rows between them (``SKIP LOCKED``).

The hole: for the grace period a credential is readable by whoever can read the
table, as it was before sealing; 0 closes it at the cost of the upgrade guarantee.

``herald keys rotate`` calls ``reseal_all``: afterwards no row needs any key but the
first, and the others can be dropped from ``HERALD_ENCRYPTION_KEYS``.
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

from shared.endpoints import secret_place, shown_url, url_place
from shared.sealing import CannotUnseal, Sealer

log = structlog.get_logger("herald.endpoints")

BATCH = 500
# how often a dispatcher seals rows written in plain text and clears expired copies
TEND_EVERY = 60.0


async def seal_plaintext(pool: asyncpg.Pool, sealer: Sealer, *, grace: float) -> int:
    """Seal every row holding a plain URL or secret with no sealed copy; how many
    were. The plain copy stays unless ``grace`` is 0 (``clear_plaintext`` clears it
    later). Call ``check_keys`` first: this seals under whatever key it is given."""
    sealed = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT id, type, url, secret FROM channel_endpoints
                   WHERE (url IS NOT NULL OR secret IS NOT NULL)
                     AND ((url IS NOT NULL AND url_sealed IS NULL)
                          OR (secret IS NOT NULL AND secret_sealed IS NULL))
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
                       sealed_at = now(),
                       url = CASE WHEN $5 THEN url END,
                       secret = CASE WHEN $5 THEN secret END
                   WHERE id = $1""",
                [
                    (
                        r["id"],
                        sealer.seal(r["url"], bound_to=url_place(r["id"])) if r["url"] else None,
                        shown_url(r["type"], r["url"]) if r["url"] else None,
                        sealer.seal(r["secret"], bound_to=secret_place(r["id"]))
                        if r["secret"]
                        else None,
                        grace > 0,
                    )
                    for r in rows
                ],
            )
            sealed += len(rows)


async def clear_plaintext(pool: asyncpg.Pool, *, older_than: float) -> int:
    """Clear the plain copies of credentials sealed at least ``older_than`` seconds
    ago; how many rows were cleared. A row whose sealed copy is missing keeps its
    plain one (``seal_plaintext`` seals it first)."""
    cleared = 0
    while True:
        done = await pool.execute(
            """WITH due AS (
                   SELECT id FROM channel_endpoints
                   WHERE (url IS NOT NULL OR secret IS NOT NULL)
                     AND (url IS NULL OR url_sealed IS NOT NULL)
                     AND (secret IS NULL OR secret_sealed IS NOT NULL)
                     AND COALESCE(sealed_at, '-infinity')
                         <= now() - make_interval(secs => $1::float8)
                   LIMIT $2 FOR UPDATE SKIP LOCKED)
               UPDATE channel_endpoints e SET url = NULL, secret = NULL
               FROM due WHERE e.id = due.id""",
            older_than,
            BATCH,
        )
        count = int(done.rpartition(" ")[2])
        cleared += count
        if count < BATCH:
            return cleared


async def tend(pool: asyncpg.Pool, sealer: Sealer, *, grace: float) -> tuple[int, int]:
    """One pass: seal plaintext rows, clear expired plain copies; how many of each."""
    sealed = await seal_plaintext(pool, sealer, grace=grace)
    cleared = await clear_plaintext(pool, older_than=grace)
    if sealed or cleared:
        log.info("endpoints_sealed", rows=sealed, plaintext_cleared=cleared)
    return sealed, cleared


async def keep_sealed(
    pool: asyncpg.Pool, sealer: Sealer, *, grace: float, every: float = TEND_EVERY
) -> None:
    """``tend`` every ``every`` seconds until cancelled; an outage waits for the next
    round."""
    while True:
        await asyncio.sleep(every)
        try:
            await tend(pool, sealer, grace=grace)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("endpoint_sealing_failed", error=str(exc))
        except Exception:  # a bug must not stop sealing for good
            log.exception("endpoint_sealing_crashed")


async def reseal_all(pool: asyncpg.Pool, sealer: Sealer, *, grace: float) -> int:
    """Check the keys, seal plaintext rows, then reseal every sealed value under the
    first key; how many rows were resealed. ``CannotUnseal`` if some value opens
    with no key given (nothing of that batch is changed)."""
    await check_keys(pool, sealer)
    await seal_plaintext(pool, sealer, grace=grace)
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


class KeysDoNotOpen(CannotUnseal):
    """The configured keys do not open what is stored: sealing under them would
    leave rows that no other process can read."""


async def check_keys(pool: asyncpg.Pool, sealer: Sealer) -> None:
    """``KeysDoNotOpen`` when the keys do not open the newest and the oldest sealed
    rows: every send to those webhooks would fail, and anything sealed now would be
    under a key the rest of the deployment may lack. Better said at start-up (or
    before a command seals) than one delivery at a time."""
    rows = await pool.fetch(
        """(SELECT id, url_sealed, secret_sealed FROM channel_endpoints
            WHERE url_sealed IS NOT NULL OR secret_sealed IS NOT NULL
            ORDER BY created_at DESC LIMIT 1)
           UNION
           (SELECT id, url_sealed, secret_sealed FROM channel_endpoints
            WHERE url_sealed IS NOT NULL OR secret_sealed IS NOT NULL
            ORDER BY created_at LIMIT 1)"""
    )
    try:
        for row in rows:
            if row["url_sealed"]:
                sealer.unseal(row["url_sealed"], bound_to=url_place(row["id"]))
            if row["secret_sealed"]:
                sealer.unseal(row["secret_sealed"], bound_to=secret_place(row["id"]))
    except CannotUnseal as exc:
        raise KeysDoNotOpen(
            "HERALD_ENCRYPTION_KEYS does not open the stored channel endpoints: "
            "add back the key they were sealed with (after the first)"
        ) from exc


async def prepare(pool: asyncpg.Pool, sealer: Sealer, *, grace: float) -> None:
    """Start-up of a service that reads or writes endpoints: check the keys before
    sealing anything under them, then one ``tend`` pass."""
    await check_keys(pool, sealer)
    await tend(pool, sealer, grace=grace)
