"""Deleting old rows a batch at a time."""

from __future__ import annotations

from datetime import datetime

import asyncpg

BATCH = 1000


async def delete_in_batches(
    pool: asyncpg.Pool, statement: str, cutoff: datetime, batch: int = BATCH
) -> int:
    """Run ``statement`` (``$1`` the cutoff, ``$2`` the batch size) until it removes
    fewer than a batch; how many rows it removed. Each batch is its own transaction,
    so a first run over a large backlog never holds long locks on a busy table."""
    removed = 0
    while True:
        status = await pool.execute(statement, cutoff, batch)
        count = int(status.split()[-1])
        removed += count
        if count < batch:
            return removed
