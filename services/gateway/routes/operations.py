"""Operations, for API keys with the ``admin`` scope: queue depths and consumers,
parked messages (list, replay, delete) and a notification's delivery attempts.
API keys are managed in ``apikeys``, erasure is in ``users``.

Queue figures come from the broker itself (a passive declare of each queue the
catalog knows: work, delay and parking queues), so no management plugin is needed.
Parked messages are read and moved exactly as ``herald parked`` does.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from shared.bus import catalog, delete_parked, list_parked, replay_parked

from ..dependencies import State, limited, require_scope
from ..metrics import read_queues
from ..ratelimit import Policy
from ..state import GatewayState

router = APIRouter(
    prefix="/v1", tags=["operations"], dependencies=[Depends(require_scope("admin"))]
)

# AMQP names are at most 255 bytes, and ".parked" may be added
QUEUE_NAME = r"^[a-z0-9][a-z0-9_.-]{0,199}$"


class QueueState(BaseModel):
    queue: str
    # the work queue's ready messages, what waits in its delay queues, what is parked
    messages: int
    retrying: int
    parked: int
    consumers: int


class Parked(BaseModel):
    queue: str
    event_id: str | None
    type: str | None
    reason: str
    error: str
    attempts: int
    parked_at: str | None
    origin_queue: str
    body: str


class ParkedSelection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # a work or parking queue; all known ones when null
    queue: str | None = Field(default=None, pattern=QUEUE_NAME)
    # only the message of this event
    event_id: str | None = Field(default=None, min_length=1, max_length=256)
    limit: int = Field(default=1000, ge=1, le=10_000)


class Moved(BaseModel):
    count: int
    messages: list[Parked]


class Delivery(BaseModel):
    id: uuid.UUID
    channel: str
    status: str
    attempts: int
    last_error: str | None
    response_status: int | None
    provider_id: str | None
    created_at: datetime
    first_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    not_before: datetime | None


class NotificationDeliveries(BaseModel):
    notification_id: uuid.UUID
    user_id: str
    type: str
    created_at: datetime
    deliveries: list[Delivery]


def _parked_queues(state: GatewayState, queue: str | None) -> list[str]:
    namespace = state.settings.namespace
    if queue:
        # deployments may share a broker: an admin of this one reaches only its own
        if not queue.startswith(f"{namespace}."):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"the queue must be one of this deployment's ({namespace}.*)",
            )
        return [queue if queue.endswith(".parked") else f"{queue}.parked"]
    return [q.names(namespace).parked for q in catalog.ALL_QUEUES]


def _parked(messages: list[object]) -> list[Parked]:
    return [Parked.model_validate(m, from_attributes=True) for m in messages]


@router.get("/admin/queues", response_model=list[QueueState], dependencies=limited())
async def queues(state: State) -> list[QueueState]:
    """Every work queue Herald declares that exists on the broker."""
    return [
        QueueState.model_validate(s, from_attributes=True)
        for s in await read_queues(state.bus, state.settings)
    ]


@router.get("/admin/parked", response_model=list[Parked], dependencies=limited())
async def parked(
    state: State,
    queue: Annotated[str | None, Query(pattern=QUEUE_NAME)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Parked]:
    """Parked messages, oldest first; reading them moves nothing."""
    return _parked(
        list(await list_parked(state.bus.connection, _parked_queues(state, queue), limit=limit))
    )


@router.post("/admin/parked/replay", response_model=Moved, dependencies=limited(Policy.SENSITIVE))
async def replay(state: State, selection: ParkedSelection) -> Moved:
    """Back to the work queue each came from, attempts reset."""
    moved = await replay_parked(
        state.bus.connection,
        _parked_queues(state, selection.queue),
        event_id=selection.event_id,
        limit=selection.limit,
    )
    return Moved(count=len(moved), messages=_parked(list(moved)))


@router.post("/admin/parked/delete", response_model=Moved, dependencies=limited(Policy.SENSITIVE))
async def delete(state: State, selection: ParkedSelection) -> Moved:
    """Drop parked messages for good."""
    dropped = await delete_parked(
        state.bus.connection,
        _parked_queues(state, selection.queue),
        event_id=selection.event_id,
        limit=selection.limit,
    )
    return Moved(count=len(dropped), messages=_parked(list(dropped)))


@router.get(
    "/admin/notifications/{notification_id}/deliveries",
    response_model=NotificationDeliveries,
    dependencies=limited(),
)
async def deliveries(
    notification_id: Annotated[uuid.UUID, Path()], state: State
) -> NotificationDeliveries:
    async with state.pool.acquire() as conn:
        notification = await conn.fetchrow(
            "SELECT id, user_id, type, created_at FROM notifications WHERE id = $1",
            notification_id,
        )
        if notification is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such notification")
        rows = await conn.fetch(
            """SELECT id, channel, status, attempts, last_error, response_status, provider_id,
                      created_at, first_attempt_at, last_attempt_at, delivered_at, not_before
               FROM deliveries WHERE notification_id = $1 ORDER BY created_at, channel""",
            notification_id,
        )
    return NotificationDeliveries(
        notification_id=notification["id"],
        user_id=notification["user_id"],
        type=notification["type"],
        created_at=notification["created_at"],
        deliveries=[Delivery.model_validate(dict(r)) for r in rows],
    )
