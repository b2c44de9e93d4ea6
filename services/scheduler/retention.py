"""Retention of what the scheduler owns: its settled rows, the erasure tombstones
(docs/data-ownership.md says why the scheduler is the one to drop them) and old
parked messages. Every other service keeps its own tables trimmed: the dispatcher
its notifications and cancellation marks, the matcher closes expired jobs.

Deletions run in small batches, each its own transaction, so a first run over a
large backlog never holds long locks on tables other services read.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from shared.db import delete_in_batches


async def purge_settled(pool: asyncpg.Pool, settled_before: datetime) -> int:
    """The scheduler's own history: reminders sent, skipped or cancelled, meetings
    over or cancelled, and erasure tombstones, older than the cutoff."""
    removed = await delete_in_batches(
        pool,
        """DELETE FROM scheduled_reminders WHERE reminder_id IN (
               SELECT reminder_id FROM scheduled_reminders
               WHERE status <> 'pending' AND settled_at < $1 LIMIT $2)""",
        settled_before,
    )
    removed += await delete_in_batches(
        pool,
        """DELETE FROM scheduler_meetings WHERE meeting_id IN (
               SELECT meeting_id FROM scheduler_meetings
               WHERE state IN ('completed', 'cancelled') AND ends_at < $1 LIMIT $2)""",
        settled_before,
    )
    # an erasure's tombstone only has to outlive the retries of events from before it
    # (hours); kept as long as notifications, then the user id goes too
    removed += await delete_in_batches(
        pool,
        """DELETE FROM erased_users WHERE user_id IN (
               SELECT user_id FROM erased_users WHERE erased_at < $1 LIMIT $2)""",
        settled_before,
    )
    return removed
