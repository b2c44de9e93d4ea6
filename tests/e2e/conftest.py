"""The platform as real processes: the four services started with ``python -m``.

Webhooks go to the ``receiver`` fixture of ``tests/conftest.py``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.bus import queue_stats
from shared.settings import Settings
from tests.conftest import SECRET_KEY, delete_topology
from tests.support import Busy, eventually, free_ports, queues_named

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("scheduler", "matcher", "dispatcher", "gateway")


@dataclass
class Platform:
    env: dict[str, str]
    gateway: str
    metrics: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]]
    logs: Path

    def herald(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the ``herald`` CLI against this platform."""
        return subprocess.run(
            [sys.executable, "-m", "shared.cli", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    async def ready(self) -> bool:
        """True when every service answers /readyz with 200 (the gateway on its API's
        port, the workers on their metrics port)."""
        async with httpx.AsyncClient(timeout=2) as client:
            for name, url in self.metrics.items():
                if self.processes[name].poll() is not None:
                    raise AssertionError(f"{name} exited:\n{self.log_text()}")
                health = self.gateway if name == "gateway" else url
                try:
                    if (await client.get(f"{health}/readyz")).status_code != 200:
                        return False
                except httpx.HTTPError:
                    return False
        return True

    def working(self) -> Busy:
        """For ``quiescent``: busy while a service handles a message (its
        ``herald_messages_in_flight``) or a work or delay queue of the platform holds
        one. The queues are listed once, at the first poll: all are declared at start."""
        queues: list[str] = []

        async def busy() -> str | None:
            async with httpx.AsyncClient(timeout=2) as client:
                for name, url in self.metrics.items():
                    exposed = (await client.get(f"{url}/metrics")).text
                    handling = sum(
                        sample.value
                        for family in text_string_to_metric_families(exposed)
                        if family.name == "herald_messages_in_flight"
                        for sample in family.samples
                    )
                    if handling:
                        return f"{name} is handling {handling:.0f} message(s)"
            if not queues:
                named = await asyncio.to_thread(queues_named, f"{self.env['HERALD_NAMESPACE']}.")
                # parked messages are done with; live listeners' queues are not ours to probe
                queues.extend(q for q in named if not q.endswith(".parked") and ".live." not in q)
            connection = await aio_pika.connect(self.env["HERALD_AMQP_URL"])
            try:
                for stats in await queue_stats(connection, queues):
                    if stats.messages:
                        return f"{stats.queue} holds {stats.messages} message(s)"
            finally:
                await connection.close()
            return None

        return busy

    def start(self, name: str) -> None:
        """Start (or start again) one service; its log is appended to."""
        with (self.logs / f"{name}.log").open("ab") as out:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def log_text(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(self.logs.glob("*.log"))
        )


@pytest.fixture
async def platform(settings: Settings, tmp_path: Path) -> AsyncIterator[Platform]:
    # each service's metrics port, and the gateway's API
    *metrics_ports, api_port = free_ports(len(SERVICES) + 1)
    ports = dict(zip(SERVICES, metrics_ports, strict=True))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "HERALD_AMQP_URL": settings.amqp_url.get_secret_value(),
        "HERALD_DATABASE_URL": settings.database_url.get_secret_value(),
        "HERALD_NAMESPACE": settings.namespace,
        "HERALD_DATA_DIR": str(settings.data_dir),
        "HERALD_SECRET_KEY": SECRET_KEY,
        "HERALD_RETRY_DELAYS": "0.2,0.4",
        "HERALD_ALLOW_PRIVATE_URLS": "127.0.0.0/8",
        "HERALD_GATEWAY_PORT": str(api_port),
        "HERALD_GATEWAY_METRICS_PORT": str(ports["gateway"]),
        "HERALD_SCHEDULER_METRICS_PORT": str(ports["scheduler"]),
        "HERALD_MATCHER_METRICS_PORT": str(ports["matcher"]),
        "HERALD_DISPATCHER_METRICS_PORT": str(ports["dispatcher"]),
        "HERALD_DRAIN_TIMEOUT": "5",
        # batches to one user would otherwise wait out the per-recipient limit
        "HERALD_RECIPIENT_RATE_PER_MINUTE": "100000",
        # short sends, so a killed dispatcher's delivery leases run out soon
        "HERALD_HTTP_TIMEOUT": "2",
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    processes: dict[str, subprocess.Popen[bytes]] = {}
    base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    platform = Platform(env, f"http://127.0.0.1:{api_port}", base, processes, logs)
    for name in SERVICES:
        platform.start(name)

    try:
        await eventually(platform.ready, timeout=60, interval=0.2, what="all four services ready")
        yield platform
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                await asyncio.to_thread(process.wait, 20)
            except subprocess.TimeoutExpired:
                process.kill()
        await delete_topology(settings.namespace, queues_named(f"{settings.namespace}."))


@pytest.fixture
def api_key(platform: Platform) -> str:
    result = platform.herald("apikey", "create", "--scope", "events:write")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()
