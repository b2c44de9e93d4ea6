"""API keys in PostgreSQL: shown once, stored only as a SHA-256 hash and a prefix.

A key authenticates while it is neither revoked nor expired. Rotation makes a key
with the same name, scopes, event types and lifetime, and retires the old one at
once, or after a grace period (its expiry brought forward) so deployments can roll
over. ``last_used_at`` is written at most once a ``LAST_USED_RESOLUTION`` per key:
a busy feed costs a read per request, not a write.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from shared.db import Connection

from ._policy import (
    KEY_PREFIX,
    MAX_LIFETIME,
    ApiKey,
    canonical_scopes,
    check_event_types,
    check_name,
    check_scopes,
)

LAST_USED_RESOLUTION = timedelta(minutes=1)
_PREFIX_LENGTH = len(KEY_PREFIX) + 6
_COLUMNS = """id, name, prefix, scopes, event_types, created_at, expires_at, lifetime,
              last_used_at, revoked_at, replaced_by"""

State = Literal["active", "expired", "revoked"]


class UnknownKey(LookupError):
    pass


class KeyNotRotatable(Exception):
    """The key was revoked or has been rotated already: rotating it again would give
    a second successor to a key that has one, or revive a revoked one."""


@dataclass(frozen=True)
class KeyRecord:
    """A stored key as listed: everything but the key and its hash."""

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    event_types: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    lifetime: timedelta | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    replaced_by: uuid.UUID | None

    def state(self, now: datetime) -> State:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    @classmethod
    def from_row(cls, row: Any) -> KeyRecord:
        event_types = row["event_types"]
        return cls(
            id=row["id"],
            name=row["name"],
            prefix=row["prefix"],
            scopes=sorted(canonical_scopes(row["scopes"])),
            event_types=list(event_types) if event_types is not None else None,
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            lifetime=row["lifetime"],
            last_used_at=row["last_used_at"],
            revoked_at=row["revoked_at"],
            replaced_by=row["replaced_by"],
        )


def _hash(key: str) -> bytes:
    # Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).digest()


async def create_api_key(
    conn: Connection,
    name: str,
    scopes: list[str],
    *,
    event_types: list[str] | None = None,
    expires: timedelta | datetime | None = None,
) -> tuple[KeyRecord, str]:
    """A new key and its secret (shown once). ``expires`` is a lifetime (kept, so a
    rotation gives the successor as long) or a time (its distance from now is kept).
    Bad input raises ``ValueError`` with the reason."""
    stored_scopes = check_scopes(scopes)
    check_name(name)
    stored_types = check_event_types(event_types) if event_types is not None else None
    expires_at, lifetime = None, None
    if isinstance(expires, timedelta) and expires > MAX_LIFETIME:
        raise ValueError(f"a key lives at most {MAX_LIFETIME.days} days")
    if isinstance(expires, datetime):
        if expires.tzinfo is None:
            raise ValueError("an expiry time needs a time zone (2026-01-31T00:00:00Z)")
        if expires <= datetime.now(UTC):
            raise ValueError("the expiry time has passed")
        if expires - datetime.now(UTC) > MAX_LIFETIME:
            raise ValueError(f"a key lives at most {MAX_LIFETIME.days} days")
        expires_at = expires
    elif isinstance(expires, timedelta):
        if expires <= timedelta(0):
            raise ValueError("a key's lifetime is positive")
        lifetime = expires
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        f"""INSERT INTO api_keys
                (id, name, prefix, key_hash, scopes, event_types, expires_at, lifetime)
            VALUES ($1, $2, $3, $4, $5, $6,
                    COALESCE($7::timestamptz, now() + $8::interval),
                    COALESCE($8::interval, $7::timestamptz - now()))
            RETURNING {_COLUMNS}""",
        uuid.uuid4(),
        name,
        key[:_PREFIX_LENGTH],
        _hash(key),
        stored_scopes,
        stored_types,
        expires_at,
        lifetime,
    )
    return KeyRecord.from_row(row), key


async def verify_api_key(conn: Connection, key: str) -> ApiKey | None:
    """The key's powers if it is known, not revoked and not expired; else None."""
    if not key.startswith(KEY_PREFIX):
        return None
    # the UPDATE runs whether or not the SELECT reads it (a data-modifying WITH);
    # after a concurrent request's write it finds the row fresh and skips it
    row = await conn.fetchrow(
        """WITH found AS (
               SELECT id, name, scopes, event_types FROM api_keys
               WHERE key_hash = $1 AND revoked_at IS NULL
                 AND (expires_at IS NULL OR expires_at > now())
           ), touched AS (
               UPDATE api_keys SET last_used_at = now()
               WHERE id = (SELECT id FROM found)
                 AND (last_used_at IS NULL OR last_used_at <= now() - $2::interval)
           )
           SELECT id, name, scopes, event_types FROM found""",
        _hash(key),
        LAST_USED_RESOLUTION,
    )
    if row is None:
        return None
    event_types = row["event_types"]
    return ApiKey(
        row["id"],
        row["name"],
        canonical_scopes(row["scopes"]),
        tuple(event_types) if event_types is not None else None,
    )


async def list_api_keys(conn: Connection) -> list[KeyRecord]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id")
    return [KeyRecord.from_row(r) for r in rows]


async def revoke_api_key(conn: Connection, key_id: uuid.UUID) -> KeyRecord:
    """Revoked from now on; revoking again keeps the first time."""
    row = await conn.fetchrow(
        f"""UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())
            WHERE id = $1 RETURNING {_COLUMNS}""",
        key_id,
    )
    if row is None:
        raise UnknownKey(f"no API key {key_id}")
    return KeyRecord.from_row(row)


async def rotate_api_key(
    conn: Connection, key_id: uuid.UUID, *, grace: timedelta | None = None
) -> tuple[KeyRecord, str, KeyRecord]:
    """``(new, its secret, old)``: the old key revoked now, or with ``grace`` left to
    live (never longer than it had)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM api_keys WHERE id = $1 FOR UPDATE", key_id
        )
        if row is None:
            raise UnknownKey(f"no API key {key_id}")
        old = KeyRecord.from_row(row)
        if old.revoked_at is not None:
            raise KeyNotRotatable(f"API key {key_id} is revoked; create a new one")
        if old.replaced_by is not None:
            raise KeyNotRotatable(f"API key {key_id} was rotated already, into {old.replaced_by}")
        new, secret = await create_api_key(
            conn, old.name, old.scopes, event_types=old.event_types, expires=old.lifetime
        )
        if grace:
            retire = (
                """expires_at = LEAST(COALESCE(expires_at, 'infinity'), now() + $3::interval)"""
            )
        else:
            retire = "revoked_at = now()"
        retired = await conn.fetchrow(
            f"""UPDATE api_keys SET {retire}, replaced_by = $2
                WHERE id = $1 RETURNING {_COLUMNS}""",
            key_id,
            new.id,
            *([grace] if grace else []),
        )
    return new, secret, KeyRecord.from_row(retired)
