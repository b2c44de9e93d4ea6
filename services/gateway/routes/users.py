"""``DELETE /v1/users/{id}``: erasure, for keys with the ``users:erase`` scope (or
``admin``), the same grant ``user.deleted`` needs over ``POST /v1/events``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status
from pydantic import BaseModel

from shared.events import UserDeleted, new_event

from ..dependencies import State, limited, require_scope
from ..ratelimit import Policy

router = APIRouter(
    prefix="/v1", tags=["operations"], dependencies=[Depends(require_scope("users:erase"))]
)


class Erasure(BaseModel):
    user_id: str
    event_id: str


@router.delete(
    "/users/{user_id}",
    response_model=Erasure,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=limited(Policy.SENSITIVE),
)
async def erase_user(
    user_id: Annotated[str, Path(min_length=1, max_length=256)], state: State
) -> Erasure:
    """Publish ``user.deleted``: every service removes what it holds about the user
    (the dispatcher their profile, preferences, channels, inbox and history; the
    matcher their résumé, matches and alerts; the gateway its copy of their alerts)."""
    event = new_event(UserDeleted(user_id=user_id), source="herald/gateway")
    await state.bus.publish(event)
    return Erasure(user_id=user_id, event_id=event.id)
