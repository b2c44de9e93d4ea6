"""Run a worker service: open its resources, serve health and metrics, stop gracefully.

A service hands ``run_worker`` a ``setup`` async context manager that opens what
its handlers need, subscribes them to the bus and yields background coroutines (a
ticker, say). On SIGTERM or SIGINT the runner stops background work, drains
in-flight messages, stops the health server, and only then leaves ``setup`` (so
clients stay open for the drain) and closes the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.bus import Bus, UntestedLibrary, check_versions
from shared.db import connect_pool, ensure_database, migrate
from shared.logging import configure_logging
from shared.metrics import ServiceMetrics
from shared.settings import InvalidSettings, Settings, load_settings

log = structlog.get_logger("herald.runner")

Background = Coroutine[Any, Any, None]


@dataclass
class Runtime:
    name: str
    settings: Settings
    metrics: ServiceMetrics
    bus: Bus
    pool: asyncpg.Pool


def make_bus(settings: Settings, service: str, metrics: ServiceMetrics) -> Bus:
    return Bus(
        amqp_url=settings.amqp_url.get_secret_value(),
        namespace=settings.namespace,
        service=service,
        metrics=metrics,
        retry_delays=settings.retry_delays,
        prefetch=settings.prefetch,
        publish_timeout=settings.publish_timeout,
        event_time_allowance=settings.event_time_allowance_seconds,
    )


async def open_database(settings: Settings, stop: asyncio.Event | None = None) -> asyncpg.Pool:
    """Create, migrate and pool the database, waiting for it if it is not up yet."""
    dsn = settings.database_url.get_secret_value()
    delay = 0.5
    while True:
        try:
            await ensure_database(dsn)
            await migrate(dsn)
            return await connect_pool(dsn, max_size=settings.db_pool_max)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if stop is not None and stop.is_set():
                raise
            log.warning("database_unavailable", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)


async def database_ok(pool: asyncpg.Pool) -> bool:
    try:
        async with asyncio.timeout(2):
            await pool.fetchval("SELECT 1")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    return True


async def readiness(bus: Bus, pool: asyncpg.Pool) -> Response:
    """``/readyz``: 200 when the bus is connected and the database answers, else 503."""
    checks = {"bus": bus.connected, "database": await database_ok(pool)}
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


def health_app(runtime: Runtime) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "service": runtime.name})

    async def readyz(_: Request) -> Response:
        return await readiness(runtime.bus, runtime.pool)

    async def metrics(_: Request) -> Response:
        body, content_type = runtime.metrics.exposition()
        return Response(body, media_type=content_type)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ]
    )


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the caller owns the signals (uvicorn's
    would re-raise SIGTERM after a graceful stop and turn a clean exit into a kill)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def start_serving(server: uvicorn.Server, what: str) -> asyncio.Task[None]:
    """``server.serve()`` as a task, returned once it listens.

    uvicorn reports a failed bind by exiting; a service nobody can probe or scrape
    must not pretend to run, so that is a ``RuntimeError`` naming ``what``.
    """
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            raise RuntimeError(f"cannot serve {what}")
        await asyncio.sleep(0.02)
    return serving


# Collect the youngest generation after this many net allocations instead of 700.
# Handlers' objects die by reference counting, not cycles: at 700 the dispatcher ran
# 2,700 young collections in one benchmark run (1.0 s of its CPU), at 10,000 it ran 23
# (72 ms) with the same RSS.
YOUNG_GENERATION_THRESHOLD = 10_000


def tune_garbage_collection() -> None:
    """Keep what start-up built out of every later garbage collection, and collect
    the young generation less often.

    Imports, templates, models and clients are tens of thousands of tracked objects
    (150,000 in the matcher, with its model and skill gazetteer) that live as long as
    the process. A full collection walks them all, and handlers allocate enough to
    set one off every few seconds under load: a median of 43 ms (up to 73) with the
    event loop stopped in the dispatcher, about 95 ms in the matcher, each landing
    on whatever messages were in flight. Frozen, they are never walked again (the
    dispatcher's full collections: 4 ms); what handlers allocate is still collected.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)


async def run_worker(
    name: str,
    settings: Settings,
    setup: Callable[[Runtime], contextlib.AbstractAsyncContextManager[Iterable[Background]]],
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    metrics = ServiceMetrics(name)
    pool = await open_database(settings, stop)
    bus = make_bus(settings, name, metrics)
    runtime = Runtime(name, settings, metrics, bus, pool)
    try:
        async with setup(runtime) as background_work:
            tune_garbage_collection()
            await _serve(runtime, stop, background_work)
    finally:
        await pool.close()
    log.info("service_stopped")


async def _serve(
    runtime: Runtime, stop: asyncio.Event, background_work: Iterable[Background]
) -> None:
    settings, bus, name = runtime.settings, runtime.bus, runtime.name
    server = EmbeddedServer(
        uvicorn.Config(
            health_app(runtime),
            host=settings.metrics_host,
            port=settings.metrics_port(name),
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    serving = await start_serving(
        server,
        f"health and metrics on {settings.metrics_host}:{settings.metrics_port(name)}",
    )
    background = [asyncio.create_task(coro) for coro in background_work]
    await bus.start()
    log.info("service_started", metrics_port=settings.metrics_port(name))

    await stop.wait()
    log.info("service_stopping", drain_timeout=settings.drain_timeout)
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    await bus.stop(settings.drain_timeout)
    server.should_exit = True
    await serving


def main(
    name: str,
    setup: Callable[[Runtime], contextlib.AbstractAsyncContextManager[Iterable[Background]]],
) -> None:
    """Entry point of a worker: ``python -m services.<name>``."""
    settings = start(name)
    asyncio.run(run_worker(name, settings, setup))
    ignore_late_signals()


def start(name: str) -> Settings:
    try:
        settings = load_settings()
        check_versions()
    except (InvalidSettings, UntestedLibrary) as exc:
        # before logging is configured, and a traceback would bury the reason
        raise SystemExit(f"herald {name}: {exc}") from None
    configure_logging(name, settings.log_level)
    if settings.uses_dev_secret:
        log.warning(
            "dev_secret_in_use",
            hint="set HERALD_SECRET_KEY in production",
            path=str(settings.dev_secret_path),
        )
    elif not settings.encryption_keys:
        # derived keys work, but tie the sealed endpoints to the secret key: changing
        # it would leave them unreadable
        log.warning(
            "encryption_keys_derived",
            hint="set HERALD_ENCRYPTION_KEYS (see `herald keys generate`)",
        )
    return settings


def ignore_late_signals() -> None:
    """After the loop closed its handlers are gone; a process manager's second signal
    (honcho sends SIGTERM after the terminal's SIGINT) must not turn a clean exit
    into a kill."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
