"""``/v1/me/preferences``: what the calling user wants to hear, when and where.

``PUT`` replaces the whole document (a field left out takes its default); ``PATCH``
changes only the fields sent. Unknown fields are refused, so a typo is an error
rather than a silent no-op.

``preferences`` is the gateway's table alone: a user without a row has the
defaults, and the first change writes it. The time zone shown is the one the user
chose (``preferences.timezone``) or, until they choose one, the product's
(``users.timezone``, the dispatcher's, from ``user.signed_up``); only a zone sent
in a ``PUT`` or ``PATCH`` becomes the user's choice, which a later sign-up never
overwrites. The dispatcher (quiet hours) and the scheduler (digests) read the zone
the same way.
"""

from __future__ import annotations

import json
from datetime import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from fastapi import APIRouter, Body, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.db import Connection

from ..dependencies import CurrentUser, State, limited

router = APIRouter(prefix="/v1/me", tags=["preferences"])

ChannelType = Literal["email", "inapp", "webhook", "discord", "slack", "teams", "telegram"]
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


def _iana(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Paris)") from exc
    return value


class QuietHours(BaseModel):
    """Local times in the user's zone; the span may cross midnight (22:00 → 07:00)."""

    model_config = ConfigDict(extra="forbid")
    start: str = Field(pattern=HHMM, examples=["22:00"])
    end: str = Field(pattern=HHMM, examples=["07:00"])

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours need start and end to differ")
        return self


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    email_enabled: bool = True
    digest_frequency: Literal["instant", "daily", "weekly", "off"] = "instant"
    notify_new_matches: bool = True
    notify_application_updates: bool = True
    notify_reminders: bool = True
    notify_digests: bool = True
    min_match_score: float = Field(default=0.0, ge=0, le=1)
    timezone: str = Field(default="UTC", max_length=64)
    quiet_hours: QuietHours | None = None
    # a channel type switched off here gets nothing; one not named is on
    channels: dict[ChannelType, bool] = Field(default_factory=dict)

    _tz = field_validator("timezone")(_iana)


class PreferencesPatch(BaseModel):
    """Only the fields sent change; ``quiet_hours: null`` removes quiet hours."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    email_enabled: bool | None = None
    digest_frequency: Literal["instant", "daily", "weekly", "off"] | None = None
    notify_new_matches: bool | None = None
    notify_application_updates: bool | None = None
    notify_reminders: bool | None = None
    notify_digests: bool | None = None
    min_match_score: float | None = Field(default=None, ge=0, le=1)
    timezone: str | None = Field(default=None, max_length=64)
    quiet_hours: QuietHours | None = None
    channels: dict[ChannelType, bool] | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else _iana(value)

    @model_validator(mode="after")
    def _only_quiet_hours_may_be_null(self) -> PreferencesPatch:
        nulls = [
            name
            for name in self.model_fields_set
            if getattr(self, name) is None and name != "quiet_hours"
        ]
        if nulls:
            raise ValueError(f"{', '.join(sorted(nulls))} cannot be null")
        return self


def _hhmm(value: time) -> str:
    return value.strftime("%H:%M")


def _time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _unknown() -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND,
        "Herald does not know this user yet: the product publishes user.signed_up first",
    )


async def _load(conn: Connection, user_id: str) -> Preferences:
    row = await conn.fetchrow(
        """SELECT COALESCE(p.timezone, u.timezone) AS timezone, p.email_enabled,
                  p.digest_frequency, p.notify_new_matches, p.notify_application_updates,
                  p.notify_reminders, p.notify_digests,
                  p.min_match_score, p.quiet_hours_start, p.quiet_hours_end, p.channels
           FROM users u LEFT JOIN preferences p USING (user_id) WHERE u.user_id = $1""",
        user_id,
    )
    if row is None:
        raise _unknown()
    values: dict[str, Any] = {"timezone": row["timezone"]}
    if row["email_enabled"] is not None:  # no preferences row yet: the defaults
        values |= {
            k: row[k]
            for k in (
                "email_enabled",
                "digest_frequency",
                "notify_new_matches",
                "notify_application_updates",
                "notify_reminders",
                "notify_digests",
                "min_match_score",
            )
        }
        channels = row["channels"]
        values["channels"] = json.loads(channels) if isinstance(channels, str) else channels
        start, end = row["quiet_hours_start"], row["quiet_hours_end"]
        if start is not None and end is not None:
            values["quiet_hours"] = QuietHours.model_construct(start=_hhmm(start), end=_hhmm(end))
    # model_construct: stored rows were valid when written; a zone or channel name
    # a later version no longer knows must not make the user's preferences unreadable
    return Preferences.model_construct(**values)


async def _store(conn: Connection, user_id: str, prefs: Preferences, *, timezone: bool) -> None:
    """Upsert the user's row; their zone only when ``timezone`` (sent by the user):
    otherwise the zone chosen before, or none, stays. A user Herald does not know
    (erased meanwhile) is a 404."""
    quiet = prefs.quiet_hours
    try:
        await conn.execute(
            """INSERT INTO preferences AS p (user_id, email_enabled, digest_frequency,
                   notify_new_matches, notify_application_updates, notify_reminders,
                   notify_digests, min_match_score, quiet_hours_start, quiet_hours_end,
                   channels, timezone, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, now())
               ON CONFLICT (user_id) DO UPDATE SET
                   email_enabled = EXCLUDED.email_enabled,
                   digest_frequency = EXCLUDED.digest_frequency,
                   notify_new_matches = EXCLUDED.notify_new_matches,
                   notify_application_updates = EXCLUDED.notify_application_updates,
                   notify_reminders = EXCLUDED.notify_reminders,
                   notify_digests = EXCLUDED.notify_digests,
                   min_match_score = EXCLUDED.min_match_score,
                   quiet_hours_start = EXCLUDED.quiet_hours_start,
                   quiet_hours_end = EXCLUDED.quiet_hours_end,
                   channels = EXCLUDED.channels,
                   timezone = COALESCE(EXCLUDED.timezone, p.timezone),
                   updated_at = now()""",
            user_id,
            prefs.email_enabled,
            prefs.digest_frequency,
            prefs.notify_new_matches,
            prefs.notify_application_updates,
            prefs.notify_reminders,
            prefs.notify_digests,
            prefs.min_match_score,
            _time(quiet.start) if quiet else None,
            _time(quiet.end) if quiet else None,
            json.dumps(prefs.channels),
            prefs.timezone if timezone else None,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise _unknown() from exc


async def _lock(conn: Connection, user_id: str) -> None:
    """Lock the user's row for a read-modify-write, made first (the defaults) if they
    have none yet: two PATCHes of different fields at once both land."""
    try:
        await conn.execute(
            """INSERT INTO preferences (user_id) SELECT user_id FROM users WHERE user_id = $1
               ON CONFLICT (user_id) DO NOTHING""",
            user_id,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise _unknown() from exc
    await conn.execute("SELECT 1 FROM preferences WHERE user_id = $1 FOR UPDATE", user_id)


@router.get("/preferences", response_model=Preferences, dependencies=limited())
async def get_preferences(user_id: CurrentUser, state: State) -> Preferences:
    async with state.pool.acquire() as conn:
        return await _load(conn, user_id)


@router.put("/preferences", response_model=Preferences, dependencies=limited())
async def put_preferences(
    user_id: CurrentUser, state: State, prefs: Annotated[Preferences, Body()]
) -> Preferences:
    async with state.pool.acquire() as conn, conn.transaction():
        await _load(conn, user_id)  # 404 for a user Herald does not know
        await _store(conn, user_id, prefs, timezone=True)
        return await _load(conn, user_id)


@router.patch("/preferences", response_model=Preferences, dependencies=limited())
async def patch_preferences(
    user_id: CurrentUser, state: State, patch: Annotated[PreferencesPatch, Body()]
) -> Preferences:
    async with state.pool.acquire() as conn, conn.transaction():
        await _lock(conn, user_id)
        current = await _load(conn, user_id)
        changes = patch.model_dump(exclude_unset=True)
        if "quiet_hours" in changes:
            changes["quiet_hours"] = patch.quiet_hours
        if patch.channels is not None:
            changes["channels"] = {**current.channels, **patch.channels}
        merged = current.model_copy(update=changes)
        try:
            await _store(conn, user_id, merged, timezone=patch.timezone is not None)
        except asyncpg.CheckViolationError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid value") from exc
        return await _load(conn, user_id)
