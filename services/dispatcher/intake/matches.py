"""Matches: ``match.found`` becomes a job-match notification, a digest item, or
both, as the user's score routes say. The job comes with the match and is kept in
the dispatcher's copy (``jobs_data``); a job closed by then is never announced."""

from __future__ import annotations

import structlog

from shared.events import Event, MatchFound

from ..content import JobItem
from ..planning import Draft
from ..policy import route_match
from . import digests_data, jobs_data
from ._base import IntakeDeps, finishes_replays, on_connection, recipient_of

log = structlog.get_logger("herald.dispatcher")


@finishes_replays
async def on_match_found(event: Event[MatchFound], deps: IntakeDeps) -> None:
    m = event.data
    async with deps.pool.acquire() as conn, conn.transaction():
        # the job is remembered whether or not this user hears about it
        job = await jobs_data.from_match(conn, m, event.time)
        recipient = await recipient_of(conn, deps, m.user_id, event.trusted_time)
        route = route_match(recipient.prefs, m.score)
        if route is None:
            deps.suppressed("job_match", "preferences")
            return
        if not job["open"]:
            deps.suppressed("job_match", "job closed or expired")
            return
        match = m.model_dump(mode="json")
        item = jobs_data.job_item(job, match)
        if route.digest:
            await digests_data.hold(conn, m, match)
            deps.metrics.notifications.labels(deps.bus.service, "job_match", "digest").inc()
        planned = None
        if route.channels is None or route.channels:
            planned = await deps.notify(
                on_connection(conn),
                Draft(
                    event=event,
                    recipient=recipient,
                    kind="job_match",
                    type="job_match",
                    dedup_key=m.job_id,
                    context={"items": [item]},
                    link=item.url,
                    data={
                        "match_id": m.match_id,
                        "job_id": m.job_id,
                        "score": m.score,
                        "reason": m.reason,
                        "fields": _job_fields(item),
                    },
                    job_id=m.job_id,
                    score=m.score,
                    repeatable=m.reason == "score_improved",
                    only=route.channels,
                ),
            )
    await deps.hand_over(planned, event.correlation_id)


def _job_fields(item: JobItem) -> dict[str, str]:
    """Name → value pairs chat channels show as fields (Discord, Teams)."""
    fields = {"Company": item.company}
    if item.location_text:
        fields["Location"] = item.location_text
    if item.salary_text:
        fields["Salary"] = item.salary_text
    if item.score_percent is not None:
        fields["Match"] = f"{item.score_percent}%"
    return fields
