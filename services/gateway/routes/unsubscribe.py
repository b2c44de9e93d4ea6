"""One-click unsubscribe (RFC 8058) behind the signed link every e-mail carries.

Public: the signature in the link is the credential. ``POST`` (what mail clients send
for ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``) switches e-mail off;
``GET`` only shows a confirmation form, because link scanners and previews fetch
links in mail and must not unsubscribe anyone.
"""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status
from fastapi.responses import HTMLResponse, PlainTextResponse

from shared import signing

from ..dependencies import State, rate_limit_by_client

router = APIRouter(prefix="/v1/unsubscribe", tags=["unsubscribe"])

Token = Annotated[str, Path(max_length=1024, description="the signed token from the link")]


def _user(state: State, token: str) -> str:
    try:
        return signing.unsubscribing_user(state.settings, token)
    except signing.ExpiredToken as exc:
        raise HTTPException(
            status.HTTP_410_GONE,
            "this unsubscribe link has expired: use the one in a recent e-mail, "
            "or change your preferences in the app",
        ) from exc
    except signing.BadToken as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"this unsubscribe link is not valid: {exc}"
        ) from exc


# public (the signed token is the credential): limited per client address
@router.get("/{token}", response_class=HTMLResponse, dependencies=[Depends(rate_limit_by_client())])
async def confirm(token: Token, state: State) -> HTMLResponse:
    _user(state, token)
    action = html.escape(f"/v1/unsubscribe/{token}")
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>Unsubscribe</title>"
        "<p>Stop e-mail notifications? You will still see them in the app.</p>"
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        "<button>Unsubscribe</button></form>"
    )


@router.post(
    "/{token}", response_class=PlainTextResponse, dependencies=[Depends(rate_limit_by_client())]
)
async def unsubscribe(token: Token, state: State) -> PlainTextResponse:
    user_id = _user(state, token)
    # Idempotent, and silent about whether the user still exists: a link from an
    # old message must not reveal anything.
    await state.pool.execute(
        "UPDATE preferences SET email_enabled = false, updated_at = now() WHERE user_id = $1",
        user_id,
    )
    return PlainTextResponse("You will no longer get e-mail notifications.")
