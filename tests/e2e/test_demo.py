"""``make demo`` against the platform as processes: what a person trying Herald sees."""

from __future__ import annotations

import asyncio
import email
import email.policy
import subprocess
import sys
import time
from typing import Any

import asyncpg
import httpx
import jwt

from demo import data
from shared.settings import Settings
from tests.e2e.conftest import ROOT, Platform


def run_demo(platform: Platform) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "demo", "--timeout", "40"],
        cwd=ROOT,
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def mails(settings: Settings) -> dict[str, list[str]]:
    """Subjects in the outbox by recipient."""
    found: dict[str, list[str]] = {}
    for path in settings.outbox_dir.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.setdefault(str(message["To"]), []).append(" ".join(str(message["Subject"]).split()))
    return found


async def inbox(platform: Platform, user_id: str) -> list[dict[str, Any]]:
    token = jwt.encode(
        {"sub": user_id, "exp": int(time.time()) + 300},
        platform.env["HERALD_SECRET_KEY"],
        "HS256",
    )
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(
            f"{platform.gateway}/v1/me/notifications",
            headers={"Authorization": f"Bearer {token}"},
        )
    answer.raise_for_status()
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def test_demo_shows_mail_inbox_and_signed_webhooks_and_runs_again(
    platform: Platform, settings: Settings, pool: asyncpg.Pool
) -> None:
    first = await asyncio.to_thread(run_demo, platform)
    assert first.returncode == 0, first.stderr + first.stdout + platform.log_text()

    # e-mail: everyone is welcomed and told of their match; Amara hears of her
    # interview twice (the status change, then the reminder an hour before)
    outbox = mails(settings)
    for person, job in zip(
        data.PEOPLE, ("Critical Care", "Python Backend", "Accountant"), strict=True
    ):
        subjects = outbox[person.email]
        assert any(s.startswith("Welcome") for s in subjects), subjects
        assert any(s.startswith("New match") and job in s for s in subjects), subjects
    amara = outbox[data.AMARA.email]
    assert any("Interview stage" in s for s in amara), amara
    assert any(s.startswith("Reminder") and "1 hour" in s for s in amara), amara

    # the in-app inbox, through the API, holds the same
    kinds = [i["type"] for i in await inbox(platform, data.AMARA.user_id)]
    assert sorted(kinds) == ["application_status", "job_match", "meeting_reminder", "welcome"]
    for person, job_id in zip(data.PEOPLE[1:], data.MATCHES[1:], strict=True):
        matches = [i for i in await inbox(platform, person.user_id) if i["type"] == "job_match"]
        assert [m["data"]["job_id"] for m in matches] == [job_id]

    # Amara's webhook got everything after it was added, signed; the demo checked it
    delivered = await pool.fetchval(
        """SELECT count(*) FROM deliveries d JOIN notifications n ON n.id = d.notification_id
           WHERE n.user_id = $1 AND d.channel = 'webhook' AND d.status = 'delivered'""",
        data.AMARA.user_id,
    )
    assert delivered == 3
    assert first.stdout.count("signature verified") == 3, first.stdout
    assert "REFUSED" not in first.stdout
    assert "/v1/me/notifications" in first.stdout  # where to look next

    # again: the same people and jobs, no second welcome or match; a new interview
    second = await asyncio.to_thread(run_demo, platform)
    assert second.returncode == 0, second.stderr + second.stdout + platform.log_text()
    kinds = [i["type"] for i in await inbox(platform, data.AMARA.user_id)]
    assert sorted(kinds) == [
        "application_status",
        "application_status",
        "job_match",
        "meeting_reminder",
        "meeting_reminder",
        "welcome",
    ]
    assert second.stdout.count("signature verified") == 2, second.stdout
    assert len(mails(settings)[data.AMARA.email]) == 6
