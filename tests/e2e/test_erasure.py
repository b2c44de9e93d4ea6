"""Erasure as a user would check it: after ``user.deleted``, nothing Herald stores
(database, outbox, embedded index, queues) holds their e-mail address or name."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg

from shared.bus import catalog
from shared.settings import Settings
from tests.e2e.conftest import Platform
from tests.e2e.test_platform import cloudevent, post
from tests.support import eventually, queues_named

# distinctive, so that a hit can only be this user's
EMAIL = "zephyrine.quillfeather@erasure.example"
NAME = "Zephyrine Quillfeather"


async def database_hits(pool: asyncpg.Pool, needles: list[str]) -> list[str]:
    """Every table of the database, each row as text, searched for the needles."""
    tables = await pool.fetch(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    hits = []
    for (table,) in tables:
        rows = await pool.fetch(f'SELECT t::text AS row FROM "{table}" t')
        hits += [
            f"{table}: {r['row'][:120]}"
            for r in rows
            if any(n.lower() in r["row"].lower() for n in needles)
        ]
    return hits


def file_hits(directory: Path, needles: list[str]) -> list[str]:
    """Every file under the data directory (outbox, embedded index), searched."""
    hits = []
    for path in directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            if any(n.lower().encode() in data for n in needles):
                hits.append(str(path.relative_to(directory)))
    return hits


async def queue_hits(settings: Settings, needles: list[str]) -> list[str]:
    """Every message in every queue of the namespace, read without taking it (the
    channel closes unacked, so each goes back where it was). The gateway's live
    queues are its own connection's (exclusive) and are drained as they fill."""
    hits = []
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    try:
        for name in queues_named(f"{settings.namespace}."):
            if ".live." in name:
                continue
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
                while message := await queue.get(no_ack=False, fail=False):
                    text = (message.body + json.dumps(message.headers or {}).encode()).lower()
                    if any(n.lower().encode() in text for n in needles):
                        hits.append(f"{name}: {message.body[:100]!r}")
            finally:
                await channel.close()
    finally:
        await connection.close()
    return hits


async def publish_to_queue(settings: Settings, queue: str, body: dict[str, Any]) -> None:
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.default_exchange.publish(
            aio_pika.Message(json.dumps(body).encode(), delivery_mode=2), routing_key=queue
        )
    finally:
        await connection.close()


async def test_after_erasure_nothing_herald_stores_holds_the_user_s_email_or_name(
    platform: Platform, api_key: str, pool: asyncpg.Pool, settings: Settings
) -> None:
    user_id = f"u-erase-{uuid.uuid4().hex[:8]}"
    needles = [EMAIL, NAME]
    ns = settings.namespace
    signed_up = {"user_id": user_id, "email": EMAIL, "name": NAME, "timezone": "Europe/Paris"}
    assert (await post(platform, api_key, cloudevent("user.signed_up", signed_up))).is_success
    resume = {"user_id": user_id, "text": f"{NAME}, data engineer: Python, SQL and Kafka."}
    assert (await post(platform, api_key, cloudevent("resume.upserted", resume))).is_success
    note = {"user_id": user_id, "type": "note", "title": "Hello", "body": f"Dear {NAME}, hi."}
    assert (await post(platform, api_key, cloudevent("notification.requested", note))).is_success

    # what sits in queues: a sign-up and a résumé that broke their schema (parked at
    # once), and a delivery waiting out a long deferral; a bystander's beside them
    bad_sign_up = cloudevent("user.signed_up", {**signed_up, "timezone": "Not/AZone"})
    bad_resume = cloudevent("resume.upserted", {**resume, "desired_salary": -1})
    bystander = cloudevent(
        "user.signed_up", {"user_id": "bystander", "email": "b@x.example", "timezone": "Nope/No"}
    )
    for event in (bad_sign_up, bad_resume, bystander):
        assert (await post(platform, api_key, event)).status_code == 422  # refused at the door
    exchange_events = [("user.signed_up", bad_sign_up), ("resume.upserted", bad_resume)]
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"{ns}.events")
        for key, event in [*exchange_events, ("user.signed_up", bystander)]:
            await exchange.publish(
                aio_pika.Message(json.dumps(event).encode(), delivery_mode=2), routing_key=key
            )
    finally:
        await connection.close()
    deferred = catalog.DISPATCHER_DELIVERIES.names(ns).retry(1800.0)
    waiting = {
        "user_id": user_id,
        "delivery_id": str(uuid.uuid4()),
        "notification_id": str(uuid.uuid4()),
        "channel": "email",
        "address": EMAIL,
    }
    await publish_to_queue(settings, deferred, cloudevent("delivery.due", waiting))
    other = {**waiting, "user_id": "bystander", "address": "b@x.example"}
    await publish_to_queue(settings, deferred, cloudevent("delivery.due", other))

    data_dir = settings.data_dir

    async def stored_everywhere() -> bool:
        return (
            bool(await database_hits(pool, needles))
            and any(p.startswith("outbox") for p in file_hits(data_dir, needles))
            and len(await queue_hits(settings, needles)) >= 3  # two parked, one deferred
            and bool(await pool.fetchval("SELECT true FROM resumes WHERE user_id = $1", user_id))
        )

    await eventually(stored_everywhere, timeout=60, interval=0.5, what="the user stored")

    # erasure by event takes its own grant (events:write alone is refused)
    eraser = platform.herald(
        "apikey", "create", "--scope", "events:write", "--scope", "users:erase"
    )
    assert eraser.returncode == 0, eraser.stderr
    erase = cloudevent("user.deleted", {"user_id": user_id})
    assert (await post(platform, eraser.stdout.strip(), erase)).status_code == 202

    async def nothing_left() -> bool:
        return not (
            await database_hits(pool, needles)
            or file_hits(data_dir, needles)
            or await queue_hits(settings, needles)
        )

    try:
        await eventually(nothing_left, timeout=30, interval=0.5, what="the user erased")
    except AssertionError:
        left = [
            *await database_hits(pool, needles),
            *file_hits(data_dir, needles),
            *await queue_hits(settings, needles),
        ]
        raise AssertionError(f"still stored after erasure: {left}") from None
    # the bystander's messages were left where they were
    kept = await queue_hits(settings, ["b@x.example"])
    assert len(kept) == 2, kept
