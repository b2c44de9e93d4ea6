"""The four services as processes, scraped as Prometheus scrapes them: each /metrics
passes ``promtool check metrics``, everything the alert rules and the Grafana board
read is in what they really expose, and a real Prometheus server with the shipped
configuration and rules evaluates them and every query of the board."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import yaml

from shared.settings import Settings
from tests.e2e.conftest import Platform
from tests.e2e.test_platform import cloudevent, post, user
from tests.observability import (
    PROMETHEUS_CONFIG,
    PROMETHEUS_OWN,
    RABBITMQ_SERIES,
    RULES_DIR,
    as_promql,
    dashboard_queries,
    defined_metrics,
    exposed_metrics,
    metric_names,
    promtool,
    require_tool,
    rule_queries,
    run_promtool,
    sample_value,
)
from tests.receivers import Receiver
from tests.support import eventually, free_port, publish_raw

__all__ = ["promtool"]


@pytest.fixture(autouse=True)
def heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    """A schedule ticking every second, so the scheduler's heartbeat shows at once
    (set before the platform's processes start: they read it from the environment)."""
    monkeypatch.setenv("HERALD_SCHEDULES", json.dumps({"heartbeat": "@every 1s"}))


async def scrape(platform: Platform) -> dict[str, str]:
    async with httpx.AsyncClient(timeout=10) as client:
        bodies = {}
        for name, url in platform.metrics.items():
            response = await client.get(f"{url}/metrics")
            assert response.status_code == 200, name
            assert response.headers["content-type"].startswith("text/plain; version=")
            bodies[name] = response.text
        return bodies


async def sign_up_with_webhook(
    platform: Platform, api_key: str, pool: asyncpg.Pool, receiver: Receiver
) -> str:
    """A new user with a webhook to ``receiver`` (the database outlives a test: each
    test has its own); their id."""
    user_id = f"u-{uuid.uuid4().hex[:10]}"
    assert (await post(platform, api_key, user(user_id))).status_code == 202
    await eventually(
        lambda: pool.fetchval("SELECT true FROM users WHERE user_id = $1", user_id),
        what="user stored",
    )
    added = platform.herald(
        "endpoint", "add", "--user", user_id, "--type", "webhook", "--url", f"{receiver.url}/hook"
    )
    assert added.returncode == 0, added.stderr
    return user_id


async def notify(platform: Platform, api_key: str, user_id: str, title: str = "Hi") -> None:
    request = cloudevent(
        "notification.requested",
        {"user_id": user_id, "type": "application.update", "title": title, "body": "there"},
    )
    assert (await post(platform, api_key, request)).status_code == 202


async def park_a_broken_message(settings: Settings) -> None:
    await publish_raw(
        settings.amqp_url.get_secret_value(),
        settings.namespace,
        "notification.requested",
        b'{"id": "broken"}',
    )


async def test_every_service_exposes_lint_clean_metrics_that_the_board_and_alerts_read(
    platform: Platform,
    receiver: Receiver,
    api_key: str,
    promtool: str,
    settings: Settings,
    pool: asyncpg.Pool,
) -> None:
    ns = settings.namespace
    ada = await sign_up_with_webhook(platform, api_key, pool, receiver)
    await notify(platform, api_key, ada)
    await park_a_broken_message(settings)

    bodies: dict[str, str] = {}

    async def everything_shows() -> bool:
        bodies.update(await scrape(platform))
        gateway, dispatcher, scheduler = (
            bodies["gateway"],
            bodies["dispatcher"],
            bodies["scheduler"],
        )
        ticked = sample_value(
            scheduler, "herald_scheduler_last_tick_timestamp_seconds", schedule="heartbeat"
        )
        return (
            sample_value(
                dispatcher, "herald_deliveries_total", channel="webhook", outcome="delivered"
            )
            == 1
            and sample_value(dispatcher, "herald_delivery_latency_seconds_count", channel="webhook")
            == 1
            and sample_value(
                gateway, "herald_events_published_total", type="user.signed_up", outcome="confirmed"
            )
            == 1
            # the gateway reads the parking queue's depth from the broker
            and sample_value(
                gateway,
                "herald_queue_messages",
                queue=f"{ns}.dispatcher.notifications",
                state="parked",
            )
            == 1
            and ticked is not None
            and abs(time.time() - ticked) < 30
        )

    await eventually(everything_shows, timeout=30, interval=0.5, what="traffic in the metrics")
    gateway = bodies["gateway"]
    # every work queue is reported, with its consumers (the dispatcher's is up)
    assert sample_value(gateway, "herald_queue_consumers", queue=f"{ns}.dispatcher.notifications")
    assert (
        sample_value(gateway, "herald_queue_messages", queue=f"{ns}.matcher.jobs", state="ready")
        == 0
    )
    assert sample_value(bodies["dispatcher"], "herald_parked_total", reason="invalid") == 1
    assert sample_value(bodies["scheduler"], "herald_scheduler_leader") == 1

    for name, body in bodies.items():
        lint = run_promtool(promtool, "check", "metrics", stdin=body.encode())
        assert lint.strip() == "", f"{name}'s /metrics:\n{lint}"

    exposed: dict[str, str] = {}
    for body in bodies.values():
        exposed |= exposed_metrics(body)
    # what the code defines (Herald's, the process's) is all in what is served
    defined = defined_metrics()
    used = {
        name
        for _, query in [*rule_queries(), *dashboard_queries()]
        for name in metric_names(query)
        if name in defined
    }
    assert {n for n in used if n.startswith("herald_")}, "the check checks nothing"
    assert used - exposed.keys() == set()


def test_rabbitmq_exporter_has_the_series_the_board_reads(settings: Settings) -> None:
    """Only where the broker runs the rabbitmq_prometheus plugin (the official image
    does; a bare Debian package does not)."""
    host = urlsplit(settings.amqp_url.get_secret_value()).hostname or "127.0.0.1"
    base = f"http://{host}:15692"
    try:
        plain = httpx.get(f"{base}/metrics", timeout=5)
    except httpx.HTTPError:
        pytest.skip("the broker has no rabbitmq_prometheus plugin on :15692")
    detailed = httpx.get(
        f"{base}/metrics/detailed",
        params=[("family", "queue_coarse_metrics"), ("family", "queue_consumer_count")],
        timeout=5,
    )
    exposed = exposed_metrics(plain.text) | exposed_metrics(detailed.text)
    assert exposed.keys() >= RABBITMQ_SERIES
    used = {
        name
        for _, query in [*rule_queries(), *dashboard_queries()]
        for name in metric_names(query)
        if name.startswith("rabbitmq_")
    }
    assert used <= exposed.keys()
    assert PROMETHEUS_OWN.isdisjoint(exposed)


# the Compose targets of prometheus.yml, by service
PORTS = (("gateway", 9104), ("scheduler", 9101), ("matcher", 9102), ("dispatcher", 9103))


@pytest.fixture
async def prometheus(platform: Platform, settings: Settings, tmp_path: Path) -> AsyncIterator[str]:
    """The real Prometheus server, with deploy/observability's configuration and rules,
    scraping this platform's services every second; its URL."""
    binary = require_tool("prometheus")
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(RULES_DIR / "*.yml")]
    broker = urlsplit(settings.amqp_url.get_secret_value()).hostname or "127.0.0.1"
    here = {f"{name}:{port}": urlsplit(platform.metrics[name]).netloc for name, port in PORTS}
    here["rabbitmq:15692"] = f"{broker}:15692"
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [here[t] for t in static["targets"]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{free_port()}"
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(  # noqa: ASYNC220 (returns at once; it runs on)
            [
                binary,
                f"--config.file={path}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address={urlsplit(url).netloc}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        async def ready() -> bool:
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.get(f"{url}/-/ready")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(ready, timeout=30, interval=0.2, what="Prometheus ready")

        async def scraping() -> bool:
            async with httpx.AsyncClient(timeout=5) as client:
                answer = await client.get(
                    f"{url}/api/v1/query", params={"query": 'up{job=~"herald-.+"} == 1'}
                )
            return len(answer.json()["data"]["result"]) == len(PORTS)

        # targets are first scraped a few seconds after start-up
        await eventually(scraping, timeout=30, interval=0.2, what="every service scraped")
        yield url
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 20)
        except subprocess.TimeoutExpired:
            process.kill()


async def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    """An instant query's result; the test fails if Prometheus refuses the query."""
    async with httpx.AsyncClient(timeout=10) as client:
        answer = (await client.get(f"{prometheus}/api/v1/query", params={"query": promql})).json()
    assert answer["status"] == "success", f"{promql}: {answer}"
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


async def test_prometheus_evaluates_the_rules_and_the_board_on_the_running_services(
    platform: Platform,
    receiver: Receiver,
    api_key: str,
    settings: Settings,
    pool: asyncpg.Pool,
    prometheus: str,
) -> None:
    ada = await sign_up_with_webhook(platform, api_key, pool, receiver)
    await notify(platform, api_key, ada)
    await park_a_broken_message(settings)

    async def has(promql: str) -> bool:
        return bool(await query(prometheus, promql))

    # a counter that first shows at 1 has no rate yet: a second delivery, once
    # Prometheus has seen the first, gives one
    for first in (
        'herald_events_published_total{service="gateway", type="notification.requested"} == 1',
        'herald_deliveries_total{channel="webhook", outcome="delivered"} == 1',
    ):
        await eventually(lambda q=first: has(q), timeout=30, interval=0.2, what=f"{first} scraped")
    await notify(platform, api_key, ada, "Hi again")  # the same text would be a duplicate
    for wanted in (
        'herald:deliveries:rate5m{channel="webhook", outcome="delivered"} > 0',
        'herald:delivery_latency_seconds:quantile5m{channel="webhook", quantile="0.99"} > 0',
        'herald:events_ingested:rate5m{type="notification.requested"} > 0',
        'herald:queue_messages:max{state="parked", queue=~".+[.]dispatcher[.]notifications"} == 1',
        'ALERTS{alertname="HeraldMessagesParked", queue=~".+[.]dispatcher[.]notifications"}',
    ):
        await eventually(lambda q=wanted: has(q), timeout=30, interval=0.5, what=wanted)

    # every query of the board runs; the ones this traffic feeds show it
    results = {
        where: await query(prometheus, as_promql(promql)) for where, promql in dashboard_queries()
    }
    for panel in (
        "Services up",
        "Events in",
        "Deliveries",
        "Ready backlog",
        "Parked",
        "Events in, by type",
        "Events consumed, by service and outcome",
        "Deliveries, by channel and outcome",
        "Delivery latency percentiles, by channel",
        "Delivery latency, all channels",
        "Parked, by queue and reason",
        "Parked messages waiting",
        "Ready messages, by queue",
        "Consumers, by queue",
        "In flight, by service",
        "Handler duration p95, by event type",
        "HTTP requests, by status",
        "Seconds since the last tick, by schedule",
        "Leader",
        "Resident memory, by service",
        "CPU, by service",
    ):
        assert results[f"panel {panel!r}"], f"{panel!r} shows nothing"
    assert float(results["panel 'Services up'"][0]["value"][1]) == 1

    # nothing is wrong but the parked message (and the start-up's own pending states)
    alerts = {a["metric"]["alertname"] for a in await query(prometheus, "ALERTS")}
    assert alerts.isdisjoint(
        {
            "HeraldServiceDown",
            "HeraldServiceMissing",
            "HeraldBusDisconnected",
            "HeraldQueueNoConsumers",
            "HeraldNoSchedulerLeader",
            "HeraldPublishFailing",
            "HeraldDeliveryFailureRate",
            "HeraldGatewayErrors",
        }
    ), alerts
