"""``/v1/me/notifications``: the calling user's in-app inbox.

A notification of another user answers ``404``, exactly like one that does not
exist: ids are never a way to learn about someone else.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import AwareDatetime, BaseModel

from .. import inbox
from ..dependencies import CurrentUser, State, limited
from ..inbox import MAX_PAGE, BadCursor, Cursor, InboxItem

router = APIRouter(prefix="/v1/me/notifications", tags=["inbox"])

NotificationId = Annotated[uuid.UUID, Path(description="the notification's id")]


class InboxPage(BaseModel):
    items: list[InboxItem]
    # pass as ?cursor= for the next (older) page; null on the last page
    next_cursor: str | None


class UnreadCount(BaseModel):
    unread: int


class Updated(BaseModel):
    updated: int


def _not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, "no such notification")


@router.get("", response_model=InboxPage, dependencies=limited())
async def list_notifications(
    user_id: CurrentUser,
    state: State,
    type: Annotated[str | None, Query(max_length=128, description="only this type")] = None,
    unread: Annotated[bool | None, Query(description="true: unread only; false: read only")] = None,
    since: Annotated[
        AwareDatetime | None,
        Query(description="only notifications that reached the inbox after this time"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> InboxPage:
    try:
        after = Cursor.decode(cursor) if cursor else None
    except BadCursor as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    async with state.pool.acquire() as conn:
        items, next_cursor = await inbox.page(
            conn, user_id, limit=limit, after=after, type=type, unread=unread, since=since
        )
    return InboxPage(items=items, next_cursor=next_cursor.encode() if next_cursor else None)


@router.get("/unread-count", response_model=UnreadCount, dependencies=limited())
async def unread_count(user_id: CurrentUser, state: State) -> UnreadCount:
    async with state.pool.acquire() as conn:
        return UnreadCount(unread=await inbox.unread_count(conn, user_id))


@router.post("/read-all", response_model=Updated, dependencies=limited())
async def mark_all_read(
    user_id: CurrentUser,
    state: State,
    before: Annotated[
        AwareDatetime | None,
        Query(description="only those that reached the inbox at or before this time"),
    ] = None,
) -> Updated:
    async with state.pool.acquire() as conn:
        return Updated(updated=await inbox.mark_all_read(conn, user_id, before))


@router.get("/{notification_id}", response_model=InboxItem, dependencies=limited())
async def get_notification(
    notification_id: NotificationId, user_id: CurrentUser, state: State
) -> InboxItem:
    async with state.pool.acquire() as conn:
        item = await inbox.one(conn, user_id, notification_id)
    if item is None:
        raise _not_found()
    return item


@router.post("/{notification_id}/read", response_model=InboxItem, dependencies=limited())
async def mark_read(
    notification_id: NotificationId, user_id: CurrentUser, state: State
) -> InboxItem:
    return await _mark(state, user_id, notification_id, read=True)


@router.post("/{notification_id}/unread", response_model=InboxItem, dependencies=limited())
async def mark_unread(
    notification_id: NotificationId, user_id: CurrentUser, state: State
) -> InboxItem:
    return await _mark(state, user_id, notification_id, read=False)


async def _mark(state: State, user_id: str, notification_id: uuid.UUID, *, read: bool) -> InboxItem:
    async with state.pool.acquire() as conn:
        item = await inbox.mark_read(conn, user_id, notification_id, read)
    if item is None:
        raise _not_found()
    return item


@router.delete(
    "/{notification_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=limited(),
)
async def delete_notification(
    notification_id: NotificationId, user_id: CurrentUser, state: State
) -> Response:
    async with state.pool.acquire() as conn:
        if not await inbox.delete(conn, user_id, notification_id):
            raise _not_found()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
