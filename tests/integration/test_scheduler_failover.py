"""Two scheduler processes against the real broker and database, in real time: the
leader is killed with SIGKILL, the other takes over within two lease periods, and
the bus sees every one-second slot exactly once."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from shared.bus import Bus
from shared.events import Event
from shared.settings import Settings
from tests.conftest import SECRET_KEY, delete_topology
from tests.support import eventually, free_ports, queues_named

ROOT = Path(__file__).resolve().parents[2]
LEASE = 2.0


def start_scheduler(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.scheduler"],
            cwd=ROOT,
            env={**env, "HERALD_SCHEDULER_METRICS_PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_killing_the_leader_loses_no_slot_and_repeats_none(
    settings: Settings, pool: asyncpg.Pool, bus_factory: Callable[..., Bus], tmp_path: Path
) -> None:
    heard: list[Event[Any]] = []

    async def collect(event: Event[Any]) -> None:
        heard.append(event)

    listener = bus_factory("listener")
    listener.subscribe("ticks", {"tick.second": collect})
    await listener.start(wait=10)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HERALD_AMQP_URL": settings.amqp_url.get_secret_value(),
        "HERALD_DATABASE_URL": settings.database_url.get_secret_value(),
        "HERALD_NAMESPACE": settings.namespace,
        "HERALD_DATA_DIR": str(settings.data_dir),
        "HERALD_SECRET_KEY": SECRET_KEY,
        "HERALD_SCHEDULER_LEASE_SECONDS": str(LEASE),
        "HERALD_SCHEDULES": json.dumps({"second": "@every 1s"}),
    }
    log = tmp_path / "schedulers.log"
    ports = free_ports(2)
    processes = [start_scheduler(env, port, log) for port in ports]
    try:

        async def holder() -> str | None:
            value = await pool.fetchval(
                "SELECT holder FROM scheduler_leases WHERE namespace = $1 AND expires_at > now()",
                settings.namespace,
            )
            return str(value) if value else None

        await eventually(holder, timeout=30, what="a leader")
        # its first round also publishes the slots of the last three leases (late, not
        # missed); then it runs in real time for a few seconds
        led_from = time.time()
        await eventually(
            lambda: bool(heard) and max(e.data.slot for e in heard).timestamp() >= led_from + 3,
            timeout=30,
            what="live ticks from the leader",
        )
        leader_id = await holder()
        assert leader_id is not None
        leader = next(p for p in processes if f":{p.pid}:" in leader_id)
        follower = next(p for p in processes if p is not leader)

        # Killed between two rounds (half a second after a slot). A kill inside the
        # millisecond between the broker's confirm and the commit could repeat that
        # one tick under its same id: the documented limit, not what this tests.
        await asyncio.sleep((0.5 - time.time()) % 1.0)
        leader.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        before = len(heard)
        await eventually(
            lambda: _held_by(holder, follower.pid),
            timeout=3 * LEASE,
            interval=0.05,
            what="takeover",
        )
        took = time.monotonic() - killed
        await eventually(
            lambda: (
                max(e.data.slot for e in heard).timestamp() >= time.time() - 0.5
                and len(heard) >= before + 5
            ),
            timeout=15,
            what="the successor's ticks in real time",
        )
        # the successor says so on its metrics
        port = ports[processes.index(follower)]
        async with httpx.AsyncClient(timeout=5) as client:
            exposition = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'herald_scheduler_leader{service="scheduler"} 1.0' in exposition
        follower.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(follower.wait, 20) == 0
    except BaseException:
        print(log.read_text()[-6000:])
        raise
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
        await delete_topology(settings.namespace, queues_named(f"{settings.namespace}."))

    print(f"took over after {took:.2f}s; {before} ticks before the kill, {len(heard)} in all")
    assert took < 2 * LEASE, f"took over after {took:.2f}s"
    ids = [e.id for e in heard]
    assert len(ids) == len(set(ids)), "a tick id was published twice"
    slots = sorted(e.data.slot for e in heard)
    gaps = [b - a for a, b in itertools.pairwise(slots) if b - a != timedelta(seconds=1)]
    assert gaps == [], f"missing slots around {gaps}"
    assert len(slots) >= before + 5


async def _held_by(holder: Callable[[], Any], pid: int) -> bool:
    current = await holder()
    return current is not None and f":{pid}:" in current
