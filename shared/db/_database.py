"""Create the database if it is missing, then open a pool on it."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

log = structlog.get_logger("herald.db")


def _split(dsn: str) -> tuple[str, str]:
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/") or "postgres"
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    return name, maintenance


async def ensure_database(dsn: str) -> bool:
    """Create the database named in ``dsn`` if it does not exist; True if created."""
    name, maintenance = _split(dsn)
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    conn = await asyncpg.connect(maintenance)
    try:
        # Identifiers cannot be bound as parameters; quote_ident does it properly.
        quoted = await conn.fetchval("SELECT quote_ident($1)", name)
        await conn.execute(f"CREATE DATABASE {quoted}")
    except asyncpg.DuplicateDatabaseError:
        return False  # another service won the race
    finally:
        await conn.close()
    log.info("database_created", database=name)
    return True


async def _plan_every_execution(conn: asyncpg.Connection) -> None:
    """asyncpg prepares every statement, and PostgreSQL then keeps a generic plan
    for it, made once, from the statistics of the day. Herald's batch statements
    join arrays of unknown length to tables that start empty and grow by the
    million: a plan cached while ``deliveries`` was small scans it whole (hash
    joins over sequential scans, a third of PostgreSQL's CPU in bench/dispatch.py
    once 60,000 deliveries were recorded, growing with the table), and only an
    ANALYZE would replace it. Planned at each execution, with the batch's real
    sizes, the same statements use the indexes: PostgreSQL's CPU per delivery
    0.35 → 0.29 ms and event-to-delivery p50 at 200/s 10 → 7 ms in the same
    stretch. A ``SET`` rather than a startup parameter, which PgBouncer refuses."""
    await conn.execute("SET plan_cache_mode = force_custom_plan")


async def _rollback_stray_transaction(conn: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool. asyncpg's default
    reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) costs a round trip on
    every release, and Herald's pooled connections use none of those; the
    migrations' advisory lock lives on a connection of its own."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def connect_pool(dsn: str, *, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        reset=_rollback_stray_transaction,
        # Broken connections after a database restart are replaced on the next
        # acquire; a bounded lifetime keeps them from going stale behind a proxy.
        max_inactive_connection_lifetime=300,
        command_timeout=30,
        init=_plan_every_execution,
    )
    assert pool is not None
    return pool


# What handlers receive: a pooled connection proxy or a plain one, used alike.
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
