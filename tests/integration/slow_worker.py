"""A worker service with a deliberately slow handler, run as a real process by the
SIGTERM tests: it writes ``started <id>`` and ``done <id>`` lines to a journal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from shared.events import Event
from shared.logging import configure_logging
from shared.runner import Background, Runtime, run_worker
from shared.settings import load_settings

JOURNAL = os.environ["SLOW_WORKER_JOURNAL"]
HANDLE_SECONDS = float(os.environ.get("SLOW_WORKER_SECONDS", "1"))


def _write(line: str) -> None:
    with open(JOURNAL, "a") as journal:
        journal.write(line + "\n")


async def slow(event: Event[Any]) -> None:
    _write(f"started {event.id}")
    await asyncio.sleep(HANDLE_SECONDS)
    _write(f"done {event.id}")


@contextlib.asynccontextmanager
async def setup(runtime: Runtime) -> AsyncIterator[list[Background]]:
    runtime.bus.subscribe("work", {"notification.requested": slow}, prefetch=5)
    yield []


if __name__ == "__main__":
    settings = load_settings()
    configure_logging("dispatcher", "info")
    asyncio.run(run_worker("dispatcher", settings, setup))
    sys.exit(0)
