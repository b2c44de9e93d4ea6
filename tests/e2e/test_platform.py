"""The whole platform as processes: gateway → bus → dispatcher → signed webhook."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from shared import signing
from shared.settings import Settings
from tests.e2e.conftest import Platform
from tests.receivers import Receiver, Reply
from tests.support import eventually, quiescent, rabbitmqctl, sending

CE = {"content-type": "application/cloudevents+json"}


def cloudevent(type_: str, data: dict[str, Any], id_: str | None = None) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": id_ or str(uuid.uuid4()),
        "source": "https://jobs.example/backend",
        "type": type_,
        "data": data,
    }


def user(user_id: str) -> dict[str, Any]:
    return cloudevent(
        "user.signed_up",
        {
            "user_id": user_id,
            "email": f"{user_id}@example.org",
            "name": "Ada",
            "timezone": "Europe/Paris",
        },
    )


async def post(platform: Platform, key: str, body: Any, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{platform.gateway}/v1/events",
            content=json.dumps(body),
            headers={**CE, "authorization": f"Bearer {key}", **headers},
        )


async def test_event_through_gateway_reaches_webhook_signed_once(
    platform: Platform, receiver: Receiver, api_key: str, pool: asyncpg.Pool
) -> None:
    assert (await post(platform, api_key, user("ada"))).status_code == 202
    await eventually(
        lambda: pool.fetchval("SELECT true FROM users WHERE user_id = 'ada'"), what="user stored"
    )
    added = platform.herald(
        "endpoint", "add", "--user", "ada", "--type", "webhook", "--url", f"{receiver.url}/hook"
    )
    assert added.returncode == 0, added.stderr
    secret = json.loads(added.stdout)["secret"]
    assert secret.startswith("whsec_")

    receiver.script("/hook", Reply(503))  # the first attempt fails transiently
    request = cloudevent(
        "notification.requested",
        {
            "user_id": "ada",
            "type": "application.update",
            "title": "You got an interview",
            "body": "Tuesday 10:00",
        },
    )
    first = await post(platform, api_key, request, **{"x-correlation-id": "trace-123"})
    assert first.status_code == 202, first.text
    assert first.json() == {"accepted": [request["id"]], "duplicates": []}
    again = await post(platform, api_key, request)
    assert again.status_code == 200
    assert again.json() == {"accepted": [], "duplicates": [request["id"]]}

    await eventually(lambda: len(receiver.requests) == 2, what="delivery after one retry")
    await quiescent(also=[platform.working(), sending(pool, "ada")])  # or a duplicate comes
    assert len(receiver.requests) == 2, platform.log_text()
    first_try, retry = receiver.to("/hook")
    assert first_try.headers["webhook-id"] == retry.headers["webhook-id"]  # the same on every retry
    payload = Webhook(secret).verify(retry.body, retry.headers)  # raises unless it is signed
    assert payload["data"]["title"] == "You got an interview"
    assert payload["data"]["user_id"] == "ada"

    row = await pool.fetchrow(
        """SELECT d.status, d.attempts, n.correlation_id FROM deliveries d
           JOIN notifications n ON n.id = d.notification_id
           WHERE n.user_id = 'ada' AND d.channel = 'webhook'"""
    )
    assert dict(row) == {"status": "delivered", "attempts": 2, "correlation_id": "trace-123"}
    assert "trace-123" in (platform.logs / "dispatcher.log").read_text()


async def test_gateway_refuses_bad_requests_with_reasons(platform: Platform, api_key: str) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        url = f"{platform.gateway}/v1/events"
        anonymous = await client.post(url, content=json.dumps(user("x")), headers=CE)
        assert anonymous.status_code == 401
        wrong = await client.post(url, json=user("x"), headers={**CE, "x-api-key": "hk_nope"})
        assert wrong.status_code == 401
        broken = await client.post(
            url, content=b"{", headers={**CE, "authorization": f"Bearer {api_key}"}
        )
        assert broken.status_code == 400
        assert "not JSON" in broken.json()["detail"]
    invalid = await post(platform, api_key, cloudevent("user.signed_up", {"email": "nobody"}))
    assert invalid.status_code == 422
    errors = invalid.json()["detail"]["errors"]
    assert "data.user_id: Field required" in errors[0]["error"]
    unknown = await post(platform, api_key, cloudevent("job.teleported", {}))
    assert unknown.status_code == 422
    assert "unknown event type" in unknown.text
    plain = await post(platform, api_key, user("x"), **{"content-type": "text/plain"})
    assert plain.status_code == 415
    huge = user("x") | {"padding": "x" * (6 * 1024 * 1024)}
    assert (await post(platform, api_key, huge)).status_code == 413


async def test_batch_is_validated_whole_before_anything_is_published(
    platform: Platform, api_key: str, pool: asyncpg.Pool
) -> None:
    batch_ct = {"content-type": "application/cloudevents-batch+json"}
    bad = await post(platform, api_key, [user("b1"), cloudevent("user.signed_up", {})], **batch_ct)
    assert bad.status_code == 422
    assert bad.json()["detail"]["errors"][0]["index"] == 1
    good = await post(platform, api_key, [user("b1"), user("b2")], **batch_ct)
    assert good.status_code == 202
    await eventually(
        lambda: pool.fetchval("SELECT count(*) = 2 FROM users WHERE user_id IN ('b1', 'b2')"),
        what="both users",
    )


async def test_matcher_stores_a_posted_job(
    platform: Platform, api_key: str, pool: asyncpg.Pool
) -> None:
    job = cloudevent(
        "job.posted",
        {
            "job_id": "j-1",
            "title": "Backend engineer",
            "company": "Acme",
            "description": "Python, PostgreSQL, RabbitMQ",
            "location": "Berlin",
            "remote": True,
            "salary_min": 60000,
            "salary_max": 80000,
            "currency": "EUR",
            "job_type": "full_time",
            "url": "https://jobs.example/j-1",
            "posted_at": "2026-11-20T09:00:00Z",
            "skills": ["python", "postgresql"],
        },
    )
    assert (await post(platform, api_key, job)).status_code == 202
    await eventually(
        lambda: pool.fetchval("SELECT title = 'Backend engineer' FROM jobs WHERE job_id = 'j-1'"),
        what="job stored",
    )


async def test_cli_publish_then_parked_list_and_replay(
    platform: Platform, pool: asyncpg.Pool
) -> None:
    # A request for a user Herald has not heard of is retried, then parked.
    data = {"user_id": "late", "type": "reminder", "title": "Hi", "body": "there"}
    published = platform.herald("publish", "notification.requested", json.dumps(data))
    assert published.returncode == 0, published.stderr
    event_id = published.stdout.strip()

    parked: list[dict[str, Any]] = []

    def listed() -> bool:
        out = platform.herald("parked", "list")
        parked[:] = [json.loads(line) for line in out.stdout.splitlines()]
        return any(p["event_id"] == event_id for p in parked)

    await eventually(listed, timeout=20, interval=0.5, what="parked request")
    entry = next(p for p in parked if p["event_id"] == event_id)
    assert entry["reason"] == "exhausted"
    assert "not known" in entry["error"]

    bad = platform.herald("publish", "notification.requested", '{"user_id": "late"}')
    assert bad.returncode == 2
    assert "data.type: Field required" in bad.stderr

    signup = {"user_id": "late", "email": "late@example.org"}
    assert platform.herald("publish", "user.signed_up", json.dumps(signup)).returncode == 0
    await eventually(lambda: pool.fetchval("SELECT true FROM users WHERE user_id = 'late'"))
    replayed = platform.herald("parked", "replay", "--id", event_id)
    assert replayed.returncode == 0, replayed.stderr
    assert event_id in replayed.stdout
    await eventually(
        lambda: pool.fetchval(
            "SELECT true FROM notifications WHERE source_event_id = $1", event_id
        ),
        what="replayed request handled",
    )
    assert event_id not in platform.herald("parked", "list").stdout


async def test_every_service_serves_metrics(platform: Platform, api_key: str) -> None:
    assert (await post(platform, api_key, user("m1"))).status_code == 202
    async with httpx.AsyncClient(timeout=5) as client:
        for name, url in platform.metrics.items():
            text = (await client.get(f"{url}/metrics")).text
            assert f'herald_bus_connected{{service="{name}"}} 1.0' in text, name

        async def consumed() -> bool:
            text = (await client.get(f"{platform.metrics['dispatcher']}/metrics")).text
            return 'type="user.signed_up"' in text and "herald_events_consumed_total" in text

        await eventually(consumed, what="dispatcher metrics")


def _restart_postgres() -> None:
    import glob
    import os
    import subprocess

    version = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.broker_disruptive
async def test_platform_resumes_by_itself_after_broker_and_database_restarts(
    platform: Platform, receiver: Receiver, api_key: str, pool: asyncpg.Pool
) -> None:
    assert (await post(platform, api_key, user("phoenix"))).status_code == 202
    await eventually(lambda: pool.fetchval("SELECT true FROM users WHERE user_id = 'phoenix'"))
    added = platform.herald(
        "endpoint", "add", "--user", "phoenix", "--type", "webhook", "--url", f"{receiver.url}/hook"
    )
    assert added.returncode == 0, added.stderr

    await asyncio.to_thread(rabbitmqctl, "stop_app")
    try:
        await asyncio.sleep(2)
    finally:
        await asyncio.to_thread(rabbitmqctl, "start_app")
    await asyncio.to_thread(_restart_postgres)
    await pool.expire_connections()

    await eventually(platform.ready, timeout=60, interval=0.5, what="every service ready again")
    request = cloudevent(
        "notification.requested",
        {"user_id": "phoenix", "type": "t", "title": "Still here", "body": "after the restarts"},
    )
    assert (await post(platform, api_key, request)).status_code == 202
    await eventually(
        lambda: len(receiver.requests) == 1, timeout=30, what="delivery after restarts"
    )
    assert all(p.poll() is None for p in platform.processes.values()), platform.log_text()


async def test_one_click_unsubscribe_turns_email_off(
    platform: Platform, api_key: str, pool: asyncpg.Pool
) -> None:
    assert (await post(platform, api_key, user("uma"))).status_code == 202
    await eventually(
        lambda: pool.fetchval("SELECT true FROM users WHERE user_id = 'uma'"), what="user stored"
    )
    # no preferences row until the user (or this link) writes one: the defaults
    email_on = (
        "SELECT COALESCE((SELECT email_enabled FROM preferences WHERE user_id = 'uma'), true)"
    )
    settings = Settings(secret_key=platform.env["HERALD_SECRET_KEY"], public_url=platform.gateway)  # type: ignore[arg-type]
    link = signing.unsubscribe_url(settings, "uma")
    async with httpx.AsyncClient(timeout=10) as client:
        page = await client.get(link)  # what a link scanner does: nothing changes
        assert page.status_code == 200
        assert await pool.fetchval(email_on)
        forged = await client.post(link[:-3] + "xyz", data={"List-Unsubscribe": "One-Click"})
        assert forged.status_code == 400
        done = await client.post(link, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert not await pool.fetchval(email_on)
