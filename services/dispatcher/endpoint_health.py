"""An endpoint's health: permanent failures in a row disable it, and its owner
finds a notice in their inbox saying which channel was turned off and why."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.db import Connection
from shared.endpoints import Endpoint
from shared.events import derived_id

from . import history
from .channels import DeliveryResult, Notification, Outcome, delivery_id
from .policy import EMAIL, INAPP


@dataclass(frozen=True)
class EndpointHealth:
    disabled_now: bool
    failures: int
    reason: str | None


HEALTHY = EndpointHealth(disabled_now=False, failures=0, reason=None)


async def endpoint_outcome(
    conn: Connection, endpoint: Endpoint, result: DeliveryResult, disable_after: int
) -> EndpointHealth:
    """Count permanent failures in a row; disable the endpoint after
    ``disable_after`` of them, or at once when it is gone. (Success resets the count
    in ``claims.record_attempts``.)"""
    if result.outcome is not Outcome.PERMANENT or result.our_fault:
        return HEALTHY
    reason = result.detail if result.endpoint_gone else None
    row = await conn.fetchrow(
        """WITH before AS (SELECT enabled FROM channel_endpoints WHERE id = $1 FOR UPDATE)
           UPDATE channel_endpoints e
           SET consecutive_failures = e.consecutive_failures + 1,
               enabled = e.enabled AND NOT ($2 OR e.consecutive_failures + 1 >= $3),
               disabled_reason = CASE WHEN $2 OR e.consecutive_failures + 1 >= $3
                                      THEN $4 ELSE e.disabled_reason END
           FROM before WHERE e.id = $1
           RETURNING before.enabled AS was_enabled, e.enabled, e.consecutive_failures""",
        endpoint.id,
        result.endpoint_gone,
        disable_after,
        reason or f"{disable_after} permanent failures in a row; last: {result.detail}",
    )
    if row is None:
        return HEALTHY
    return EndpointHealth(
        disabled_now=bool(row["was_enabled"]) and not row["enabled"],
        failures=int(row["consecutive_failures"]),
        reason=reason
        or f"{row['consecutive_failures']} permanent failures in a row: {result.detail}",
    )


async def tell_owner(
    conn: Connection, endpoint: Endpoint, health: EndpointHealth
) -> list[history.Due]:
    """An in-app notice that one of the user's channels was turned off, and why; the
    delivery due for it."""
    inbox = await conn.fetchrow(
        """SELECT id, user_id, type, url, chat_id, secret, address FROM channel_endpoints
           WHERE user_id = $1 AND type = $2 AND enabled""",
        endpoint.user_id,
        INAPP,
    )
    if inbox is None or endpoint.type == INAPP:
        return []
    label = endpoint.type.capitalize() if endpoint.type != EMAIL else "E-mail"
    notification = Notification(
        id=uuid.UUID(derived_id("endpoint.disabled", str(endpoint.id), str(health.failures))),
        user_id=endpoint.user_id,
        type="channel_disabled",
        title=f"{label} notifications are turned off",
        body=(
            f"We stopped sending to your {label} channel because it kept failing: "
            f"{health.reason}. Fix it and add it again in your notification settings."
        ),
        priority="high",
        created_at=datetime.now(UTC),
        data={"endpoint_id": str(endpoint.id), "channel": endpoint.type},
    )
    to_inbox = Endpoint(**dict(inbox))
    plan = history.Plan(
        notification=notification,
        kind="generic",
        dedup_key=str(endpoint.id),
        sends=(history.Send(id=delivery_id(notification.id, to_inbox.id), endpoint=to_inbox),),
        dedup=None,
        source_event_id=str(notification.id),
        correlation_id=str(notification.id),
    )
    (recorded,) = await history.record_many(conn, [plan])
    return plan.due() if recorded.outcome == "created" else []
