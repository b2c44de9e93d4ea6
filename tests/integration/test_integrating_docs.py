"""docs/integrating.md's AMQP and HTTP snippets, run as written against the real
broker and a real gateway (only the addresses are swapped for the test's own)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from shared.bus import Bus, catalog, exchange_name, list_parked
from shared.events import Event, NotificationDelivered, NotificationFailed, new_event
from shared.settings import Settings
from tests.conftest import AMQP_URL
from tests.docs import ROOT, snippet
from tests.integration.gateway import Gateway, gateway, gateway_factory
from tests.support import eventually

__all__ = ["gateway", "gateway_factory"]

DOC_AMQP = "amqp://guest:guest@localhost:5672/"


def amqp(name: str, settings: Settings, **more: str) -> str:
    return snippet(
        name, **{DOC_AMQP: AMQP_URL, "herald.events": exchange_name(settings.namespace)}, **more
    )


@pytest.fixture
async def jobs_queue(bus_factory: Callable[..., Bus]) -> list[Event[Any]]:
    """The matcher's job queue, with a handler that keeps what it is given."""
    handled: list[Event[Any]] = []

    async def keep(event: Event[Any]) -> None:
        handled.append(event)

    bus = bus_factory("matcher")
    bus.subscribe(catalog.MATCHER_JOBS, dict.fromkeys(catalog.MATCHER_JOBS.bindings, keep))
    await bus.start(wait=10)
    return handled


async def run_python(code: str, tmp_path: Path) -> str:
    script = tmp_path / "snippet.py"
    script.write_text(code)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_amqp_publish_snippet_reaches_herald(
    settings: Settings, jobs_queue: list[Event[Any]], tmp_path: Path
) -> None:
    code = amqp("amqp-publish", settings) + "\n\n" + snippet("amqp-publish-call")
    await run_python(code, tmp_path)
    await eventually(lambda: len(jobs_queue) == 1, what="job.posted handled")
    assert jobs_queue[0].type == "job.posted"
    assert jobs_queue[0].data.job_id == "job-4711"


async def test_an_invalid_event_published_so_is_parked_with_its_reason(
    settings: Settings, bus_factory: Callable[..., Bus], jobs_queue: list[Event[Any]]
) -> None:
    scope: dict[str, Any] = {}
    exec(amqp("amqp-publish", settings), scope)
    event = {
        "specversion": "1.0",
        "id": "evt-no-title",
        "source": "https://jobs.example.org/backend",
        "type": "job.posted",
        "data": {"job_id": "job-1"},
    }
    await scope["publish"](event)
    parked_queue = catalog.MATCHER_JOBS.names(settings.namespace).parked
    connection = await aio_pika.connect(AMQP_URL)
    try:

        async def parked() -> list[Any]:
            return await list_parked(connection, [parked_queue])

        await eventually(parked, what="the invalid event parked")
        (message,) = await parked()
    finally:
        await connection.close()
    assert (message.event_id, message.reason) == ("evt-no-title", "invalid")
    assert "data.title: Field required" in message.error
    assert jobs_queue == []


async def test_amqp_consume_snippet_hears_deliveries_and_failures(
    settings: Settings, bus_factory: Callable[..., Bus], tmp_path: Path
) -> None:
    queue = f"{settings.namespace}.crm-outcomes"
    script = tmp_path / "consume.py"
    script.write_text(amqp("amqp-consume", settings, **{"crm.herald-outcomes": queue}))
    bus = bus_factory("dispatcher")
    await bus.start(wait=10)
    process = await asyncio.create_subprocess_exec(  # -u: each line as it is printed
        sys.executable, "-u", str(script), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        delivered = NotificationDelivered(
            notification_id="n-1", user_id="u-amara", channel="email", attempts=1
        )
        line = b""
        while not line:  # until the snippet's queue is bound, events pass it by
            await bus.publish(new_event(delivered, source="herald/dispatcher"))
            try:
                line = await asyncio.wait_for(process.stdout.readline(), 0.5)
            except TimeoutError:
                assert process.returncode is None, "the consumer exited"
        assert line.decode().split() == ["notification.delivered", "n-1", "u-amara", "email"]
        failed = NotificationFailed(
            notification_id="n-2", user_id="u-amara", channel="webhook", attempts=7, error="410"
        )
        await bus.publish(new_event(failed, source="herald/dispatcher"))
        while (line := await asyncio.wait_for(process.stdout.readline(), 10)).startswith(
            b"notification.delivered"
        ):
            pass  # the extra probes published while the queue was being bound
        assert line.decode().split() == ["notification.failed", "n-2", "u-amara", "webhook", "410"]
    finally:
        process.kill()
        await process.wait()
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            await (await connection.channel()).queue_delete(queue)


async def test_http_snippets_publish_in_all_three_modes(
    gateway: Gateway, bus_factory: Callable[..., Bus], settings: Settings
) -> None:
    heard: list[Event[Any]] = []

    async def keep(event: Event[Any]) -> None:
        heard.append(event)

    probe = bus_factory("probe")
    probe.listen(["user.signed_up", "application.status_changed", "resume.*", "job.*"], keep)
    await probe.start(wait=10)
    url = {"http://localhost:8000": gateway.url}
    script = "\n".join(
        [
            "set -euo pipefail",
            snippet("http-key"),
            snippet("http-structured", **url),
            "echo",
            snippet("http-binary", **url),
            "echo",
            snippet("http-batch", **url),
            "echo",
        ]
    )
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HERALD_DATABASE_URL": settings.database_url.get_secret_value(),
        "HERALD_DATA_DIR": str(settings.data_dir),
    }
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        script,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert out.decode().splitlines() == [
        '{"accepted":["evt-signup-u-amara"],"duplicates":[]}',
        '{"accepted":["evt-app-981-interview"],"duplicates":[]}',
        '{"accepted":["evt-resume-u-amara-1","evt-job-4711-closed"],"duplicates":[]}',
    ]
    await eventually(lambda: len(heard) == 4, what="four events on the bus")
    assert sorted(e.type for e in heard) == [
        "application.status_changed",
        "job.closed",
        "resume.upserted",
        "user.signed_up",
    ]
    binary = next(e for e in heard if e.type == "application.status_changed")
    assert (binary.source, binary.data.new_status) == ("https://jobs.example.org/ats", "interview")
