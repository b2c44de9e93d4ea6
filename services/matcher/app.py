"""Wire the matcher's handlers to the bus."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator

from shared.bus import catalog
from shared.runner import Background, Runtime

from .handlers import MatcherDeps, on_job_closed, on_job_posted


@contextlib.asynccontextmanager
async def setup(runtime: Runtime) -> AsyncIterator[list[Background]]:
    deps = MatcherDeps(runtime.pool)
    store = functools.partial(on_job_posted, deps=deps)
    runtime.bus.subscribe(
        catalog.MATCHER_JOBS,
        {
            "job.posted": store,
            "job.updated": store,
            "job.closed": functools.partial(on_job_closed, deps=deps),
        },
    )
    yield []
