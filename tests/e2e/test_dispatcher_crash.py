"""SIGKILL the dispatcher in the middle of a batch: nothing is lost, and a repeat
carries the same idempotency key (webhook-id)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import defaultdict

import asyncpg

from tests.e2e.conftest import Platform
from tests.e2e.test_platform import CE, cloudevent, post, user
from tests.receivers import Receiver, Reply
from tests.support import eventually

BATCH = 150


async def test_sigkill_mid_batch_loses_nothing_and_repeats_keep_their_key(
    platform: Platform, api_key: str, pool: asyncpg.Pool
) -> None:
    assert (await post(platform, api_key, user("kim"))).status_code == 202
    await eventually(
        lambda: pool.fetchval("SELECT true FROM users WHERE user_id = 'kim'"), what="user stored"
    )
    # only the webhook counts here: the welcome e-mail and inbox are switched off
    await pool.execute(
        """INSERT INTO preferences (user_id, email_enabled, channels)
           VALUES ('kim', false, '{"inapp": false}')"""
    )
    async with Receiver("webhook") as receiver:
        # slow answers keep deliveries in flight, sent but not yet recorded, when
        # the kill comes (a dispatcher sends the whole batch at once)
        receiver.script("*", *[Reply(204, delay=0.5) for _ in range(BATCH * 2)])
        added = platform.herald(
            "endpoint", "add", "--user", "kim", "--type", "webhook", "--url", f"{receiver.url}/h"
        )
        assert added.returncode == 0, added.stderr
        batch = [
            cloudevent(
                "notification.requested",
                {"user_id": "kim", "type": "job_update", "title": f"Update {n}", "body": "..."},
            )
            for n in range(BATCH)
        ]
        sent = await post(
            platform,
            api_key,
            batch,
            **{**CE, "content-type": "application/cloudevents-batch+json"},
        )
        assert sent.status_code == 202, sent.text

        await eventually(lambda: len(receiver.requests) >= 20, what="the batch under way")
        platform.processes["dispatcher"].send_signal(signal.SIGKILL)
        await asyncio.to_thread(platform.processes["dispatcher"].wait, 10)
        recorded_at_kill = await pool.fetchval(
            """SELECT count(*) FROM deliveries d JOIN notifications n ON n.id = d.notification_id
               WHERE n.user_id = 'kim' AND d.channel = 'webhook' AND d.status = 'delivered'"""
        )
        assert recorded_at_kill < BATCH, "the kill came too late to prove anything"

        platform.start("dispatcher")

        def delivered_ids() -> set[str]:
            return {json.loads(r.body)["data"]["id"] for r in receiver.requests}

        # deliveries the killed process held come back when its lease runs out
        await eventually(
            lambda: len(delivered_ids()) == BATCH, timeout=60, what="every notification"
        )
        await eventually(
            lambda: pool.fetchval(
                """SELECT count(*) = $1 FROM deliveries d JOIN notifications n
                   ON n.id = d.notification_id
                   WHERE n.user_id = 'kim' AND d.channel = 'webhook' AND d.status = 'delivered'""",
                BATCH,
            ),
            # a delivery sent just before the kill but not yet recorded is sent
            # again (same webhook-id) once the dead process's claim runs out
            timeout=60,
            what="history says delivered",
        )
        keys: defaultdict[str, set[str]] = defaultdict(set)
        for r in receiver.requests:
            keys[json.loads(r.body)["data"]["id"]].add(r.headers["webhook-id"])
    # sent before the kill but not recorded: those went again after the restart
    assert len(receiver.requests) > BATCH, "nothing was sent twice: the kill proved nothing"
    assert all(len(k) == 1 for k in keys.values()), "a repeat came with a new webhook-id"
