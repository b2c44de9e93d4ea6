"""``herald apikey create|list|revoke|rotate``, run as the operator runs it (a
process) against the test database; and keys made before they existed."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from shared.apikeys import list_api_keys, verify_api_key
from shared.db import ensure_database, load_migrations
from shared.settings import Settings
from tests.conftest import SERVER_URL
from tests.docs import ROOT

LIFECYCLE = 10  # shared/db/migrations/0010_api_key_lifecycle.sql


def herald(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": settings.database_url.get_secret_value(),
        "HERALD_DATA_DIR": str(settings.data_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", "apikey", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def row(listing: str, name: str) -> list[str]:
    """The list's row for the key of this name, cut at two spaces or more."""
    header, *rows = listing.splitlines()
    assert header.split()[:3] == ["ID", "NAME", "PREFIX"]
    (line,) = [r for r in rows if f"  {name}  " in r]
    return [cell.strip() for cell in line.split("  ") if cell.strip()]


async def works(pool: asyncpg.Pool, key: str) -> bool:
    async with pool.acquire() as conn:
        return await verify_api_key(conn, key) is not None


async def test_keys_are_created_listed_and_revoked_from_the_command_line(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    created = herald(
        settings,
        "create",
        "--scope",
        "events:write",
        "--name",
        "job-feed",
        "--event-type",
        "job.*",
        "--event-type",
        "meeting.scheduled",
        "--expires-in",
        "90d",
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()  # stdout holds the key alone: KEY=$(herald apikey create ...)
    assert key.startswith("hk_")
    assert "shown only once" in created.stderr
    assert await works(pool, key)

    listing = herald(settings, "list")
    assert listing.returncode == 0, listing.stderr
    assert key not in listing.stdout
    assert hashlib.sha256(key.encode()).hexdigest() not in listing.stdout
    key_id, name, prefix, scopes, types, state, _created, expires, last_used, revoked = row(
        listing.stdout, "job-feed"
    )
    assert key.startswith(prefix)
    assert (name, scopes, types, state, revoked) == (
        "job-feed",
        "events:write",
        "job.*,meeting.scheduled",
        "active",
        "-",
    )
    in_90_days = datetime.now(UTC) + timedelta(days=90)
    assert expires.startswith(in_90_days.strftime("%Y-%m-%d"))
    assert last_used != "never"  # verified above

    revoked_now = herald(settings, "revoke", key_id)
    assert revoked_now.returncode == 0, revoked_now.stderr
    assert not await works(pool, key)
    assert row(herald(settings, "list").stdout, "job-feed")[5] == "revoked"


async def test_rotation_prints_a_new_key_and_retires_the_old_one_after_the_grace(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    old = herald(settings, "create", "--scope", "admin", "--name", "deploy-bot").stdout.strip()
    old_id = row(herald(settings, "list").stdout, "deploy-bot")[0]

    rotated = herald(settings, "rotate", old_id, "--grace", "1h")
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip()
    assert new.startswith("hk_")
    assert new != old
    assert "works until" in rotated.stderr
    assert await works(pool, new)
    assert await works(pool, old)  # within the grace period
    async with pool.acquire() as conn:
        ends = await conn.fetchval("SELECT expires_at FROM api_keys WHERE id = $1::uuid", old_id)
    assert abs(ends - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(minutes=1)

    # a key has one successor; a revoked key is not brought back
    again = herald(settings, "rotate", old_id)
    assert again.returncode == 1
    assert "rotated already" in again.stderr
    listing = herald(settings, "list").stdout.splitlines()
    new_id = next(r for r in listing if f"  {new[:9]}  " in r).split()[0]
    assert herald(settings, "rotate", new_id).returncode == 0  # no grace: revoked at once
    assert not await works(pool, new)


def test_bad_input_is_refused_with_a_reason(settings: Settings) -> None:
    cases = {
        ("create", "--scope", "events:write", "--event-type", "job.teleported"): "job.teleported",
        ("create", "--scope", "events:write", "--expires-in", "soon"): "not a duration",
        ("create", "--scope", "admin", "--expires-at", "2020-01-01T00:00Z"): "has passed",
        ("create", "--scope", "admin", "--expires-at", "tomorrow"): "not an ISO 8601 time",
        ("revoke", "00000000-0000-0000-0000-000000000000"): "no API key",
        ("revoke", "not-an-id"): "invalid UUID value",
        ("rotate", "00000000-0000-0000-0000-000000000000", "--grace", "90d"): "longer than",
    }
    for args, reason in cases.items():
        result = herald(settings, *args)
        assert result.returncode in (1, 2), args
        assert reason in result.stderr, (args, result.stderr)
        assert not result.stdout


async def test_keys_made_before_the_lifecycle_migration_keep_working() -> None:
    """A key stored before 0010 (the scope's first name, no expiry, no allow-list)
    authenticates after it, with the current scope name, never expiring."""
    url = f"{SERVER_URL}/herald_test_{uuid.uuid4().hex[:10]}"
    key = "hk_" + "k" * 43
    await ensure_database(url)
    conn = await asyncpg.connect(url)
    try:
        for migration in load_migrations():
            if migration.version == LIFECYCLE:
                await conn.execute(
                    """INSERT INTO api_keys (id, name, prefix, key_hash, scopes)
                       VALUES ($1, 'legacy', 'hk_kkkkkk', $2, '{events:publish}')""",
                    uuid.uuid4(),
                    hashlib.sha256(key.encode()).digest(),
                )
            await conn.execute(migration.sql)
        verified = await verify_api_key(conn, key)
        assert verified is not None
        assert verified.scopes == {"events:write"}
        assert verified.event_types is None
        (record,) = await list_api_keys(conn)
        assert (record.scopes, record.expires_at, record.state(datetime.now(UTC))) == (
            ["events:write"],
            None,
            "active",
        )
        assert await conn.fetchval("SELECT scopes FROM api_keys") == ["events:write"]
    finally:
        await conn.close()
        admin = await asyncpg.connect(f"{SERVER_URL}/postgres")
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        await admin.close()
