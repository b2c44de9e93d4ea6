"""Digests: ``digest.due`` gathers the matches held for the user, leaves out jobs
closed or expired since (judged now, from the dispatcher's copy of the jobs) and
jobs already read in-app, ranks them and sends one e-mail (and inbox entry) with
the counts of the window."""

from __future__ import annotations

import json

from shared.events import DigestDue, Event

from ..planning import Draft
from ..policy import EMAIL, INAPP
from ..ranking import rank_digest
from . import digests_data, jobs_data
from ._base import IntakeDeps, finishes_replays, on_connection, recipient_of

DIGEST_SIZE = 10


@finishes_replays
async def on_digest_due(event: Event[DigestDue], deps: IntakeDeps) -> None:
    d = event.data
    async with deps.pool.acquire() as conn, conn.transaction():
        recipient = await recipient_of(conn, deps, d.user_id, event.trusted_time)
        if not recipient.prefs.wants("digest") or recipient.prefs.digest_frequency == "off":
            deps.suppressed("digest", "preferences")
            return
        rows = await digests_data.held(conn, d.user_id, d.window_end)
        # freshness at send time: a job closed or expired since it matched is left out
        items = rank_digest(
            [jobs_data.job_item(r, json.loads(r["data"])) for r in rows if r["open"]],
            read_job_ids=await digests_data.read_job_ids(conn, d.user_id),
            limit=DIGEST_SIZE,
        )
        counts = await digests_data.window_counts(conn, d.user_id, d.window_start, d.window_end)
        await digests_data.mark_digested(conn, d.user_id, d.window_end)
        if not items and not counts["matches"] and not counts["applications"]:
            deps.suppressed("digest", "nothing new")
            return
        planned = await deps.notify(
            on_connection(conn),
            Draft(
                event=event,
                recipient=recipient,
                kind="digest",
                type="digest",
                dedup_key=f"{d.frequency}:{d.window_start.isoformat()}",
                context={
                    "frequency": d.frequency,
                    "new_jobs": counts["jobs"],
                    "new_matches": counts["matches"],
                    "application_updates": counts["applications"],
                    "items": items,
                },
                data={"job_ids": [i.job_id for i in items], "frequency": d.frequency},
                only=(EMAIL, INAPP),
            ),
        )
    await deps.hand_over(planned, event.correlation_id)
