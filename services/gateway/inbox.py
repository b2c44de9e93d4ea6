"""A user's in-app inbox: the notifications the in-app channel delivered to them.

Every query names the user: a notification id alone never reaches a row, so one
user cannot read or change another's notifications even by guessing ids. Pages are
ordered newest first by when a notification reached the inbox (``delivered_at``),
and the cursor is that time and the id of the last item shown: stable while new
notifications arrive, unlike an offset.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from shared.db import Connection

MAX_PAGE = 100


class InboxItem(BaseModel):
    id: uuid.UUID
    type: str
    title: str
    body: str
    data: dict[str, Any]
    priority: str
    link: str | None
    created_at: datetime
    # when it reached the inbox (a held notification arrives after it was created)
    delivered_at: datetime
    read_at: datetime | None


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    delivered_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = json.dumps([self.delivered_at.isoformat(), str(self.id)]).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            at, id_ = json.loads(raw)
            found = cls(datetime.fromisoformat(at), uuid.UUID(id_))
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise BadCursor("the cursor is not one this API gave out") from exc
        if found.delivered_at.tzinfo is None:
            raise BadCursor("the cursor is not one this API gave out")
        return found


_COLUMNS = """id, type, title, body, data, priority, link, created_at,
              inbox_at AS delivered_at, read_at"""
_MINE = "user_id = $1 AND inbox_at IS NOT NULL AND deleted_at IS NULL"


def _item(row: asyncpg.Record) -> InboxItem:
    values = dict(row)
    data = values["data"]
    values["data"] = json.loads(data) if isinstance(data, str) else data
    return InboxItem(**values)


async def page(
    conn: Connection,
    user_id: str,
    *,
    limit: int,
    after: Cursor | None = None,
    type: str | None = None,
    unread: bool | None = None,
    since: datetime | None = None,
) -> tuple[list[InboxItem], Cursor | None]:
    """Up to ``limit`` items after ``after``, and the cursor of the next page (None
    when this is the last)."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM notifications
            WHERE {_MINE}
              AND ($2::text IS NULL OR type = $2)
              AND ($3::boolean IS NULL OR (read_at IS NULL) = $3)
              AND ($4::timestamptz IS NULL OR inbox_at > $4)
              AND ($5::timestamptz IS NULL OR (inbox_at, id) < ($5, $6::uuid))
            ORDER BY inbox_at DESC, id DESC
            LIMIT $7""",
        user_id,
        type,
        unread,
        since,
        after.delivered_at if after else None,
        after.id if after else None,
        limit + 1,
    )
    items = [_item(r) for r in rows[:limit]]
    more = len(rows) > limit
    return items, (Cursor(items[-1].delivered_at, items[-1].id) if more and items else None)


async def one(conn: Connection, user_id: str, notification_id: uuid.UUID) -> InboxItem | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM notifications WHERE {_MINE} AND id = $2",
        user_id,
        notification_id,
    )
    return _item(row) if row else None


async def unread_count(conn: Connection, user_id: str) -> int:
    count = await conn.fetchval(
        f"SELECT count(*) FROM notifications WHERE {_MINE} AND read_at IS NULL", user_id
    )
    return int(count or 0)


async def mark_read(
    conn: Connection, user_id: str, notification_id: uuid.UUID, read: bool = True
) -> InboxItem | None:
    row = await conn.fetchrow(
        f"""UPDATE notifications
            SET read_at = CASE WHEN $3 THEN COALESCE(read_at, now()) END
            WHERE {_MINE} AND id = $2
            RETURNING {_COLUMNS}""",
        user_id,
        notification_id,
        read,
    )
    return _item(row) if row else None


async def mark_all_read(conn: Connection, user_id: str, before: datetime | None = None) -> int:
    status = await conn.execute(
        f"""UPDATE notifications SET read_at = now()
            WHERE {_MINE} AND read_at IS NULL
              AND ($2::timestamptz IS NULL OR inbox_at <= $2)""",
        user_id,
        before,
    )
    return int(status.split()[-1])


async def delete(conn: Connection, user_id: str, notification_id: uuid.UUID) -> bool:
    # a mark, not a DELETE: the delivery history stays for operators, and the
    # dispatcher still knows the job was seen
    status = await conn.execute(
        f"UPDATE notifications SET deleted_at = now() WHERE {_MINE} AND id = $2",
        user_id,
        notification_id,
    )
    return status != "UPDATE 0"
