"""Jobs: the dispatcher's copy of the jobs it words and judges, kept fresh by the
job events on its own queue (``jobs_data`` says what each one changes)."""

from __future__ import annotations

from shared.events import Event, JobClosed, JobExpired, JobPosted, JobUpdated

from . import jobs_data
from ._base import IntakeDeps


async def on_job_posted(event: Event[JobPosted] | Event[JobUpdated], deps: IntakeDeps) -> None:
    await jobs_data.remember_posted(deps.pool, event.data, event.time)


async def on_job_closed(event: Event[JobClosed], deps: IntakeDeps) -> None:
    await jobs_data.close(deps.pool, event.data.job_id, event.time)


async def on_job_expired(event: Event[JobExpired], deps: IntakeDeps) -> None:
    await jobs_data.close(deps.pool, event.data.job_id, event.data.expires_at)
