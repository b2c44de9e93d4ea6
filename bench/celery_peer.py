"""The dispatch benchmark's peer: the same webhook delivery done by a Celery task.

One task per notification, on the RabbitMQ broker, with results disabled:

1. in one transaction, find the user's webhook endpoint, insert the notification
   row and its delivery row (deterministic ids, ``ON CONFLICT DO NOTHING``, so a
   redelivered task records nothing twice);
2. POST the Standard-Webhooks-signed JSON (the body Herald's webhook channel sends)
   with a keep-alive ``httpx.Client``;
3. mark the delivery delivered (status, attempts, timestamps), or retry the task.

PostgreSQL: asyncpg is the only driver installed (no psycopg), so each worker
thread (a prefork child has exactly one) opens its own event loop and asyncpg
connection on its first task and drives them with ``run_until_complete``: plain
blocking calls as far as Celery can tell, one connection per unit of concurrency,
nothing created before the pool forks.

``bench/dispatch.py`` starts the worker as a subprocess and publishes with
``make_app(...).send_task``:

    python bench/celery_peer.py --queue Q --database-url URL [--reliable]
        [--pool prefork|threads] [--concurrency 2] [--loglevel info]

``--reliable`` is ``task_acks_late=True`` with ``worker_prefetch_multiplier=1``, the
setting that does not lose a task when a worker dies; without it, Celery's defaults
(ack on receipt, prefetch multiplier 4).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import httpx
from celery import Celery, Task
from cryptography.fernet import Fernet

TASK = "bench.deliver"
# the namespace of Herald's derived ids (shared.events), so delivery ids have the
# same form as the dispatcher's without importing Herald into the worker
_IDS = uuid.UUID("6a0d6b0e-6c1b-5d0e-9a57-6865726c6400")
RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 36000)


@dataclass(frozen=True)
class PeerConfig:
    amqp_url: str
    queue: str
    database_url: str
    reliable: bool
    # the Fernet key the endpoints are sealed with (HERALD_ENCRYPTION_KEYS), so the
    # peer opens each URL and secret as the dispatcher does
    encryption_key: str


def make_app(cfg: PeerConfig) -> Celery:
    """A Celery app on its own queue and exchange (both named ``cfg.queue``), with no
    result backend, no remote control and no events: nothing on the broker but the
    task queue, and nothing but the task's own work in the worker."""
    app = Celery("herald-bench", broker=cfg.amqp_url, set_as_current=False)
    app.conf.update(
        task_default_queue=cfg.queue,
        task_default_exchange=cfg.queue,
        task_default_routing_key=cfg.queue,
        task_ignore_result=True,
        result_backend=None,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=True,
    )
    if cfg.reliable:
        app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1)
    local = threading.local()

    def resources() -> Resources:
        found: Resources | None = getattr(local, "resources", None)
        if found is None:
            found = local.resources = Resources.open(cfg.database_url)
        return found

    @app.task(name=TASK, bind=True, ignore_result=True)  # type: ignore[untyped-decorator]
    def deliver(task: Task, notification: dict[str, Any]) -> None:
        r = resources()
        endpoint = r.run(record(r.conn, notification))
        if endpoint is None:
            return  # the user has no webhook: nothing to send
        delivery, endpoint_id, url_sealed, secret_sealed = endpoint
        url = unseal(cfg.encryption_key, url_sealed, f"{endpoint_id}/url")
        secret = unseal(cfg.encryption_key, secret_sealed, f"{endpoint_id}/secret")
        body = webhook_body(notification)
        msg_id = f"msg_{delivery.hex}"
        timestamp = int(time.time())
        try:
            response = r.http.post(
                url,
                content=body,
                headers={
                    "content-type": "application/json",
                    "user-agent": "Celery-Peer/1",
                    "webhook-id": msg_id,
                    "webhook-timestamp": str(timestamp),
                    "webhook-signature": sign(secret, msg_id, timestamp, body),
                },
            )
        except httpx.TransportError as exc:
            raise _retry(task, exc) from exc
        if not response.is_success:
            raise _retry(task, RuntimeError(f"HTTP {response.status_code}"))
        r.run(delivered(r.conn, delivery, response.status_code))

    return app


def _retry(task: Task, exc: Exception) -> BaseException:
    """Celery's retry on Herald's delivery schedule (raises once retries run out)."""
    step = min(task.request.retries, len(RETRY_DELAYS) - 1)
    retry: BaseException = task.retry(
        exc=exc, countdown=RETRY_DELAYS[step], max_retries=len(RETRY_DELAYS)
    )
    return retry


class Resources:
    """One worker thread's event loop, PostgreSQL connection and HTTP client."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, conn: asyncpg.Connection, http: httpx.Client
    ) -> None:
        self.loop, self.conn, self.http = loop, conn, http

    @classmethod
    def open(cls, database_url: str) -> Resources:
        loop = asyncio.new_event_loop()
        conn = loop.run_until_complete(asyncpg.connect(database_url))
        http = httpx.Client(timeout=10.0, follow_redirects=False)
        return cls(loop, conn, http)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


def derived_id(*parts: str) -> uuid.UUID:
    return uuid.uuid5(_IDS, "\x1f".join(parts))


def unseal(key: str, token: str, place: str) -> str:
    """shared.sealing's format: a Fernet token of ``<place>\\0<value>``."""
    text = Fernet(key.encode()).decrypt(token.encode()).decode()
    bound_to, _, value = text.partition("\x00")
    if bound_to != place:
        raise ValueError(f"a sealed value was moved from {bound_to}")
    return value


async def record(
    conn: asyncpg.Connection, n: dict[str, Any]
) -> tuple[uuid.UUID, uuid.UUID, str, str] | None:
    """Record the notification and its webhook delivery; (delivery id, endpoint id,
    sealed url, sealed secret)."""
    async with conn.transaction():
        endpoint = await conn.fetchrow(
            """SELECT id, url_sealed, secret_sealed FROM channel_endpoints
               WHERE user_id = $1 AND type = 'webhook' AND enabled
               ORDER BY created_at LIMIT 1""",
            n["user_id"],
        )
        if endpoint is None:
            return None
        notification_id = uuid.UUID(n["id"])
        delivery = derived_id("delivery", str(notification_id), str(endpoint["id"]))
        await conn.execute(
            """INSERT INTO notifications
                   (id, user_id, type, kind, subject, title, body, data, priority,
                    source_event_id, created_at)
               VALUES ($1, $2, $3, 'generic', $3, $4, $5, $6::jsonb, $7, $8, $9)
               ON CONFLICT DO NOTHING""",
            notification_id,
            n["user_id"],
            n["type"],
            n["title"],
            n["body"],
            json.dumps(n["data"]),
            n["priority"],
            n["id"],
            datetime.fromisoformat(n["created_at"]),
        )
        await conn.execute(
            """INSERT INTO deliveries (id, notification_id, endpoint_id, channel, status, priority)
               VALUES ($1, $2, $3, 'webhook', 'pending', $4) ON CONFLICT DO NOTHING""",
            delivery,
            notification_id,
            endpoint["id"],
            n["priority"],
        )
    return delivery, endpoint["id"], endpoint["url_sealed"], endpoint["secret_sealed"]


async def delivered(conn: asyncpg.Connection, delivery: uuid.UUID, status: int) -> None:
    await conn.execute(
        """UPDATE deliveries
           SET attempts = attempts + 1, status = 'delivered', response_status = $2,
               updated_at = now(), last_attempt_at = now(), delivered_at = now(),
               first_attempt_at = COALESCE(first_attempt_at, now())
           WHERE id = $1""",
        delivery,
        status,
    )


def webhook_body(n: dict[str, Any]) -> bytes:
    """The JSON Herald's webhook channel sends, field for field."""
    return json.dumps(
        {
            "type": n["type"],
            "timestamp": n["created_at"],
            "data": {
                "id": n["id"],
                "user_id": n["user_id"],
                "type": n["type"],
                "title": n["title"],
                "body": n["body"],
                "data": n["data"],
                "priority": n["priority"],
                "created_at": n["created_at"],
            },
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks: ``v1,`` + base64(HMAC-SHA256(key, "{id}.{ts}.{body}"))."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--queue", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--reliable", action="store_true")
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads", "solo"])
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--loglevel", default="info")
    args = parser.parse_args()
    # the key comes in the environment, not the command line, which `ps` shows
    key = os.environ["HERALD_ENCRYPTION_KEYS"].split(",")[0]
    app = make_app(PeerConfig(args.amqp_url, args.queue, args.database_url, args.reliable, key))
    app.worker_main(
        [
            "worker",
            f"--pool={args.pool}",
            f"--concurrency={args.concurrency}",
            f"--loglevel={args.loglevel}",
            f"--hostname={args.queue}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


if __name__ == "__main__":
    main()
