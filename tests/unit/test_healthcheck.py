"""Which services the container health check probes, and where."""

from __future__ import annotations

import pytest

from shared.healthcheck import probe_url, running_services
from shared.settings import Settings


@pytest.mark.parametrize(
    ("service", "url"),
    [
        ("gateway", "http://127.0.0.1:8000/readyz"),
        ("scheduler", "http://127.0.0.1:9101/readyz"),
        ("matcher", "http://127.0.0.1:9102/readyz"),
        ("dispatcher", "http://127.0.0.1:9103/readyz"),
    ],
)
def test_services_bound_everywhere_are_asked_on_loopback(service: str, url: str) -> None:
    settings = Settings(gateway_host="0.0.0.0", metrics_host="0.0.0.0")
    assert probe_url(settings, service) == url


def test_the_configured_ports_and_addresses_are_used() -> None:
    settings = Settings(
        gateway_host="::", gateway_port=8080, metrics_host="10.0.0.5", matcher_metrics_port=9200
    )
    assert probe_url(settings, "gateway", "/healthz") == "http://[::1]:8080/healthz"
    assert probe_url(settings, "matcher") == "http://10.0.0.5:9200/readyz"


def test_running_services_are_found_in_command_lines() -> None:
    cmdlines = [
        ["docker-init", "--", "herald-entrypoint", "dispatcher"],
        ["/opt/herald/bin/python", "-m", "services.dispatcher"],
        ["/opt/herald/bin/python", "-m", "services.gateway"],
        ["/opt/herald/bin/python", "-m", "services.gateway"],
        ["/bin/sh", "-c", "exec python -m services.matcher"],  # a shell, not the service
        ["python", "-m", "services.matcher.model_files"],  # a tool, not a service
        ["python", "-m", "shared.healthcheck"],
        [],
    ]
    assert running_services(cmdlines) == ["gateway", "dispatcher"]


def test_herald_up_runs_all_four_in_one_container() -> None:
    cmdlines = [["/opt/herald/bin/python", "/opt/herald/bin/herald", "up"]] + [
        ["/opt/herald/bin/python", "-m", f"services.{name}"]
        for name in ("scheduler", "matcher", "dispatcher", "gateway")
    ]
    assert running_services(cmdlines) == ["gateway", "scheduler", "matcher", "dispatcher"]
