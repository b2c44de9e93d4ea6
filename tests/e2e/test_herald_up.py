"""`herald up` (what `make run` ends with): four services, prefixed logs, Ctrl-C stops all."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared.settings import Settings
from tests.conftest import SERVER_URL, delete_topology
from tests.support import eventually, free_ports, queues_named

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("scheduler", "matcher", "dispatcher", "gateway")


@pytest.fixture
def fresh_database_url() -> Iterator[str]:
    """A database of its own, as on a fresh machine: the services make their dev
    secret under the data dir, and the endpoints other tests sealed under the tests'
    key would rightly stop them (keys that open nothing stored refuse to start)."""
    name = f"herald_up_{uuid.uuid4().hex[:10]}"
    yield f"{SERVER_URL}/{name}"

    async def drop() -> None:
        conn = await asyncpg.connect(f"{SERVER_URL}/postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


async def test_herald_up_runs_all_four_and_ctrl_c_stops_them(
    settings: Settings, tmp_path: Path, fresh_database_url: str
) -> None:
    # and the gateway's metrics on a free port too: the default one may be taken here
    *service_ports, gateway_metrics_port = free_ports(5)
    ports = dict(zip(SERVICES, service_ports, strict=True))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HERALD_AMQP_URL": settings.amqp_url.get_secret_value(),
        "HERALD_DATABASE_URL": fresh_database_url,
        "HERALD_NAMESPACE": settings.namespace,
        "HERALD_DATA_DIR": str(tmp_path / "var"),
        "HERALD_GATEWAY_PORT": str(ports["gateway"]),
        **{f"HERALD_{n.upper()}_METRICS_PORT": str(ports[n]) for n in SERVICES[:3]},
        "HERALD_GATEWAY_METRICS_PORT": str(gateway_metrics_port),
    }
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(  # noqa: ASYNC220 (returns at once; it runs on)
            [sys.executable, "-m", "shared.cli", "up"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, like a terminal's
        )
    urls = [f"http://127.0.0.1:{p}/readyz" for p in ports.values()]

    async def ready() -> bool:
        assert up.poll() is None, log.read_text()
        async with httpx.AsyncClient(timeout=1) as client:
            try:
                return all([(await client.get(u)).status_code == 200 for u in urls])
            except httpx.HTTPError:
                return False

    def healthcheck() -> subprocess.CompletedProcess[str]:
        # the container image's health check, asked about all four
        return subprocess.run(
            [sys.executable, "-m", "shared.healthcheck", *SERVICES],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )

    try:
        await eventually(ready, timeout=60, interval=0.3, what="four services ready")
        healthy = await asyncio.to_thread(healthcheck)
        os.killpg(up.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        code = await asyncio.to_thread(up.wait, 40)
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
        await delete_topology(settings.namespace, queues_named(f"{settings.namespace}."))

    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert [line.split(":")[0] for line in healthy.stdout.splitlines()] == [
        f"{name} ok" for name in SERVICES
    ]
    assert (await asyncio.to_thread(healthcheck)).returncode == 1  # all four stopped

    output = log.read_text()
    assert code == 130, output  # interrupted, as a shell reports Ctrl-C
    for name in SERVICES:  # each service drained and exited on its own
        assert f"{name} stopped (rc=0)" in output, output
    for name in SERVICES:  # every service's lines carry its name
        assert any(
            line.split(" | ")[0].split()[-1] == name
            for line in output.splitlines()
            if " | " in line
        )
    assert output.count('"service_stopped"') == 3, output  # the workers drained and stopped
    assert "Application shutdown complete" in output  # and the gateway too
    async with httpx.AsyncClient(timeout=1) as client:
        for url in urls:
            try:
                await client.get(url)
            except httpx.ConnectError:
                continue
            raise AssertionError(f"{url} still answers after Ctrl-C")
