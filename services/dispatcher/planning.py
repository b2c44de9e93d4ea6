"""One notification's plan: everything about it decided once, then recorded.

A handler says what it wants said in a ``Draft``; ``Planner.record`` decides, in
this order, and passes the answers along in a frozen ``Plan`` that nothing
re-derives:

1. where it goes (``sends``): the recipient's endpoints that are switched on and
   asked for, each with its delivery id (stable across retries: receivers
   de-duplicate on it) and, when quiet hours or a send time hold it, until when;
2. the unsubscribe link, when one of them is e-mail;
3. its words, from the templates (HTML with that link's footer only when an e-mail
   carries it);
4. its de-duplication mark;

then whether this dispatcher sends what is due itself (``delivery.make_room``), and
records it in one statement (``history.record_many``, alone or batched with other
notifications). The caller commits and hands what is due to ``delivery.hand_over``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from shared import signing
from shared.events import Event, derived_id
from shared.settings import Settings

from . import delivery
from .channels import Attachment, Notification, delivery_id
from .delivery import Planned
from .history import Plan, Recorded, Send
from .metrics import DispatcherMetrics
from .policy import (
    EMAIL,
    INAPP,
    DedupStrategy,
    choose_channels,
    content_hash,
    dedup_rule,
    quiet_until,
)
from .recipients import Recipient
from .rendering import Renderer

log = structlog.get_logger("herald.dispatcher")

# a welcome is once per user, whatever its wording (HERALD_DEDUP_STRATEGIES overrides)
DEFAULT_STRATEGIES = {"welcome": "aggressive"}


@dataclass(frozen=True)
class Draft:
    """What a handler wants said, to whom: the input of a plan. ``kind`` names the
    template and the preference category; ``dedup_key`` what de-duplication
    compares (a job, an application, a meeting)."""

    event: Event[Any]
    recipient: Recipient
    kind: str
    type: str
    dedup_key: str
    context: Mapping[str, Any]
    priority: str = "normal"
    link: str | None = None
    data: Mapping[str, Any] | None = None
    job_id: str | None = None
    score: float | None = None
    attachments: tuple[Attachment, ...] = ()
    # an update that may be worth hearing again (score_improved, a status change)
    repeatable: bool = False
    # endpoint types and particular endpoints asked for (None: any)
    only: Collection[str] | None = None
    endpoint_ids: Collection[uuid.UUID] | None = None
    deliver_at: datetime | None = None
    # what tells this notification apart from others of the same event
    id_parts: tuple[str, ...] = ()


Recorder = Callable[[Plan], Awaitable[Recorded]]


class Planner:
    def __init__(
        self,
        renderer: Renderer,
        settings: Settings,
        metrics: DispatcherMetrics,
        deliveries: delivery.DeliveryDeps,
        service: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._renderer = renderer
        self._settings = settings
        self._metrics = metrics
        self._deliveries = deliveries
        self._service = service
        self._clock = clock

    def plan(self, draft: Draft) -> Plan:
        """Decide everything about ``draft`` (no I/O)."""
        user, now = draft.recipient, self._clock()
        notification_id = uuid.UUID(derived_id("notification", draft.event.id, *draft.id_parts))
        sends = _sends(draft, notification_id, now)
        unsubscribe = (
            signing.unsubscribe_url(self._settings, user.user_id)
            if any(s.endpoint.type == EMAIL for s in sends)
            else None
        )
        # chat and inbox get the text without e-mail footers; e-mail gets the HTML
        rendered = self._renderer.render(
            draft.kind,
            name=user.name,
            html=unsubscribe is not None,
            html_only={"unsubscribe_url": unsubscribe} if unsubscribe else None,
            **draft.context,
        )
        data = dict(draft.data or {})
        notification = Notification(
            id=notification_id,
            user_id=user.user_id,
            type=draft.type,
            title=rendered.title,
            body=rendered.text,
            priority=draft.priority,
            created_at=now,
            data=data,
            html=rendered.html or None,
            link=draft.link,
            attachments=draft.attachments,
            unsubscribe_url=unsubscribe,
        )
        content = content_hash(notification.title, notification.body, {**data, "link": draft.link})
        return Plan(
            notification=notification,
            kind=draft.kind,
            dedup_key=draft.dedup_key,
            job_id=draft.job_id,
            score=draft.score,
            sends=sends,
            dedup=dedup_rule(self._strategy(draft.type), content, repeatable=draft.repeatable),
            source_event_id=draft.event.id,
            correlation_id=draft.event.correlation_id,
        )

    async def record(self, record: Recorder, draft: Draft) -> Planned:
        """Plan ``draft`` and record it with ``record``; counted by outcome."""
        plan = self.plan(draft)
        plan, turns = await delivery.make_room(self._deliveries, plan)
        recorded = await record(plan)
        if recorded.outcome == "existing":
            # the same event again (a crash before its ack): finish what is pending
            planned = Planned(outcome="existing", due=recorded.pending)
        elif recorded.outcome == "duplicate":
            planned = Planned(outcome="duplicate", due=[])
            log.info("notification_deduplicated", kind=draft.kind, dedup_key=draft.dedup_key)
        else:
            planned = Planned(
                outcome="created",
                due=plan.due(),
                plan=plan,
                claims=recorded.claims,
                turns={d: t for d, t in turns.items() if d in recorded.claims},
            )
        m = self._metrics
        m.child(m.notifications, self._service, draft.kind, planned.outcome).inc()
        return planned

    def _strategy(self, notification_type: str) -> DedupStrategy:
        configured = self._settings.dedup_strategies.get(notification_type)
        return DedupStrategy(configured or DEFAULT_STRATEGIES.get(notification_type, "default"))


def _sends(draft: Draft, notification_id: uuid.UUID, now: datetime) -> tuple[Send, ...]:
    """A delivery per wanted endpoint, held by quiet hours or a requested send time."""
    user, prefs = draft.recipient, draft.recipient.prefs
    wanted = set(choose_channels({e.type for e in user.endpoints}, prefs, draft.only))
    later = draft.deliver_at if draft.deliver_at is not None and draft.deliver_at > now else None
    # quiet hours are judged at the moment it would go out
    quiet_end = (
        None
        if draft.priority == "urgent"
        else quiet_until(later or now, prefs.timezone, prefs.quiet_hours)
    )
    sends = []
    for endpoint in user.endpoints:
        if endpoint.type not in wanted or (
            draft.endpoint_ids is not None and endpoint.id not in draft.endpoint_ids
        ):
            continue
        # the inbox is silent: quiet hours do not hold it back, a send time does
        hold = (
            later if endpoint.type == INAPP else max(filter(None, (later, quiet_end)), default=None)
        )
        sends.append(
            Send(id=delivery_id(notification_id, endpoint.id), endpoint=endpoint, held_until=hold)
        )
    return tuple(sends)
