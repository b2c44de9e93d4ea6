"""``POST /v1/events``: CloudEvents ingestion for systems that do not speak AMQP.

Three modes of the CloudEvents HTTP binding: structured (``application/cloudevents+json``,
or ``application/json`` without ``ce-`` headers) takes one event as a JSON document;
binary (``ce-specversion``, ``ce-id``, ``ce-source``, ``ce-type``... headers, the body
being the event's JSON ``data``) takes one event; batched
(``application/cloudevents-batch+json``) takes a JSON array. Every event is validated
before any is published; an event id seen before is acknowledged but not published
again. A ``time`` further ahead than ``HERALD_EVENT_TIME_ALLOWANCE_SECONDS`` is clamped
to now plus that allowance (``Event.clamped``). Needs an API key with the
``events:write`` scope; a key with an event-type allow-list publishes only those types,
and ``user.deleted`` also needs ``users:erase`` (see ``shared.apikeys``). A request
with one event the key may not publish is refused whole, ``403``, naming the type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import unquote

import asyncpg
from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response, status
from pydantic import BaseModel

from shared.apikeys import ApiKey
from shared.db import first_time
from shared.errors import InvalidEvent
from shared.events import INTEGRATOR_TYPES, Event, Payload, parse_event

from ..dependencies import State, limited, require_scope
from ..ratelimit import Policy
from ..state import GatewayState

router = APIRouter(prefix="/v1", tags=["events"])

MAX_BATCH = 500
MAX_BODY_BYTES = 5 * 1024 * 1024
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"


class IngestResult(BaseModel):
    accepted: list[str]
    duplicates: list[str]


async def _read_body(request: Request) -> bytes:
    too_large = HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE, f"the body exceeds {MAX_BODY_BYTES} bytes"
    )
    if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    return bytes(body)


def _decode(raw: bytes, batch: bool) -> list[dict[str, Any]]:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"body is not JSON: {exc}") from exc
    items = body if batch else [body]
    if batch and not isinstance(body, list):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "a batch is a JSON array of events")
    if not items:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the batch is empty")
    if len(items) > MAX_BATCH:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"at most {MAX_BATCH} events per batch"
        )
    if not all(isinstance(i, dict) for i in items):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "each event is a JSON object")
    return items


def _binary_event(headers: Mapping[str, str], raw: bytes, media: str) -> dict[str, Any]:
    """The event that binary mode spreads over ``ce-*`` headers and the body."""
    event: dict[str, Any] = {
        name[3:].lower(): unquote(value)
        for name, value in headers.items()
        if name.lower().startswith("ce-") and len(name) > 3
    }
    if media not in ("application/json", "text/json") and not media.endswith("+json"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "binary mode takes JSON data (application/json)"
        )
    try:
        event["data"] = json.loads(raw) if raw else None
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"body is not JSON: {exc}") from exc
    event["datacontenttype"] = "application/json"
    return event


def _validate(items: list[dict[str, Any]], correlation_id: str | None) -> list[Event[Payload]]:
    events, problems = [], []
    for index, item in enumerate(items):
        if correlation_id and "correlationid" not in item:
            item = {**item, "correlationid": correlation_id}
        try:
            event = parse_event(item)
        except InvalidEvent as exc:
            problems.append({"index": index, "id": item.get("id"), "error": exc.reason})
            continue
        if event.type not in INTEGRATOR_TYPES:
            problems.append(
                {
                    "index": index,
                    "id": event.id,
                    "error": f"{event.type} is published by Herald itself, not through the API",
                }
            )
            continue
        events.append(event)
    if problems:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, {"message": "invalid event", "errors": problems}
        )
    ids = [e.id for e in events]
    if len(set(ids)) != len(ids):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "event ids repeat within the batch"
        )
    return events


def _authorize(key: ApiKey, events: list[Event[Payload]]) -> None:
    refused = [
        {"index": index, "id": event.id, "type": event.type, "error": reason}
        for index, event in enumerate(events)
        if (reason := key.refusal(event.type)) is not None
    ]
    if refused:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            {"message": "this key may not publish every event sent; none was", "errors": refused},
        )


async def _ingest_one(state: GatewayState, event: Event[Payload]) -> bool:
    """Record the id and publish in one transaction: if the broker does not confirm,
    the record rolls back and the client's retry is not mistaken for a duplicate."""
    async with state.pool.acquire() as conn, conn.transaction():
        fresh = await first_time(conn, "gateway", event.id)
        if fresh:
            await state.bus.publish(event)
    return bool(fresh)


@router.post(
    "/events",
    response_model=IngestResult,
    status_code=status.HTTP_202_ACCEPTED,
    responses={200: {"description": "every event was a duplicate"}},
    dependencies=limited(Policy.INGEST),
)
async def ingest_events(
    request: Request,
    response: Response,
    state: State,
    key: Annotated[ApiKey, Depends(require_scope("events:write"))],
    content_type: Annotated[str, Header()] = "application/cloudevents+json",
    x_correlation_id: Annotated[str | None, Header(max_length=256)] = None,
) -> IngestResult:
    media = content_type.split(";")[0].strip().lower()
    binary = "ce-specversion" in request.headers
    if binary and media in ("application/cloudevents+json", BATCH_CONTENT_TYPE):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "ce- headers belong to binary mode, not to a structured body",
        )
    if not binary and media not in (
        "application/cloudevents+json",
        "application/json",
        BATCH_CONTENT_TYPE,
    ):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "send application/cloudevents+json, application/cloudevents-batch+json, "
            "or JSON data with ce- headers (binary mode)",
        )
    body = await _read_body(request)
    items = (
        [_binary_event(request.headers, body, media)]
        if binary
        else _decode(body, media == BATCH_CONTENT_TYPE)
    )
    # published with its time clamped (and the time it claimed beside it), so every
    # service weighs it against erasures the same way
    events = [state.bus.received(e) for e in _validate(items, x_correlation_id)]
    _authorize(key, events)
    result = IngestResult(accepted=[], duplicates=[])
    for event in events:
        try:
            fresh = await _ingest_one(state, event)
        except asyncpg.DataError:
            raise  # the event's own values (a NUL in its id): the app answers 422
        except asyncpg.PostgresError as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "database unavailable"
            ) from exc
        (result.accepted if fresh else result.duplicates).append(event.id)
    if not result.accepted:
        response.status_code = status.HTTP_200_OK
    return result
