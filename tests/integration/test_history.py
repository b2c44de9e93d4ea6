"""Recording notifications in batches (services/dispatcher/history.record_many), on
the real PostgreSQL: a batch decides exactly what one-by-one recording would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from services.dispatcher import history, recipients
from services.dispatcher.channels import Notification, delivery_id
from services.dispatcher.policy import DedupRule
from tests.integration.conftest import endpoint_sealer

REPEAT = timedelta(hours=24)


async def _user(conn: asyncpg.Connection) -> recipients.Recipient:
    user_id = f"u-{uuid.uuid4().hex[:10]}"
    await recipients.record_user(conn, user_id, f"{user_id}@example.com", "Ada", "UTC", "en")
    found = await recipients.load(conn, endpoint_sealer(), user_id)
    assert found is not None
    return found


def _entry(
    user: recipients.Recipient,
    title: str,
    *,
    mark: str | None = "same-subject",
    repeat_after: timedelta | None = None,
    claim: float | None = None,
    hold: datetime | None = None,
    nid: uuid.UUID | None = None,
) -> history.Plan:
    n = Notification(
        id=nid or uuid.uuid4(),
        user_id=user.user_id,
        type="job_update",
        title=title,
        body="...",
        priority="normal",
        created_at=datetime.now(UTC),
    )
    inbox = next(e for e in user.endpoints if e.type == "inapp")
    return history.Plan(
        notification=n,
        kind="generic",
        dedup_key="subject-1",
        sends=(history.Send(id=delivery_id(n.id, inbox.id), endpoint=inbox, held_until=hold),),
        dedup=DedupRule(mark, repeat_after) if mark else None,
        source_event_id=str(n.id),
        correlation_id=str(n.id),
        claim=claim,
    )


async def test_two_notifications_with_one_mark_in_one_batch_go_once(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        user = await _user(conn)
        first, second, other = (
            _entry(user, "A"),
            _entry(user, "A again"),
            _entry(user, "B", mark="another"),
        )
        done = await history.record_many(conn, [first, second, other])
    assert [d.outcome for d in done] == ["created", "duplicate", "created"]


async def test_a_repeatable_mark_goes_again_only_after_its_window(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        user = await _user(conn)
        once = await history.record_many(conn, [_entry(user, "A", repeat_after=REPEAT)])
        again = await history.record_many(conn, [_entry(user, "A", repeat_after=REPEAT)])
        await conn.execute(
            "UPDATE dedup_marks SET sent_at = now() - interval '25 hours' WHERE user_id = $1",
            user.user_id,
        )
        later = await history.record_many(conn, [_entry(user, "A", repeat_after=REPEAT)])
    assert [once[0].outcome, again[0].outcome, later[0].outcome] == [
        "created",
        "duplicate",
        "created",
    ]


async def test_a_recorded_notification_again_is_existing_with_what_is_still_pending(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        user = await _user(conn)
        e = _entry(user, "A", mark=None)
        assert (await history.record_many(conn, [e]))[0].outcome == "created"
        # the same event twice in one batch, and once more on its own
        twice = await history.record_many(conn, [e, e])
        assert [t.outcome for t in twice] == ["existing", "existing"]
        assert [d.channel for d in twice[0].pending] == ["inapp"]


async def test_deliveries_due_now_are_recorded_claimed_when_asked_and_held_ones_never(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        user = await _user(conn)
        now = _entry(user, "now", mark=None, claim=30.0)
        later = _entry(user, "later", mark=None, claim=30.0, hold=datetime.now(UTC) + REPEAT)
        plain = _entry(user, "plain", mark=None)
        done = await history.record_many(conn, [now, later, plain])
        rows = {
            r["title"]: r
            for r in await conn.fetch(
                """SELECT n.title, d.id, d.status, d.claimed_until FROM deliveries d
                   JOIN notifications n ON n.id = d.notification_id WHERE n.user_id = $1""",
                user.user_id,
            )
        }
    assert list(done[0].claims) == [rows["now"]["id"]]
    assert done[0].claims[rows["now"]["id"]] == rows["now"]["claimed_until"]
    assert rows["now"]["claimed_until"] > datetime.now(UTC) + timedelta(seconds=20)
    assert done[1].claims == {}
    assert rows["later"]["status"] == "held"
    assert done[2].claims == {}
    assert rows["plain"]["claimed_until"] is None
