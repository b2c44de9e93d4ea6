"""Users as the dispatcher sees them: who they are, what they want, where they are
reachable. ``user.signed_up`` keeps the ``users`` rows and the implicit endpoints;
``preferences`` are the gateway's, and a user without a row there has the defaults.
The user's zone is the one they chose (``preferences.timezone``) before the
product's (``users.timezone``).

An endpoint that no configured key opens is left out of its owner's endpoints and
reported (``LeftOut``), never raised: recipients are loaded many at a time, and one
unreadable row must not fail everyone else's notifications, nor its owner's e-mail."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from asyncpg import Record

from shared.db import Connection
from shared.endpoints import Endpoint, Unreadable, opened
from shared.sealing import Sealer

from .metrics import DispatcherMetrics
from .policy import EMAIL, INAPP, Preferences, QuietHours, ScoreRoute

# told of each endpoint left out (to log and count it)
LeftOut = Callable[[Unreadable], None]


log = structlog.get_logger("herald.dispatcher")


def _ignore(endpoint: Unreadable) -> None:
    pass


def reported(metrics: DispatcherMetrics, service: str) -> LeftOut:
    """Log (the reason, never a value) and count each endpoint left out: the
    operator's keys are wrong, and only they can fix it."""

    def report(endpoint: Unreadable) -> None:
        metrics.child(metrics.endpoints_unreadable, service, endpoint.type).inc()
        log.error(
            "endpoint_unreadable",
            endpoint_id=str(endpoint.id),
            channel=endpoint.type,
            reason=endpoint.reason,
        )

    return report


@dataclass(frozen=True)
class Recipient:
    user_id: str
    email: str
    name: str
    locale: str
    prefs: Preferences
    endpoints: tuple[Endpoint, ...]


async def record_user(
    conn: Connection, user_id: str, email: str, name: str, timezone: str, locale: str
) -> bool:
    """Upsert the user and their implicit e-mail and in-app endpoints. True the
    first time this user is seen."""
    first = await conn.fetchval(
        """INSERT INTO users AS u (user_id, email, name, timezone, locale)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name,
               timezone = EXCLUDED.timezone, locale = EXCLUDED.locale, updated_at = now()
           RETURNING (xmax = 0)""",
        user_id,
        email,
        name,
        timezone,
        locale,
    )
    await conn.execute(
        """INSERT INTO channel_endpoints (id, user_id, type, address)
           VALUES ($1, $2, 'email', $3), ($4, $2, 'inapp', NULL)
           ON CONFLICT (user_id, type) WHERE type IN ('email', 'inapp')
           DO UPDATE SET address = EXCLUDED.address""",
        uuid.uuid4(),
        user_id,
        email,
        uuid.uuid4(),
    )
    return bool(first)


async def load(
    conn: Connection, sealer: Sealer, user_id: str, *, left_out: LeftOut = _ignore
) -> Recipient | None:
    return (await load_many(conn, sealer, [user_id], left_out=left_out))[0]


async def load_many(
    conn: Connection, sealer: Sealer, user_ids: list[str], *, left_out: LeftOut = _ignore
) -> list[Recipient | None]:
    """The recipients, in the order asked (None for a user not known), in one query;
    their endpoints' credentials opened with ``sealer``, those it cannot open left
    out and passed to ``left_out``."""
    rows = await conn.fetch(
        """SELECT u.user_id, u.email, u.name, u.locale,
                  COALESCE(p.timezone, u.timezone) AS timezone, p.email_enabled,
                  p.digest_frequency, p.notify_new_matches, p.notify_application_updates,
                  p.notify_reminders, p.notify_digests, p.min_match_score,
                  p.quiet_hours_start, p.quiet_hours_end, p.channels, p.score_routes,
                  (SELECT COALESCE(json_agg(json_build_array(
                              e.id, e.type, e.url_sealed, e.secret_sealed, e.url,
                              e.secret, e.chat_id, e.address)
                              ORDER BY e.created_at, e.type), '[]')
                   FROM channel_endpoints e
                   WHERE e.user_id = u.user_id AND e.enabled) AS endpoints
           FROM users u LEFT JOIN preferences p USING (user_id)
           WHERE u.user_id = ANY($1::text[])""",
        list(dict.fromkeys(user_ids)),
    )
    found = {row["user_id"]: _recipient(row, sealer, left_out) for row in rows}
    return [found.get(u) for u in user_ids]


def _recipient(row: Record, sealer: Sealer, left_out: LeftOut) -> Recipient:
    endpoints = []
    for id_, type_, url_sealed, secret_sealed, url, secret, chat_id, address in json.loads(
        row["endpoints"]
    ):
        endpoint = opened(
            sealer,
            id=uuid.UUID(id_),
            user_id=row["user_id"],
            type=type_,
            url_sealed=url_sealed,
            secret_sealed=secret_sealed,
            url=url,
            secret=secret,
            chat_id=chat_id,
            address=address,
        )
        if isinstance(endpoint, Unreadable):
            left_out(endpoint)
        else:
            endpoints.append(endpoint)
    return Recipient(
        user_id=row["user_id"],
        email=row["email"],
        name=row["name"],
        locale=row["locale"],
        prefs=_preferences(dict(row)),
        endpoints=tuple(endpoints),
    )


def _preferences(row: dict[str, object]) -> Preferences:
    if row.get("email_enabled") is None:  # no preferences row yet: the defaults
        return Preferences(timezone=str(row["timezone"]))
    start, end = row["quiet_hours_start"], row["quiet_hours_end"]
    routes = row["score_routes"]
    return Preferences(
        timezone=str(row["timezone"]),
        email_enabled=bool(row["email_enabled"]),
        digest_frequency=str(row["digest_frequency"]),
        notify_new_matches=bool(row["notify_new_matches"]),
        notify_application_updates=bool(row["notify_application_updates"]),
        notify_reminders=bool(row["notify_reminders"]),
        notify_digests=bool(row["notify_digests"]),
        min_match_score=float(row["min_match_score"]),  # type: ignore[arg-type]
        quiet_hours=QuietHours(start, end) if start and end else None,  # type: ignore[arg-type]
        channels=json.loads(str(row["channels"])) if row["channels"] else {},
        score_routes=tuple(ScoreRoute.parse(r) for r in json.loads(str(routes))) if routes else (),
    )


def implicit(endpoint: Endpoint) -> bool:
    return endpoint.type in (EMAIL, INAPP)
