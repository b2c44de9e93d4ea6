"""API keys for operators and systems: shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from shared.db import Connection

KEY_PREFIX = "hk_"
SCOPES = frozenset({"events:write", "admin"})
# the scope's first name: keys created with it keep working, new ones get the new name
ALIASES = {"events:publish": "events:write"}


def canonical_scopes(scopes: list[str] | frozenset[str]) -> frozenset[str]:
    return frozenset(ALIASES.get(s, s) for s in scopes)


@dataclass(frozen=True)
class ApiKey:
    id: uuid.UUID
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def _hash(key: str) -> bytes:
    # Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).digest()


async def create_api_key(conn: Connection, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    scopes = sorted(canonical_scopes(scopes))
    unknown = set(scopes) - SCOPES
    if unknown or not scopes:
        raise ValueError(f"unknown scopes {sorted(unknown)}; choose from {sorted(SCOPES)}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO api_keys (id, name, prefix, key_hash, scopes) VALUES ($1, $2, $3, $4, $5)",
        key_id,
        name,
        key[: len(KEY_PREFIX) + 6],
        _hash(key),
        sorted(set(scopes)),
    )
    return ApiKey(key_id, name, frozenset(scopes)), key


async def verify_api_key(conn: Connection, key: str) -> ApiKey | None:
    if not key.startswith(KEY_PREFIX):
        return None
    row = await conn.fetchrow(
        """UPDATE api_keys SET last_used_at = now()
           WHERE key_hash = $1 AND revoked_at IS NULL
           RETURNING id, name, scopes""",
        _hash(key),
    )
    if row is None:
        return None
    return ApiKey(row["id"], row["name"], canonical_scopes(row["scopes"]))
