"""``/v1/me/alerts``: the calling user's saved searches ("job alerts").

The gateway keeps the user's alerts (``user_alerts``) and tells the matcher with
``alert.saved`` / ``alert.deleted``; the matcher keeps its own copy and runs each
alert on its daily or weekly tick. Row and event are written in one transaction
that waits for the broker's confirm, so an alert the API shows is one the matcher
hears of (a publish that is not confirmed rolls the change back: ``503``). The event
time is the row's ``updated_at``, strictly increasing per alert, because the matcher
keeps only the newest version it hears.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Body, HTTPException, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.db import Connection
from shared.events import AlertDeleted, AlertSaved, JobType, derived_id, describe, new_event

from ..dependencies import CurrentUser, State, limited
from ..state import GatewayState

router = APIRouter(prefix="/v1/me/alerts", tags=["alerts"])

MAX_ALERTS = 50
SOURCE = "herald/gateway"
AlertId = Annotated[uuid.UUID, Path(description="the alert's id")]
Keyword = Annotated[str, Field(min_length=1, max_length=100)]


class AlertFields(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(default="", max_length=200)
    # every keyword must appear (whole words, any case) in a job's title or text
    keywords: list[Keyword] = Field(default_factory=list, max_length=20)
    location: str | None = Field(default=None, min_length=1, max_length=256)
    # true: remote jobs only; false: on-site only; null: either
    remote: bool | None = None
    salary_floor: float | None = Field(default=None, ge=0, le=1e12)
    job_types: list[JobType] = Field(default_factory=list, max_length=5)
    frequency: Literal["daily", "weekly"] = "daily"

    @field_validator("keywords")
    @classmethod
    def _no_blank_keywords(cls, value: list[str]) -> list[str]:
        stripped = [k.strip() for k in value]
        if any(not k for k in stripped):
            raise ValueError("keywords cannot be blank")
        return list(dict.fromkeys(stripped))


class AlertPatch(BaseModel):
    """Only the fields sent change; ``location``, ``remote`` and ``salary_floor``
    may be set to null."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str | None = Field(default=None, max_length=200)
    keywords: list[Keyword] | None = Field(default=None, max_length=20)
    location: str | None = Field(default=None, min_length=1, max_length=256)
    remote: bool | None = None
    salary_floor: float | None = Field(default=None, ge=0, le=1e12)
    job_types: list[JobType] | None = Field(default=None, max_length=5)
    frequency: Literal["daily", "weekly"] | None = None


class Alert(AlertFields):
    id: uuid.UUID
    created_at: datetime
    updated_at: datetime


_COLUMNS = """alert_id AS id, name, keywords, location, remote, salary_floor::float8,
              job_types, frequency, created_at, updated_at"""


def _alert(row: asyncpg.Record) -> Alert:
    return Alert.model_validate(dict(row))


def _not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, "no such alert")


async def _announce_saved(state: GatewayState, user_id: str, alert: Alert) -> None:
    stamp = alert.updated_at.isoformat()
    await state.bus.publish(
        new_event(
            AlertSaved(
                alert_id=str(alert.id),
                user_id=user_id,
                keywords=alert.keywords,
                location=alert.location,
                remote=alert.remote,
                salary_floor=alert.salary_floor,
                job_types=alert.job_types,
                frequency=alert.frequency,
            ),
            source=SOURCE,
            id=derived_id("alert.saved", str(alert.id), stamp),
            time=alert.updated_at,
        )
    )


async def _write(
    conn: Connection, user_id: str, alert_id: uuid.UUID, fields: AlertFields, *, new: bool
) -> Alert | None:
    values = (
        alert_id,
        user_id,
        fields.name,
        fields.keywords,
        fields.location,
        fields.remote,
        fields.salary_floor,
        [t.value for t in fields.job_types],
        fields.frequency,
    )
    if new:
        row = await conn.fetchrow(
            f"""INSERT INTO user_alerts (alert_id, user_id, name, keywords, location, remote,
                                         salary_floor, job_types, frequency)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {_COLUMNS}""",
            *values,
        )
    else:
        row = await conn.fetchrow(
            f"""UPDATE user_alerts SET name = $3, keywords = $4, location = $5, remote = $6,
                    salary_floor = $7, job_types = $8, frequency = $9,
                    updated_at = GREATEST(clock_timestamp(), updated_at + interval '1 microsecond')
                WHERE alert_id = $1 AND user_id = $2 RETURNING {_COLUMNS}""",
            *values,
        )
    return _alert(row) if row else None


@router.get("", response_model=list[Alert], dependencies=limited())
async def list_alerts(user_id: CurrentUser, state: State) -> list[Alert]:
    rows = await state.pool.fetch(
        f"SELECT {_COLUMNS} FROM user_alerts WHERE user_id = $1 ORDER BY created_at, alert_id",
        user_id,
    )
    return [_alert(r) for r in rows]


@router.post("", response_model=Alert, status_code=status.HTTP_201_CREATED, dependencies=limited())
async def create_alert(
    user_id: CurrentUser, state: State, fields: Annotated[AlertFields, Body()]
) -> Alert:
    async with state.pool.acquire() as conn, conn.transaction():
        # one user's creations take turns, so the cap holds
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('alerts:' || $1))", user_id)
        count = await conn.fetchval("SELECT count(*) FROM user_alerts WHERE user_id = $1", user_id)
        if count >= MAX_ALERTS:
            raise HTTPException(status.HTTP_409_CONFLICT, f"at most {MAX_ALERTS} alerts per user")
        alert = await _write(conn, user_id, uuid.uuid4(), fields, new=True)
        assert alert is not None
        await _announce_saved(state, user_id, alert)
    return alert


@router.get("/{alert_id}", response_model=Alert, dependencies=limited())
async def get_alert(alert_id: AlertId, user_id: CurrentUser, state: State) -> Alert:
    row = await state.pool.fetchrow(
        f"SELECT {_COLUMNS} FROM user_alerts WHERE alert_id = $1 AND user_id = $2",
        alert_id,
        user_id,
    )
    if row is None:
        raise _not_found()
    return _alert(row)


@router.put("/{alert_id}", response_model=Alert, dependencies=limited())
async def replace_alert(
    alert_id: AlertId, user_id: CurrentUser, state: State, fields: Annotated[AlertFields, Body()]
) -> Alert:
    async with state.pool.acquire() as conn, conn.transaction():
        alert = await _write(conn, user_id, alert_id, fields, new=False)
        if alert is None:
            raise _not_found()
        await _announce_saved(state, user_id, alert)
    return alert


@router.patch("/{alert_id}", response_model=Alert, dependencies=limited())
async def change_alert(
    alert_id: AlertId, user_id: CurrentUser, state: State, patch: Annotated[AlertPatch, Body()]
) -> Alert:
    changes = patch.model_dump(exclude_unset=True)
    for name in ("name", "keywords", "job_types", "frequency"):
        if name in changes and changes[name] is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name} cannot be null")
    async with state.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM user_alerts WHERE alert_id = $1 AND user_id = $2 FOR UPDATE",
            alert_id,
            user_id,
        )
        if row is None:
            raise _not_found()
        current = _alert(row).model_dump(exclude={"id", "created_at", "updated_at"})
        try:
            fields = AlertFields.model_validate(current | changes)
        except ValidationError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, describe(exc)) from exc
        alert = await _write(conn, user_id, alert_id, fields, new=False)
        assert alert is not None
        await _announce_saved(state, user_id, alert)
    return alert


@router.delete(
    "/{alert_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=limited(),
)
async def delete_alert(alert_id: AlertId, user_id: CurrentUser, state: State) -> Response:
    async with state.pool.acquire() as conn, conn.transaction():
        deleted = await conn.fetchval(
            "DELETE FROM user_alerts WHERE alert_id = $1 AND user_id = $2 RETURNING true",
            alert_id,
            user_id,
        )
        if not deleted:
            raise _not_found()
        await state.bus.publish(
            new_event(
                AlertDeleted(alert_id=str(alert_id), user_id=user_id),
                source=SOURCE,
                id=derived_id("alert.deleted", str(alert_id)),
            )
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
