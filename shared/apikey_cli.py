"""``herald apikey``: create, list, revoke and rotate API keys.

herald apikey create --scope events:write [--event-type 'job.*'] [--expires-in 90d]
herald apikey list
herald apikey revoke ID
herald apikey rotate ID [--grace 1h]

A key is printed once, on stdout, when it is made (create, rotate); everything else
goes to stderr, so ``KEY=$(herald apikey create ...)`` keeps only the key.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import UTC, datetime, timedelta

from shared.apikeys import (
    ALIASES,
    MAX_GRACE,
    SCOPES,
    KeyNotRotatable,
    KeyRecord,
    UnknownKey,
    create_api_key,
    list_api_keys,
    parse_duration,
    revoke_api_key,
    rotate_api_key,
)
from shared.db import Connection

COLUMNS = (
    "ID",
    "NAME",
    "PREFIX",
    "SCOPES",
    "EVENT TYPES",
    "STATE",
    "CREATED",
    "EXPIRES",
    "LAST USED",
    "REVOKED",
)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    apikey = sub.add_parser("apikey", help="manage API keys")
    verbs = apikey.add_subparsers(dest="apikey_command", required=True)

    create = verbs.add_parser("create", help="make a key and print it (shown only once)")
    create.add_argument(
        "--scope", action="append", required=True, choices=sorted(SCOPES | set(ALIASES))
    )
    create.add_argument("--name", default="cli")
    create.add_argument(
        "--event-type",
        action="append",
        dest="event_types",
        metavar="PATTERN",
        help="publish only these event types (job.* or job.posted; repeat for more)",
    )
    expiry = create.add_mutually_exclusive_group()
    expiry.add_argument("--expires-in", metavar="DURATION", help="lifetime: 90d, 12h, 30m, 2w")
    expiry.add_argument(
        "--expires-at", metavar="TIME", help="ISO 8601 time with a zone, 2026-01-31T00:00Z"
    )

    verbs.add_parser("list", help="every key: prefix, scopes, expiry, last use; never the key")
    revoke = verbs.add_parser("revoke", help="the key authenticates nothing from now on")
    revoke.add_argument("id", type=uuid.UUID, metavar="ID")
    rotate = verbs.add_parser("rotate", help="a new key in the old one's place, printed once")
    rotate.add_argument("id", type=uuid.UUID, metavar="ID")
    rotate.add_argument(
        "--grace",
        metavar="DURATION",
        help="keep the old key working this long (1h), so deployments can roll over",
    )


def _expiry(args: argparse.Namespace) -> timedelta | datetime | None:
    if args.expires_in:
        return parse_duration(args.expires_in)
    if args.expires_at:
        try:
            return datetime.fromisoformat(args.expires_at)
        except ValueError as exc:
            raise ValueError(f"--expires-at {args.expires_at!r} is not an ISO 8601 time") from exc
    return None


def _time(value: datetime | None, none: str = "-") -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ") if value else none


def table(records: list[KeyRecord], now: datetime) -> str:
    rows = [COLUMNS] + [
        (
            str(r.id),
            r.name,
            r.prefix,
            ",".join(r.scopes),
            ",".join(r.event_types) if r.event_types is not None else "all",
            r.state(now),
            _time(r.created_at),
            _time(r.expires_at, "never"),
            _time(r.last_used_at, "never"),
            _time(r.revoked_at),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _describe(record: KeyRecord) -> str:
    types = ", ".join(record.event_types) if record.event_types is not None else "all"
    return (
        f"{record.id} ({', '.join(record.scopes)}; event types: {types}; "
        f"expires: {_time(record.expires_at, 'never')})"
    )


async def run(conn: Connection, args: argparse.Namespace) -> int:
    try:
        if args.apikey_command == "create":
            record, secret = await create_api_key(
                conn, args.name, args.scope, event_types=args.event_types, expires=_expiry(args)
            )
            print(secret)
            print(f"created key {_describe(record)}; it is shown only once", file=sys.stderr)
        elif args.apikey_command == "list":
            print(table(await list_api_keys(conn), datetime.now(UTC)))
        elif args.apikey_command == "revoke":
            record = await revoke_api_key(conn, args.id)
            print(f"revoked key {record.id} ({record.name}) at {_time(record.revoked_at)}")
        else:
            grace = parse_duration(args.grace, most=MAX_GRACE) if args.grace else None
            record, secret, old = await rotate_api_key(conn, args.id, grace=grace)
            print(secret)
            until = (
                f"works until {_time(old.expires_at)}" if old.revoked_at is None else "is revoked"
            )
            print(
                f"rotated key {old.id} into {_describe(record)}; the old key {until}; "
                "the new one is shown only once",
                file=sys.stderr,
            )
    except (UnknownKey, KeyNotRotatable) as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 1
    return 0
