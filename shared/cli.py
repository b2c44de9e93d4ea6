"""``herald``: the operator's command line.

herald migrate                         apply database migrations
herald up                              run all four services, logs prefixed
herald publish TYPE JSON               publish one event (JSON is its data)
herald parked list [--queue Q]         show parked messages, one JSON line each
herald parked replay [--queue Q] [--id EVENT_ID]
herald apikey create --scope SCOPE [--event-type T] [--expires-in 90d]
                                       print a new API key (shown once)
herald apikey list                     every key: prefix, scopes, expiry, last use
herald apikey revoke ID
herald apikey rotate ID [--grace 1h]   print a key replacing ID (shown once)
herald endpoint add --user U --type webhook --url URL
herald keys generate                   print a new key for HERALD_ENCRYPTION_KEYS
herald keys rotate                     reseal every stored endpoint under the first key
                                       (see `herald keys rotate --help` for the order)
herald keys seal [--clear]             seal plaintext endpoints now; --clear: drop their
                                       plain copies without waiting for the grace
herald telegram set-webhook            point the bot's updates at this gateway
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
from collections.abc import Sequence

import asyncpg

from shared import apikey_cli, endpoint_sealing
from shared.bus import broker_connection, catalog, list_parked, replay_parked
from shared.db import connect_pool, ensure_database, migrate
from shared.endpoints import ENDPOINT_TYPES, UnknownUser, create_endpoint, url_place
from shared.errors import HeraldError, InvalidEvent
from shared.events import parse_event
from shared.logging import configure_logging
from shared.metrics import ServiceMetrics
from shared.runner import make_bus
from shared.sealing import CannotUnseal, Sealer, generate_key
from shared.settings import InvalidSettings, Settings, load_settings
from shared.telegram_bot import TelegramSetupError, set_webhook
from shared.webhook_hosts import webhook_hosts

SERVICES = ("scheduler", "matcher", "dispatcher", "gateway")

# Every pod must open whatever any other pod seals at every step of a rolling
# restart, hence a new key is added last before it moves first.
ROTATION = """\
To replace OLD with NEW in HERALD_ENCRYPTION_KEYS, one rolling restart per step:
  1. OLD,NEW   add NEW last everywhere and roll: every pod opens NEW, none seals with it
  2. NEW,OLD   move NEW first and roll: pods seal with NEW, and all of them open both
  3. herald keys rotate   reseal every endpoint under NEW (with the step-2 settings)
  4. NEW       drop OLD and roll
Putting NEW first at once would let pods already restarted seal rows that pods
still on OLD cannot open."""


def _parked_queues(settings: Settings, queue: str | None) -> list[str]:
    if queue:
        return [queue if queue.endswith(".parked") else f"{queue}.parked"]
    return [q.names(settings.namespace).parked for q in catalog.ALL_QUEUES]


async def _migrate(settings: Settings) -> int:
    dsn = settings.database_url.get_secret_value()
    await ensure_database(dsn)
    applied = await migrate(dsn)
    print(
        f"applied {len(applied)} migration(s)"
        + "".join(f"\n  {m.version:04d} {m.name}" for m in applied)
    )
    if _workstation_key(settings):
        # this shell's key may be no service's (a workstation's own dev secret): the
        # services seal with theirs at start-up
        print("left plaintext endpoints for the services to seal (no HERALD_SECRET_KEY)")
        return 0
    pool = await connect_pool(dsn, max_size=2)
    try:
        sealer = Sealer.from_settings(settings)
        await endpoint_sealing.check_keys(pool, sealer)
        sealed = await endpoint_sealing.seal_plaintext(
            pool, sealer, grace=settings.plaintext_grace_seconds
        )
    finally:
        await pool.close()
    if sealed:
        print(f"sealed the credentials of {sealed} channel endpoint(s)")
    return 0


def _workstation_key(settings: Settings) -> bool:
    """True when the only sealing key is derived from this machine's dev secret,
    which a production deployment's services do not share."""
    return settings.uses_dev_secret and not settings.encryption_keys


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    if args.keys_command == "generate":
        print(generate_key())
        return 0
    if _workstation_key(settings):
        print(
            f"herald: refusing to {args.keys_command}: neither HERALD_ENCRYPTION_KEYS nor "
            "HERALD_SECRET_KEY is set, and a key derived from this workstation's dev "
            "secret would seal rows no service can open; run it with the services' settings",
            file=sys.stderr,
        )
        return 2
    dsn = settings.database_url.get_secret_value()
    await ensure_database(dsn)
    await migrate(dsn)
    pool = await connect_pool(dsn, max_size=2)
    sealer = Sealer.from_settings(settings)
    grace = settings.plaintext_grace_seconds
    try:
        if args.keys_command == "rotate":
            resealed = await endpoint_sealing.reseal_all(pool, sealer, grace=grace)
            print(
                f"resealed {resealed} channel endpoint(s) under the first key; "
                "the other keys can now be removed",
                file=sys.stderr,
            )
            return 0
        await endpoint_sealing.check_keys(pool, sealer)
        sealed = await endpoint_sealing.seal_plaintext(pool, sealer, grace=grace)
        print(f"sealed the credentials of {sealed} channel endpoint(s)", file=sys.stderr)
        if args.clear:
            cleared = await endpoint_sealing.clear_plaintext(pool, older_than=0)
            print(f"cleared the plain copies of {cleared} channel endpoint(s)", file=sys.stderr)
        return 0
    except CannotUnseal as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 1
    finally:
        await pool.close()


async def _publish(settings: Settings, event_type: str, data: str, event_id: str | None) -> int:
    try:
        payload = json.loads(data)
    except ValueError as exc:
        print(f"herald: JSON is not valid: {exc}", file=sys.stderr)
        return 2
    envelope = {"specversion": "1.0", "source": "herald/cli", "type": event_type, "data": payload}
    envelope["id"] = event_id or os.urandom(16).hex()
    try:
        event = parse_event(envelope)
    except InvalidEvent as exc:
        print(f"herald: invalid {event_type} event: {exc.reason}", file=sys.stderr)
        return 2
    bus = make_bus(settings, "cli", ServiceMetrics("cli"))
    await bus.start(wait=settings.publish_timeout)
    try:
        await bus.publish(event)
    finally:
        await bus.stop(0)
    print(event.id)
    return 0


async def _parked(settings: Settings, args: argparse.Namespace) -> int:
    async with broker_connection(settings.amqp_url.get_secret_value()) as connection:
        queues = _parked_queues(settings, args.queue)
        if args.parked_command == "list":
            for parked in await list_parked(connection, queues, limit=args.limit):
                print(parked.to_json())
        else:
            replayed = await replay_parked(connection, queues, event_id=args.id, limit=args.limit)
            for parked in replayed:
                print(f"replayed {parked.event_id} ({parked.type}) to {parked.origin_queue}")
            print(f"{len(replayed)} message(s) replayed", file=sys.stderr)
    return 0


async def _db(settings: Settings) -> asyncpg.Connection:
    dsn = settings.database_url.get_secret_value()
    await ensure_database(dsn)
    await migrate(dsn)
    return await asyncpg.connect(dsn)


async def _apikey(settings: Settings, args: argparse.Namespace) -> int:
    conn = await _db(settings)
    try:
        return await apikey_cli.run(conn, args)
    finally:
        await conn.close()


async def _endpoint(settings: Settings, args: argparse.Namespace) -> int:
    hosts = webhook_hosts(settings).get(args.type)
    refused = hosts.refusal(args.url) if hosts is not None and args.url else None
    if refused is not None:  # the dispatcher would refuse to send to it
        print(f"herald: {refused}", file=sys.stderr)
        return 2
    conn = await _db(settings)
    try:
        sealer = Sealer.from_settings(settings)
        # sealed under keys that open nothing stored, no service could read it
        sealed = await conn.fetchrow(
            """SELECT id, url_sealed FROM channel_endpoints WHERE url_sealed IS NOT NULL
               ORDER BY created_at DESC LIMIT 1"""
        )
        if sealed is not None:
            sealer.unseal(sealed["url_sealed"], bound_to=url_place(sealed["id"]))
        endpoint = await create_endpoint(
            conn,
            args.user,
            args.type,
            sealer=sealer,
            url=args.url,
            chat_id=args.chat_id,
        )
    except UnknownUser:
        print(f"herald: no user {args.user!r}; publish user.signed_up first", file=sys.stderr)
        return 2
    finally:
        await conn.close()
    print(json.dumps({"id": str(endpoint.id), "type": endpoint.type, "secret": endpoint.secret}))
    return 0


async def _telegram(settings: Settings) -> int:
    try:
        url = await set_webhook(settings)
    except TelegramSetupError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 1
    print(f"Telegram sends the bot's updates to {url}")
    return 0


def _up(settings: Settings) -> int:
    from honcho.manager import Manager  # only `herald up` needs the process manager

    manager = Manager()
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    for name in SERVICES:
        # exec: honcho runs commands through /bin/sh, and its SIGTERM must reach the
        # service itself (to drain), not a shell that dies and orphans it.
        manager.add_process(name, f"exec {shlex.quote(sys.executable)} -m services.{name}", env=env)
    manager.loop()
    # 130 after Ctrl-C, as shells expect; otherwise the first service's exit code.
    return manager.returncode or 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="herald", description="Herald notification platform")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create the database if needed and apply migrations")
    sub.add_parser("up", help="run scheduler, matcher, dispatcher and gateway together")

    publish = sub.add_parser("publish", help="publish one event to the bus")
    publish.add_argument("type", help="event type, e.g. job.posted")
    publish.add_argument("data", help="the event's data as JSON")
    publish.add_argument("--id", help="event id (default: random)")

    parked = sub.add_parser("parked", help="inspect or replay parked messages")
    parked_sub = parked.add_subparsers(dest="parked_command", required=True)
    for verb in ("list", "replay"):
        p = parked_sub.add_parser(verb)
        p.add_argument("--queue", help="work or parking queue (default: all known queues)")
        p.add_argument("--limit", type=int, default=100 if verb == "list" else 1000)
        if verb == "replay":
            p.add_argument("--id", help="replay only the message with this event id")

    apikey_cli.add_commands(sub)

    endpoint = sub.add_parser("endpoint", help="manage a user's channel endpoints")
    endpoint_sub = endpoint.add_subparsers(dest="endpoint_command", required=True)
    add = endpoint_sub.add_parser("add")
    add.add_argument("--user", required=True)
    add.add_argument("--type", required=True, choices=sorted(ENDPOINT_TYPES))
    add.add_argument("--url")
    add.add_argument("--chat-id")

    keys = sub.add_parser("keys", help="the keys that seal endpoints' credentials at rest")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("generate", help="print a new Fernet key")
    keys_sub.add_parser(
        "rotate",
        help="reseal every endpoint under the first of HERALD_ENCRYPTION_KEYS",
        description=ROTATION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    seal = keys_sub.add_parser(
        "seal",
        help="seal endpoints stored in plain text now (the dispatcher does it every minute)",
    )
    seal.add_argument(
        "--clear",
        action="store_true",
        help="also clear every plain copy now, without waiting for "
        "HERALD_PLAINTEXT_GRACE_SECONDS (only once no pod older than sealing runs)",
    )

    telegram = sub.add_parser("telegram", help="the Telegram bot")
    telegram_sub = telegram.add_subparsers(dest="telegram_command", required=True)
    telegram_sub.add_parser(
        "set-webhook", help="register HERALD_PUBLIC_URL/v1/telegram/webhook with Telegram"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except InvalidSettings as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 2
    configure_logging("cli", "warning")  # a dev secret is the norm on a workstation
    try:
        if args.command == "up":
            return _up(settings)
        if args.command == "migrate":
            return asyncio.run(_migrate(settings))
        if args.command == "publish":
            return asyncio.run(_publish(settings, args.type, args.data, args.id))
        if args.command == "parked":
            return asyncio.run(_parked(settings, args))
        if args.command == "apikey":
            return asyncio.run(_apikey(settings, args))
        if args.command == "keys":
            return asyncio.run(_keys(settings, args))
        if args.command == "telegram":
            return asyncio.run(_telegram(settings))
        return asyncio.run(_endpoint(settings, args))
    except (HeraldError, OSError, asyncpg.PostgresError, ValueError) as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
