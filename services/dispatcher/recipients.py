"""Users as the dispatcher sees them: who they are, what they want, where they are
reachable. ``user.signed_up`` keeps these rows; everything else reads them."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from asyncpg import Record

from shared.db import Connection
from shared.endpoints import Endpoint, opened
from shared.sealing import Sealer

from .policy import EMAIL, INAPP, Preferences, QuietHours, ScoreRoute


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
    """Upsert the user, their default preferences and their implicit e-mail and
    in-app endpoints. True the first time this user is seen."""
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
        "INSERT INTO preferences (user_id) VALUES ($1) ON CONFLICT DO NOTHING", user_id
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


async def load(conn: Connection, sealer: Sealer, user_id: str) -> Recipient | None:
    return (await load_many(conn, sealer, [user_id]))[0]


async def load_many(
    conn: Connection, sealer: Sealer, user_ids: list[str]
) -> list[Recipient | None]:
    """The recipients, in the order asked (None for a user not known), in one query;
    their endpoints' credentials opened with ``sealer``."""
    rows = await conn.fetch(
        """SELECT u.user_id, u.email, u.name, u.timezone, u.locale, p.email_enabled,
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
    found = {row["user_id"]: _recipient(row, sealer) for row in rows}
    return [found.get(u) for u in user_ids]


def _recipient(row: Record, sealer: Sealer) -> Recipient:
    endpoints = tuple(
        opened(
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
        for id_, type_, url_sealed, secret_sealed, url, secret, chat_id, address in json.loads(
            row["endpoints"]
        )
    )
    return Recipient(
        row["user_id"], row["email"], row["name"], row["locale"], _preferences(dict(row)), endpoints
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
