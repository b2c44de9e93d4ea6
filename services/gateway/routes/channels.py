"""``/v1/me/channels``: where the calling user is reached besides e-mail and the inbox.

A webhook gets a generated ``whsec_`` secret, shown once in the ``201`` answer (the
receiver checks signatures with it, per Standard Webhooks). Discord, Slack and Teams
take their incoming-webhook URL, whose host must be one of the vendor's
(``HERALD_DISCORD_WEBHOOK_HOSTS``, ...; ``shared.webhook_hosts``, the rule the
dispatcher applies again at every send). Telegram takes nothing: the ``201`` carries a
deep link to the bot, and the chat that opens it is bound (``telegram_links``); a
chat id from the user is refused, since the bot would write to any chat it is in. Every URL is checked against
SSRF before it is stored (its host must resolve to public addresses only, unless
``HERALD_ALLOW_PRIVATE_URLS`` exempts them); the dispatcher checks again at every
connection. URLs and secrets are credentials: they are stored sealed
(``shared.sealing``), and every answer, the ``201`` included, shows a URL only as
``scheme://host/…``.

A test send publishes a ``notification.requested`` limited to the endpoint's channel
type, which the dispatcher delivers like any other notification (so it reaches every
enabled endpoint of that type the user has).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import asyncpg
from fastapi import APIRouter, Body, HTTPException, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.endpoints import Unreadable, create_endpoint, opened
from shared.errors import Retry
from shared.events import RequestNotification, new_event
from shared.url_guard import UnsafeUrl
from shared.webhook_hosts import webhook_hosts

from .. import telegram_links
from ..dependencies import CurrentUser, State, limited
from ..ratelimit import Policy

router = APIRouter(prefix="/v1/me/channels", tags=["channels"])

MAX_ENDPOINTS = 20
BUILT_IN = frozenset({"email", "inapp"})


class NewChannel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["webhook", "discord", "slack", "teams", "telegram"]
    url: str | None = Field(default=None, min_length=8, max_length=2048)

    @model_validator(mode="before")
    @classmethod
    def _no_chat_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "chat_id" in data:
            raise ValueError(
                'a chat id is not accepted: add {"type": "telegram"} and open the '
                "link in the answer in the chat that should get notifications"
            )
        return data

    @model_validator(mode="after")
    def _target_fits_type(self) -> NewChannel:
        if self.type == "telegram":
            if self.url is not None:
                raise ValueError("a telegram channel takes no url: it is linked through the bot")
        elif self.url is None:
            raise ValueError(f"a {self.type} channel takes a url")
        return self


class ChannelChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class Channel(BaseModel):
    id: uuid.UUID
    type: str
    # pending: a Telegram channel whose link was not opened yet (never sent to)
    status: Literal["active", "disabled", "pending"]
    enabled: bool
    # why Herald switched it off (permanent failures, a gone webhook); null when on
    disabled_reason: str | None
    # URLs are credentials: shown only as scheme://host/…
    url: str | None
    chat_id: str | None
    # the e-mail channel's address
    address: str | None
    created_at: datetime


class CreatedChannel(Channel):
    # a webhook's signing secret, shown only in this answer
    secret: str | None
    # Telegram: open this link (in the chat to be notified) within 15 minutes
    link: str | None = None


class TestSend(BaseModel):
    event_id: str


def _pending(row: asyncpg.Record) -> bool:
    return bool(row["type"] == "telegram" and row["chat_id"] is None)


def _channel(row: asyncpg.Record) -> Channel:
    return Channel(
        id=row["id"],
        type=row["type"],
        status="pending" if _pending(row) else "active" if row["enabled"] else "disabled",
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        url=row["url_shown"],
        chat_id=row["chat_id"],
        address=row["address"],
        created_at=row["created_at"],
    )


_COLUMNS = "id, type, enabled, disabled_reason, url_shown, chat_id, address, created_at"
ChannelId = Annotated[uuid.UUID, Path(description="the channel endpoint's id")]


def _not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, "no such channel")


async def _known_user(state: State, user_id: str) -> None:
    if not await state.pool.fetchval("SELECT true FROM users WHERE user_id = $1", user_id):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "Herald does not know this user yet: the product publishes user.signed_up first",
        )


def _check_host(state: State, type_: str, url: str) -> None:
    hosts = webhook_hosts(state.settings).get(type_)
    refused = None if hosts is None else hosts.refusal(url)
    if refused is not None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, refused)


async def _check_url(state: State, url: str) -> None:
    # the reason given never names the address a host resolved to: the answer must
    # not become a way to map the internal network
    try:
        await state.url_guard.check(url)
    except UnsafeUrl as exc:
        try:
            parts = urlsplit(url)
            well_formed = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            well_formed = False
        detail = (
            "the URL must point to a public address"
            if well_formed
            else "the URL must be an http(s) URL with a host"
        )
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from exc
    except Retry as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "the URL's host cannot be resolved"
        ) from exc


@router.get("", response_model=list[Channel], dependencies=limited())
async def list_channels(user_id: CurrentUser, state: State) -> list[Channel]:
    rows = await state.pool.fetch(
        f"SELECT {_COLUMNS} FROM channel_endpoints WHERE user_id = $1 ORDER BY created_at, id",
        user_id,
    )
    return [_channel(r) for r in rows]


@router.post(
    "",
    response_model=CreatedChannel,
    status_code=status.HTTP_201_CREATED,
    dependencies=limited(Policy.SENSITIVE),
)
async def add_channel(
    user_id: CurrentUser, state: State, new: Annotated[NewChannel, Body()]
) -> CreatedChannel:
    await _known_user(state, user_id)
    bot = state.settings.telegram_bot_username
    if new.type == "telegram" and (bot is None or state.settings.telegram_webhook_secret is None):
        raise HTTPException(
            status.HTTP_409_CONFLICT, "Telegram channels are not available on this server"
        )
    if new.url is not None:
        _check_host(state, new.type, new.url)
        await _check_url(state, new.url)
    async with state.pool.acquire() as conn, conn.transaction():
        # serialises one user's concurrent additions, so the cap holds
        await conn.execute("SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE", user_id)
        await telegram_links.forget_expired(conn, user_id)
        count = await conn.fetchval(
            "SELECT count(*) FROM channel_endpoints WHERE user_id = $1 AND type <> ALL($2)",
            user_id,
            list(BUILT_IN),
        )
        if count >= MAX_ENDPOINTS:
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"at most {MAX_ENDPOINTS} channels per user"
            )
        link, secret = None, None
        if new.type == "telegram":
            assert bot is not None
            endpoint_id, code = await telegram_links.add_pending(conn, user_id)
            link = telegram_links.link_url(bot, code)
        else:
            endpoint = await create_endpoint(
                conn,
                user_id,
                new.type,
                sealer=state.sealer,
                url=new.url,
            )
            endpoint_id, secret = endpoint.id, endpoint.secret
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM channel_endpoints WHERE id = $1", endpoint_id
        )
    assert row is not None
    return CreatedChannel(**_channel(row).model_dump(), secret=secret, link=link)


@router.patch("/{channel_id}", response_model=Channel, dependencies=limited(Policy.SENSITIVE))
async def change_channel(
    channel_id: ChannelId,
    user_id: CurrentUser,
    state: State,
    change: Annotated[ChannelChange, Body()],
) -> Channel:
    """Switch a channel on or off; switching on clears a failure streak that made
    Herald disable it. A pending Telegram channel stays off until its link is opened."""
    row = await state.pool.fetchrow(
        f"""UPDATE channel_endpoints
            SET enabled = $3,
                consecutive_failures = CASE WHEN $3 THEN 0 ELSE consecutive_failures END,
                disabled_reason = CASE WHEN $3 THEN NULL ELSE 'switched off by the user' END
            WHERE id = $1 AND user_id = $2 AND NOT (type = 'telegram' AND chat_id IS NULL)
            RETURNING {_COLUMNS}""",
        channel_id,
        user_id,
        change.enabled,
    )
    if row is None:
        pending = await state.pool.fetchval(
            "SELECT true FROM channel_endpoints WHERE id = $1 AND user_id = $2",
            channel_id,
            user_id,
        )
        if pending:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                "this Telegram channel is waiting for its link to be opened",
            )
        raise _not_found()
    return _channel(row)


@router.delete(
    "/{channel_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=limited(Policy.SENSITIVE),
)
async def remove_channel(channel_id: ChannelId, user_id: CurrentUser, state: State) -> Response:
    async with state.pool.acquire() as conn, conn.transaction():
        type_ = await conn.fetchval(
            "SELECT type FROM channel_endpoints WHERE id = $1 AND user_id = $2 FOR UPDATE",
            channel_id,
            user_id,
        )
        if type_ is None:
            raise _not_found()
        if type_ in BUILT_IN:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                "e-mail and the inbox are built in: switch them off in preferences instead",
            )
        await conn.execute("DELETE FROM channel_endpoints WHERE id = $1", channel_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{channel_id}/test",
    response_model=TestSend,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=limited(Policy.SENSITIVE),
)
async def test_channel(channel_id: ChannelId, user_id: CurrentUser, state: State) -> TestSend:
    """Send a test notification on this channel (only this one)."""
    row = await state.pool.fetchrow(
        """SELECT type, enabled, url, url_sealed FROM channel_endpoints
           WHERE id = $1 AND user_id = $2""",
        channel_id,
        user_id,
    )
    if row is None:
        raise _not_found()
    if not row["enabled"]:
        raise HTTPException(status.HTTP_409_CONFLICT, "this channel is off: switch it on first")
    endpoint = opened(
        state.sealer,
        id=channel_id,
        user_id=user_id,
        type=row["type"],
        url_sealed=row["url_sealed"],
        secret_sealed=None,
        url=row["url"],
    )
    if isinstance(endpoint, Unreadable):
        # the dispatcher would leave it out too: say so rather than send nothing
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "this channel cannot be read with the server's keys: ask its operator",
        )
    if endpoint.url is not None:  # stored before its host list shrank: it would only fail
        _check_host(state, row["type"], endpoint.url)
    event_id = str(uuid.uuid4())
    event = new_event(
        RequestNotification(
            user_id=user_id,
            type="test",
            title="Test notification",
            body="This is a test notification. If you can read it, this channel reaches you.",
            channels=[row["type"]],
            endpoint_ids=[channel_id],
            # every test is sent: never taken for a repeat of the previous one
            dedup_key=f"test:{event_id}",
            data={"channel_id": str(channel_id)},
        ),
        source="herald/gateway",
        id=event_id,
    )
    await state.bus.publish(event)
    return TestSend(event_id=event.id)
