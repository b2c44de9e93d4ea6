"""The container health check (``python -m shared.healthcheck``) as Docker runs it:
a process whose exit code says healthy or not, against real HTTP answers."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Service:
    """A stand-in for a service's health port: /healthz 200, /readyz ``ready``."""

    port: int
    ready: int = 200
    asked: list[str] = field(default_factory=list)


@pytest.fixture
def service() -> Iterator[Service]:
    state = Service(port=0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.asked.append(self.path)
            status = {"/healthz": 200, "/readyz": state.ready}.get(self.path, 404)
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def healthcheck(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    return subprocess.run(
        [sys.executable, "-m", "shared.healthcheck", *args],
        cwd=ROOT,
        env={**clean, "HERALD_METRICS_HOST": "0.0.0.0", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_ready_service_is_healthy(service: Service) -> None:
    result = healthcheck("dispatcher", HERALD_DISPATCHER_METRICS_PORT=str(service.port))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"dispatcher ok: http://127.0.0.1:{service.port}/readyz 200\n"


def test_a_service_that_is_not_ready_is_unhealthy(service: Service) -> None:
    service.ready = 503
    result = healthcheck("matcher", HERALD_MATCHER_METRICS_PORT=str(service.port))
    assert result.returncode == 1
    assert result.stdout.startswith("matcher unhealthy:")
    assert result.stdout.rstrip().endswith("503")


def test_live_asks_only_whether_it_is_alive(service: Service) -> None:
    service.ready = 503
    result = healthcheck("--live", "gateway", HERALD_GATEWAY_PORT=str(service.port))
    assert result.returncode == 0, result.stdout
    assert service.asked == ["/healthz"]


def test_a_service_that_does_not_answer_is_unhealthy() -> None:
    port = free_port()
    result = healthcheck("scheduler", HERALD_SCHEDULER_METRICS_PORT=str(port))
    assert result.returncode == 1
    assert f"scheduler unhealthy: http://127.0.0.1:{port}/readyz" in result.stdout


def test_every_named_service_must_be_healthy(service: Service) -> None:
    result = healthcheck(
        "gateway",
        "scheduler",
        HERALD_GATEWAY_PORT=str(service.port),
        HERALD_SCHEDULER_METRICS_PORT=str(free_port()),
    )
    assert result.returncode == 1
    assert result.stdout.splitlines()[0].startswith("gateway ok:")
    assert result.stdout.splitlines()[1].startswith("scheduler unhealthy:")


def test_a_proxy_in_the_environment_is_not_used(service: Service) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    result = healthcheck(
        "gateway",
        HERALD_GATEWAY_PORT=str(service.port),
        HTTP_PROXY=dead_proxy,
        http_proxy=dead_proxy,
    )
    assert result.returncode == 0, result.stdout


def test_an_unknown_service_is_a_usage_error() -> None:
    result = healthcheck("mailer")
    assert result.returncode == 2
    assert "gateway, scheduler, matcher, dispatcher" in result.stderr
