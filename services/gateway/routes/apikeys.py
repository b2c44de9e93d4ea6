"""``/v1/admin/apikeys``: list, create, revoke and rotate API keys, for keys with
the ``admin`` scope; what ``herald apikey`` does from the command line.

A key's secret is in the answer that creates it (create, rotate) and nowhere else;
lists show its prefix. Those answers say ``Cache-Control: no-store``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.apikeys import (
    MAX_GRACE,
    KeyNotRotatable,
    KeyRecord,
    UnknownKey,
    create_api_key,
    list_api_keys,
    parse_duration,
    revoke_api_key,
    rotate_api_key,
)

from ..dependencies import State, limited, require_scope
from ..ratelimit import Policy

router = APIRouter(
    prefix="/v1/admin/apikeys",
    tags=["api keys"],
    dependencies=[Depends(require_scope("admin"))],
)

DURATION = r"^\d{1,7}[smhdw]$"


class ApiKeyView(BaseModel):
    id: uuid.UUID
    name: str
    # the key's first characters, to recognise it; never the key or its hash
    prefix: str
    scopes: list[str]
    # null: every event type the gateway takes
    event_types: list[str] | None
    state: Literal["active", "expired", "revoked"]
    created_at: datetime
    expires_at: datetime | None
    # how long a key made in its place by rotation lives; null: forever
    lifetime_seconds: int | None
    # to the minute: written at most once a minute
    last_used_at: datetime | None
    revoked_at: datetime | None
    # the key it was rotated into
    replaced_by: uuid.UUID | None

    @classmethod
    def of(cls, record: KeyRecord, now: datetime) -> ApiKeyView:
        lifetime = record.lifetime
        return cls(
            id=record.id,
            name=record.name,
            prefix=record.prefix,
            scopes=record.scopes,
            event_types=record.event_types,
            state=record.state(now),
            created_at=record.created_at,
            expires_at=record.expires_at,
            lifetime_seconds=int(lifetime.total_seconds()) if lifetime is not None else None,
            last_used_at=record.last_used_at,
            revoked_at=record.revoked_at,
            replaced_by=record.replaced_by,
        )


class NewApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    # events:write, users:erase, admin
    scopes: list[str] = Field(min_length=1, max_length=10)
    # AMQP topic patterns ("job.*"); null: every type the gateway takes
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=50)
    # a lifetime (90d, 12h); or a time, expires_at; neither: it never expires
    expires_in: str | None = Field(default=None, pattern=DURATION, examples=["90d"])
    expires_at: AwareDatetime | None = None


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # how long the old key keeps working (1h); null: it is revoked at once
    grace: str | None = Field(default=None, pattern=DURATION, examples=["1h"])


class IssuedKey(BaseModel):
    # the key itself: shown this once, stored only as a hash
    key: str
    api_key: ApiKeyView


class RotatedKey(IssuedKey):
    # the key it replaces: revoked, or expiring at the end of the grace period
    replaced: ApiKeyView


def _unprocessable(exc: ValueError) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


def _now() -> datetime:
    return datetime.now(UTC)


@router.get("", response_model=list[ApiKeyView], dependencies=limited())
async def list_keys(state: State) -> list[ApiKeyView]:
    """Every key, revoked and expired ones included, oldest first."""
    async with state.pool.acquire() as conn:
        records = await list_api_keys(conn)
    now = _now()
    return [ApiKeyView.of(r, now) for r in records]


@router.post(
    "",
    response_model=IssuedKey,
    status_code=status.HTTP_201_CREATED,
    dependencies=limited(Policy.SENSITIVE),
)
async def create_key(new: NewApiKey, state: State, response: Response) -> IssuedKey:
    if new.expires_in is not None and new.expires_at is not None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "give expires_in or expires_at, not both"
        )
    try:
        expires: timedelta | datetime | None = (
            parse_duration(new.expires_in) if new.expires_in is not None else new.expires_at
        )
        async with state.pool.acquire() as conn:
            record, secret = await create_api_key(
                conn, new.name, new.scopes, event_types=new.event_types, expires=expires
            )
    except ValueError as exc:
        raise _unprocessable(exc) from exc
    response.headers["Cache-Control"] = "no-store"
    return IssuedKey(key=secret, api_key=ApiKeyView.of(record, _now()))


@router.post("/{key_id}/revoke", response_model=ApiKeyView, dependencies=limited(Policy.SENSITIVE))
async def revoke_key(key_id: Annotated[uuid.UUID, Path()], state: State) -> ApiKeyView:
    """It authenticates nothing from now on; revoking it again changes nothing."""
    try:
        async with state.pool.acquire() as conn:
            record = await revoke_api_key(conn, key_id)
    except UnknownKey as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return ApiKeyView.of(record, _now())


@router.post(
    "/{key_id}/rotate",
    response_model=RotatedKey,
    status_code=status.HTTP_201_CREATED,
    dependencies=limited(Policy.SENSITIVE),
)
async def rotate_key(
    key_id: Annotated[uuid.UUID, Path()],
    state: State,
    response: Response,
    rotation: Annotated[Rotation | None, Body()] = None,
) -> RotatedKey:
    """A new key with the old one's name, scopes, event types and lifetime; the old
    one is revoked, or expires when the grace period ends."""
    try:
        grace = (
            parse_duration(rotation.grace, most=MAX_GRACE)
            if rotation is not None and rotation.grace is not None
            else None
        )
        async with state.pool.acquire() as conn:
            record, secret, old = await rotate_api_key(conn, key_id, grace=grace)
    except ValueError as exc:
        raise _unprocessable(exc) from exc
    except UnknownKey as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except KeyNotRotatable as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    response.headers["Cache-Control"] = "no-store"
    now = _now()
    return RotatedKey(
        key=secret, api_key=ApiKeyView.of(record, now), replaced=ApiKeyView.of(old, now)
    )
