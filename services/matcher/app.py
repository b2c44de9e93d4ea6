"""Wire the matcher: the embedding model, the vector index, the skill vocabulary,
and its handlers on the bus."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from shared.bus import catalog
from shared.runner import Background, Runtime

from . import handlers as h
from . import model_files
from .embedding import Embedder
from .index import open_index
from .metrics import MatcherMetrics
from .searching import ensure_collections
from .skills import SkillExtractor

log = structlog.get_logger("herald.matcher")


@functools.cache
def embedder(model_dir: Path, threads: int | None = None) -> Embedder:
    """One model per process, whoever asks (it is large and read-only)."""
    return Embedder(model_dir, threads=threads)


@functools.cache
def skill_extractor() -> SkillExtractor:
    return SkillExtractor()


@contextlib.asynccontextmanager
async def matcher_deps(runtime: Runtime) -> AsyncIterator[h.MatcherDeps]:
    settings = runtime.settings
    index = open_index(settings)
    try:
        await ensure_collections(index)
        yield h.MatcherDeps(
            runtime.pool,
            runtime.bus,
            settings,
            embedder(model_files.model_dir(settings), settings.embedding_threads),
            index,
            skill_extractor(),
            MatcherMetrics.on(runtime.metrics),
        )
    finally:
        await index.close()


def subscribe(runtime: Runtime, deps: h.MatcherDeps) -> None:
    bus = runtime.bus
    job = functools.partial(h.on_job_posted, deps=deps)
    bus.subscribe(
        catalog.MATCHER_JOBS,
        {
            "job.posted": job,
            "job.updated": job,
            "job.closed": functools.partial(h.on_job_closed, deps=deps),
        },
    )
    bus.subscribe(
        catalog.MATCHER_SEEKERS,
        {
            "resume.upserted": functools.partial(h.on_resume_upserted, deps=deps),
            "resume.deleted": functools.partial(h.on_resume_deleted, deps=deps),
            "alert.saved": functools.partial(h.on_alert_saved, deps=deps),
            "alert.deleted": functools.partial(h.on_alert_deleted, deps=deps),
            "user.deleted": functools.partial(h.on_user_deleted, deps=deps),
        },
    )
    tick = functools.partial(h.on_tick, deps=deps)
    bus.subscribe(
        catalog.MATCHER_TICKS, {"tick.hourly": tick, "tick.daily": tick, "tick.weekly": tick}
    )


@contextlib.asynccontextmanager
async def setup(runtime: Runtime) -> AsyncIterator[list[Background]]:
    async with matcher_deps(runtime) as deps:
        subscribe(runtime, deps)
        log.info("matcher_ready", index=type(deps.index).__name__)
        yield []
