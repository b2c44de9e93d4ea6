"""One-click unsubscribe (RFC 8058) behind the signed link every e-mail carries.

Public: the signature in the link is the credential. ``POST`` (what mail clients send
for ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``) switches e-mail off;
``GET`` only shows a confirmation form, because link scanners and previews fetch
links in mail and must not unsubscribe anyone.

Rate limits: a link whose signature verifies takes from its user's bucket, so only
its holder can spend it; a link that does not verify takes from a bucket of the
sender's address kept apart from those. Behind an Ingress many callers can share
one address: a flood of bad links from one of them must not refuse anyone's real
one-click unsubscribe.
"""

from __future__ import annotations

import html
from contextlib import suppress
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, PlainTextResponse

from shared import signing

from ..dependencies import State, client_address, enforce
from ..ratelimit import Policy

router = APIRouter(prefix="/v1/unsubscribe", tags=["unsubscribe"])

Token = Annotated[str, Path(max_length=1024, description="the signed token from the link")]


async def link_user(token: Token, request: Request, state: State) -> str:
    """Whose link this is, once a request is taken from the right bucket; else the
    link's fault as HTTP (``410`` expired, ``400`` not ours)."""
    try:
        user_id = signing.unsubscribing_user(state.settings, token)
    except signing.ExpiredToken as exc:
        # ours, so its user's own bucket: only they hold it
        await enforce(state, f"u:{exc.value}", request, Policy.SENSITIVE)
        raise HTTPException(
            status.HTTP_410_GONE,
            "this unsubscribe link has expired: use the one in a recent e-mail, "
            "or change your preferences in the app",
        ) from exc
    except signing.BadToken as exc:
        await enforce(state, f"bad-link:{client_address(request)}", request, Policy.SENSITIVE)
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"this unsubscribe link is not valid: {exc}"
        ) from exc
    await enforce(state, f"u:{user_id}", request, Policy.SENSITIVE)
    return user_id


link_user.herald_rate_limit = Policy.SENSITIVE  # type: ignore[attr-defined]

LinkUser = Annotated[str, Depends(link_user)]


@router.get("/{token}", response_class=HTMLResponse)
async def confirm(token: Token, _: LinkUser) -> HTMLResponse:
    action = html.escape(f"/v1/unsubscribe/{token}")
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>Unsubscribe</title>"
        "<p>Stop e-mail notifications? You will still see them in the app.</p>"
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        "<button>Unsubscribe</button></form>"
    )


@router.post("/{token}", response_class=PlainTextResponse)
async def unsubscribe(user_id: LinkUser, state: State) -> PlainTextResponse:
    # Idempotent, and silent about whether the user still exists: a link from an
    # old message must not reveal anything. A user without preferences has the
    # defaults (e-mail on), so the row may be made here; one erased while we write
    # has nothing left to unsubscribe.
    with suppress(asyncpg.ForeignKeyViolationError):
        await state.pool.execute(
            """INSERT INTO preferences AS p (user_id, email_enabled)
               SELECT user_id, false FROM users WHERE user_id = $1
               ON CONFLICT (user_id) DO UPDATE SET email_enabled = false, updated_at = now()""",
            user_id,
        )
    return PlainTextResponse("You will no longer get e-mail notifications.")
