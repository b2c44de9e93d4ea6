"""From a draft to recorded deliveries: de-duplication, channel choice and holds
(quiet hours, a requested send time), recorded in one statement (alone, or in a
batch with other notifications)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

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
from .ratelimit import Turn
from .recipients import Recipient


@dataclass(frozen=True)
class Planned:
    due: list[history.Due]
    # "created", "existing" (a redelivered event) or "duplicate" (de-duplicated)
    outcome: str
    # the deliveries in ``due`` recorded claimed by this dispatcher: id -> token
    claims: dict[uuid.UUID, datetime] = field(default_factory=dict)
    entry: history.Entry | None = None
    # rate-limit reservations started before the record, for the claimed deliveries
    turns: Mapping[uuid.UUID, Awaitable[Turn]] = field(default_factory=dict)


Recorder = Callable[[history.Entry], Awaitable[history.Recorded]]


def entry(
    draft: history.Draft,
    recipient: Recipient,
    *,
    strategy: DedupStrategy,
    repeatable: bool = False,
    only: list[str] | tuple[str, ...] | None = None,
    endpoint_ids: Collection[uuid.UUID] | None = None,
    deliver_at: datetime | None = None,
    source_event_id: str,
    correlation_id: str,
    now: datetime,
    claim: float | None = None,
) -> history.Entry:
    """What to record for ``draft``: its de-duplication mark, and a delivery per
    wanted endpoint, held by quiet hours or a requested send time."""
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
        if endpoint.type not in wanted or (
            endpoint_ids is not None and endpoint.id not in endpoint_ids
        ):
            continue
        # the inbox is silent: quiet hours do not hold it back, a send time does
        hold = (
            later if endpoint.type == INAPP else max(filter(None, (later, quiet_end)), default=None)
        )
        plan_rows.append((endpoint, hold))
    return history.Entry(
        draft,
        plan_rows,
        (draft.subject, rule.content_key, rule.repeat_after) if rule else None,
        source_event_id,
        correlation_id,
        claim,
    )


async def plan(record: Recorder, e: history.Entry) -> Planned:
    """Record ``e`` and say which of its deliveries are due now."""
    recorded = await record(e)
    n = e.draft.notification
    if recorded.outcome == "existing":
        # the same event again (a crash before its ack): finish what is pending
        return Planned(recorded.pending, "existing")
    if recorded.outcome == "duplicate":
        return Planned([], "duplicate")
    return Planned(history.due_now(n, e.plan), "created", recorded.claims, e)
