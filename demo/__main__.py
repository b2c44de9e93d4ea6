"""``make demo``: against a running ``make run``, play a small job board and show
what Herald made of it.

Three people sign up (an HTTP batch), one of them gets a webhook channel pointing at
a receiver this script runs, their résumés arrive (structured HTTP events), five jobs
across fields are posted (straight to RabbitMQ, as a job board's backend would), then
an application moves to interview (a binary-mode HTTP event) and the interview is
booked in an hour (its one-hour reminder is due a few seconds later). The script
waits for the outcomes and prints them: e-mails in the outbox, each person's in-app
inbox (through the API), the signed webhook deliveries it received, and where to
look next.

Settings come from the same HERALD_* variables as ``make run`` (gateway address,
broker, database, data directory, secret key). Users, résumés and jobs keep their
ids, so running it again updates them; each run adds a fresh status change and
interview, and creates one API key (``--api-key`` reuses yours).
"""

from __future__ import annotations

import argparse
import asyncio
import email.parser
import email.policy
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import asyncpg
import httpx
import jwt

from shared.apikeys import create_api_key
from shared.bus import exchange_name
from shared.db import ensure_database, migrate
from shared.settings import Settings, load_settings

from . import data
from .webhooks import Receiver

CE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
# the interview starts this long after an hour from now: its 1-hour reminder is due
# that many seconds into the demo
REMINDER_IN = timedelta(seconds=8)


class DemoError(RuntimeError):
    """Something the person running the demo has to fix; the message says what."""


@dataclass
class Run:
    settings: Settings
    gateway: str
    api_key: str
    receiver: Receiver
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    published: list[tuple[str, str, int]] = field(default_factory=list)
    webhook_note: str | None = None

    def note(self, how: str, type_: str, count: int) -> None:
        """Count what was published, one line per way and type."""
        if self.published and self.published[-1][:2] == (how, type_):
            count += self.published.pop()[2]
        self.published.append((how, type_, count))

    @property
    def mail_in_outbox(self) -> bool:
        """No SMTP server or SendGrid key: the dispatcher writes .eml files (here,
        when the platform shares this shell's HERALD_DATA_DIR)."""
        configured = self.settings.smtp_host or self.settings.sendgrid_api_key
        return not configured and self.settings.outbox_dir.is_dir()

    def token(self, user_id: str) -> str:
        """A user's bearer token, as your product's login would issue it (HS256)."""
        assert self.settings.secret_key is not None
        claims = {"sub": user_id, "exp": int(time.time()) + 3600}
        return jwt.encode(claims, self.settings.secret_key.get_secret_value(), "HS256")

    def as_user(self, user_id: str) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.token(user_id)}"}
        return httpx.AsyncClient(base_url=self.gateway, headers=headers, timeout=10)

    def as_system(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return httpx.AsyncClient(base_url=self.gateway, headers=headers, timeout=10)


def cloudevent(type_: str, payload: dict[str, Any], **attributes: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": data.SOURCE,
        "type": type_,
        "time": datetime.now(UTC).isoformat(),
        **attributes,
        "data": payload,
    }


# -- publishing -------------------------------------------------------------------


async def post_events(
    run: Run, body: Any, content_type: str, how: str, type_: str, **headers: str
) -> None:
    async with run.as_system() as client:
        answer = await client.post(
            "/v1/events",
            content=json.dumps(body),
            headers={"content-type": content_type, **headers},
        )
    if answer.status_code not in (200, 202):
        raise DemoError(f"POST /v1/events answered {answer.status_code}: {answer.text}")
    run.note(how, type_, len(body) if isinstance(body, list) else 1)


async def publish_amqp(run: Run, events: list[dict[str, Any]]) -> None:
    """What a backend with a RabbitMQ connection does: persistent, confirmed messages
    on the events exchange, routing key = type (docs/integrating.md)."""
    connection = await aio_pika.connect(run.settings.amqp_url.get_secret_value())
    async with connection:
        channel = await connection.channel()  # publisher confirms are on by default
        exchange = await channel.get_exchange(exchange_name(run.settings.namespace))
        for event in events:
            await exchange.publish(
                aio_pika.Message(
                    json.dumps(event).encode(),
                    content_type=CE,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=event["id"],
                    type=event["type"],
                ),
                routing_key=event["type"],
            )
    run.note("AMQP", events[0]["type"], len(events))


async def publish_board(run: Run) -> datetime:
    """Everything the board publishes; the interview's start."""
    await post_events(
        run,
        [cloudevent("user.signed_up", p.signed_up()) for p in data.PEOPLE],
        BATCH,
        "HTTP batch",
        "user.signed_up",
    )
    await wait_for(lambda: all_known(run), 30, "Herald to record the three sign-ups")
    await add_webhook(run, data.AMARA.user_id)
    posted = datetime.now(UTC).isoformat()
    await publish_amqp(run, [cloudevent("job.posted", job) for job in data.jobs(posted)])
    for person in data.PEOPLE:
        resume = {"user_id": person.user_id, **person.resume}
        await post_events(
            run, cloudevent("resume.upserted", resume), CE, "HTTP structured", "resume.upserted"
        )
    # the application's wording names the job: let the matcher store the jobs first
    # (a known match in the inbox means its job is stored, this run or an earlier one)
    await wait_for(lambda: matches_known(run), 30, "the matcher to match the résumés")
    starts = (datetime.now(UTC) + timedelta(hours=1) + REMINDER_IN).replace(microsecond=0)
    application = {
        "application_id": f"{data.APPLICATION_PREFIX}{run.started:%Y%m%d%H%M%S}",
        "user_id": data.AMARA.user_id,
        "job_id": "demo-job-icu-nurse",
        "old_status": "applied",
        "new_status": "interview",
        "note": f"The ward manager would like to meet you at {starts:%H:%M} UTC today.",
    }
    event = cloudevent("application.status_changed", application)
    binary = {f"ce-{k}": quote(str(v)) for k, v in event.items() if k != "data"}
    await post_events(run, application, "application/json", "HTTP binary", event["type"], **binary)
    meeting = {
        "meeting_id": data.MEETING_ID,
        "user_id": data.AMARA.user_id,
        "title": "Interview: Critical Care Staff Nurse, Northgate General Hospital",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(minutes=45)).isoformat(),
        "join_url": "https://meet.example.org/demo-amara-icu",
    }
    await post_events(
        run, cloudevent("meeting.scheduled", meeting), CE, "HTTP structured", "meeting.scheduled"
    )
    return starts


async def add_webhook(run: Run, user_id: str) -> None:
    """Give ``user_id`` a webhook to the demo's receiver, replacing the one an
    earlier run left (its receiver is gone)."""
    async with run.as_user(user_id) as client:
        # listings show a URL only as scheme://host/… (URLs are credentials): the
        # demo's users' webhooks on the receiver's host are the demo's own
        mine = f"http://{run.receiver.host}/…"
        for channel in (await client.get("/v1/me/channels")).json():
            if channel["type"] == "webhook" and channel["url"] == mine:
                await client.delete(f"/v1/me/channels/{channel['id']}")
        answer = await client.post(
            "/v1/me/channels", json={"type": "webhook", "url": run.receiver.url(user_id)}
        )
    if answer.status_code == 201:
        run.receiver.secrets[user_id] = answer.json()["secret"]
    elif answer.status_code == 422 and "public address" in answer.text:
        run.webhook_note = (
            "skipped: the gateway refused a webhook on 127.0.0.1 (the SSRF guard). "
            "`make run` exempts 127.0.0.1/32; if you started Herald otherwise, set "
            "HERALD_ALLOW_PRIVATE_URLS=127.0.0.1/32 for it."
        )
    else:
        raise DemoError(f"POST /v1/me/channels answered {answer.status_code}: {answer.text}")


# -- watching -----------------------------------------------------------------------


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise DemoError(f"gave up after {seconds:.0f} s waiting for {what}")
        await asyncio.sleep(1.0)


async def all_known(run: Run) -> bool:
    for person in data.PEOPLE:
        async with run.as_user(person.user_id) as client:
            if (await client.get("/v1/me/preferences")).status_code != 200:
                return False
    return True


async def inbox(run: Run, user_id: str, **params: str) -> list[dict[str, Any]]:
    async with run.as_user(user_id) as client:
        answer = await client.get("/v1/me/notifications", params={"limit": "100", **params})
    if answer.status_code == 429:  # polled too eagerly: come back later
        return []
    answer.raise_for_status()
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def matches_known(run: Run) -> bool:
    for person, job_id in zip(data.PEOPLE, data.MATCHES, strict=True):
        items = await inbox(run, person.user_id, type="job_match")
        if not any(i["data"].get("job_id") == job_id for i in items):
            return False
    return True


def outbox(run: Run) -> list[tuple[Path, str, str]]:
    """(file, to, subject) of the demo people's e-mails written since the run began."""
    found = []
    addresses = {p.email for p in data.PEOPLE}
    since = run.started.timestamp() - 1
    directory = run.settings.outbox_dir
    for path in sorted(directory.glob("*.eml"), key=lambda p: p.stat().st_mtime):
        if path.stat().st_mtime < since:
            continue
        with path.open("rb") as file:
            headers = email.parser.BytesHeaderParser(policy=email.policy.default).parse(file)
        to = str(headers["To"] or "")
        if any(a in to for a in addresses):
            found.append((path, to, " ".join(str(headers["Subject"] or "").split())))
    return found


async def missing_outcomes(run: Run) -> list[str]:
    """What has not shown up yet of this run's status change and reminder: Amara's
    inbox, her e-mail and, with a webhook, her receiver."""
    wanted = {"application_status", "meeting_reminder"}
    since = run.started.isoformat()
    missing = []
    kinds = {i["type"] for i in await inbox(run, data.AMARA.user_id, since=since)}
    missing += [f"{k} in the inbox" for k in sorted(wanted - kinds)]
    mails = [s for _, to, s in outbox(run) if data.AMARA.email in to]
    if run.mail_in_outbox and len(mails) < len(wanted):
        missing.append(f"{len(wanted) - len(mails)} e-mail(s) in the outbox")
    if data.AMARA.user_id in run.receiver.secrets:
        types = {(d.payload or {}).get("type") for d in run.receiver.deliveries}
        missing += [f"{k} by webhook" for k in sorted(wanted - types)]
    return missing


# -- the report -----------------------------------------------------------------------


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


async def report(run: Run, starts: datetime) -> None:
    print(f"\nPublished to {run.gateway} and {exchange_name(run.settings.namespace)}:")
    for how, type_, count in run.published:
        print(f"  {how:16} {count} x {type_}")
    print(f"  (the interview starts {starts:%H:%M:%S} UTC: its 1-hour reminder is due now)")

    print(f"\nE-mails written to the outbox ({_relative(run.settings.outbox_dir)}):")
    if not run.mail_in_outbox:
        print(
            "  none here: mail goes to the configured SMTP server or SendGrid, or the "
            "platform's HERALD_DATA_DIR is not this shell's"
        )
    for path, to, subject in outbox(run):
        print(f"  {to:40} {subject}\n  {'':40} {_relative(path)}")

    print("\nIn-app inboxes (GET /v1/me/notifications, newest first):")
    for person in data.PEOPLE:
        items = await inbox(run, person.user_id)
        new = sum(1 for i in items if datetime.fromisoformat(i["delivered_at"]) >= run.started)
        print(f"  {person.user_id} ({person.name}): {len(items)} items, {new} from this run")
        for item in items[:6]:
            print(f"    {item['type']:20} {item['title']}")

    print("\nWebhook deliveries received (Standard Webhooks signatures checked):")
    if run.webhook_note:
        print(f"  {run.webhook_note}")
    for d in run.receiver.deliveries:
        payload = d.payload or {}
        verdict = "signature verified" if d.verified else f"REFUSED: {d.error}"
        title = payload.get("data", {}).get("title", "")
        print(f"  {d.user_id}  {payload.get('type', '?'):20} {title[:50]:50} {verdict}")
        print(f"  {'':12}webhook-id {d.webhook_id}")

    amara = data.AMARA.user_id
    newest = await inbox(run, amara, type="meeting_reminder")
    print("\nLook next (the token is Amara's for an hour; the key is shown only here):")
    print(f"  export TOKEN={run.token(amara)}")
    print(f"  export KEY={run.api_key}")
    print(f'  curl -s {run.gateway}/v1/me/notifications -H "Authorization: Bearer $TOKEN"')
    print(f'  curl -sN {run.gateway}/v1/me/notifications/stream -H "Authorization: Bearer $TOKEN"')
    if newest:
        deliveries = f"/v1/admin/notifications/{newest[0]['id']}/deliveries"
        print(f'  curl -s {run.gateway}{deliveries} -H "X-API-Key: $KEY"')
    print(f'  curl -s {run.gateway}/v1/admin/queues -H "X-API-Key: $KEY"')
    print(f"  {run.gateway}/docs                  the whole HTTP API")
    print("  herald parked list                    anything Herald could not handle")
    print("  docs/integrating.md, docs/asyncapi.yaml   how your systems publish and listen")


# -- main -------------------------------------------------------------------------------


async def new_api_key(settings: Settings) -> str:
    dsn = settings.database_url.get_secret_value()
    await ensure_database(dsn)
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        _, key = await create_api_key(conn, "demo", ["events:write", "admin"])
    finally:
        await conn.close()
    return key


def gateway_url(settings: Settings) -> str:
    host = settings.gateway_host
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    return f"http://{host}:{settings.gateway_port}"


async def demo(args: argparse.Namespace) -> int:
    settings = load_settings()
    gateway = (args.gateway or gateway_url(settings)).rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            ready = (await client.get(f"{gateway}/readyz")).status_code == 200
    except httpx.HTTPError:
        ready = False
    if not ready:
        raise DemoError(f"no Herald answers at {gateway}: start it with `make run` first")
    receiver = Receiver()
    await receiver.start()
    try:
        key = args.api_key or await new_api_key(settings)
        run = Run(settings, gateway, key, receiver)
        print(f"Herald at {gateway}; webhook receiver on {receiver.url('<user>')}")
        starts = await publish_board(run)
        print("Published; waiting for the notifications (about ten seconds)...")
        missing: list[str] = []

        async def arrived() -> bool:
            missing[:] = await missing_outcomes(run)
            return not missing

        try:
            await wait_for(arrived, args.timeout, "the notifications")
        except DemoError as exc:
            raise DemoError(f"{exc}; still missing: {', '.join(missing)}") from None
        await asyncio.sleep(1.0)  # stragglers: the last e-mail or webhook of a batch
        await report(run, starts)
    finally:
        await receiver.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n")[0])
    parser.add_argument("--gateway", help="gateway URL (default: HERALD_GATEWAY_HOST/PORT)")
    parser.add_argument("--api-key", help="an API key with events:write and admin")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(demo(args))
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
