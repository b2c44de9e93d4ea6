"""PostgreSQL on asyncpg: database creation, ordered migrations, pool, idempotency."""

from ._batches import delete_in_batches
from ._database import Connection, connect_pool, ensure_database
from ._migrations import Migration, applied_versions, load_migrations, migrate
from ._processed import first_time

__all__ = [
    "Connection",
    "Migration",
    "applied_versions",
    "connect_pool",
    "delete_in_batches",
    "ensure_database",
    "first_time",
    "load_migrations",
    "migrate",
]
