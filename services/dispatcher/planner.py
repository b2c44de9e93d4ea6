"""From a draft to recorded deliveries: de-duplication, channel choice and holds
(quiet hours, a requested send time), in the transaction that records them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.db import Connection
from shared.endpoints import Endpoint

from . import history
from .policy import (
    INAPP,
    DedupStrategy,
    choose_channels,
    content_hash,
    dedup_rule,
    quiet_until,
)
from .recipients import Recipient


@dataclass(frozen=True)
class Planned:
    due: list[history.Due]
    # "created", "existing" (a redelivered event) or "duplicate" (de-duplicated)
    outcome: str


async def plan(
    conn: Connection,
    draft: history.Draft,
    recipient: Recipient,
    *,
    strategy: DedupStrategy,
    repeatable: bool = False,
    only: list[str] | tuple[str, ...] | None = None,
    deliver_at: datetime | None = None,
    source_event_id: str,
    correlation_id: str,
    now: datetime,
) -> Planned:
    """Record ``draft`` once and plan its deliveries, in one statement."""
    n = draft.notification
    content = content_hash(n.title, n.body, {**n.data, "link": n.link})
    rule = dedup_rule(strategy, content, repeatable=repeatable)
    prefs = recipient.prefs
    wanted = set(choose_channels({e.type for e in recipient.endpoints}, prefs, only))
    later = deliver_at if deliver_at is not None and deliver_at > now else None
    # quiet hours are judged at the moment it would go out
    quiet_end = (
        None
        if n.priority == "urgent"
        else quiet_until(later or now, prefs.timezone, prefs.quiet_hours)
    )
    plan_rows: list[tuple[Endpoint, datetime | None]] = []
    for endpoint in recipient.endpoints:
        if endpoint.type not in wanted:
            continue
        # the inbox is silent: quiet hours do not hold it back, a send time does
        hold = (
            later if endpoint.type == INAPP else max(filter(None, (later, quiet_end)), default=None)
        )
        plan_rows.append((endpoint, hold))
    outcome = await history.record(
        conn,
        draft,
        plan_rows,
        dedup=(draft.subject, rule.content_key, rule.repeat_after) if rule else None,
        source_event_id=source_event_id,
        correlation_id=correlation_id,
    )
    if outcome == "existing":
        # the same event again (a crash before its ack): finish what is pending
        return Planned(await history.pending(conn, n.id), "existing")
    if outcome == "duplicate":
        return Planned([], "duplicate")
    return Planned(history.due_now(n, plan_rows), "created")
