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
    )
    assert pool is not None
    return pool


# What handlers receive: a pooled connection proxy or a plain one, used alike.
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
