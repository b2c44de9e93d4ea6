"""One-click unsubscribe (RFC 8058) behind the signed link every e-mail carries.

Public: the signature in the link is the credential. ``POST`` (what mail clients send
for ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``) switches e-mail off;
``GET`` only shows a confirmation form, because link scanners and previews fetch
links in mail and must not unsubscribe anyone.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, PlainTextResponse

from shared import signing

from ..dependencies import State

router = APIRouter(prefix="/v1/unsubscribe", tags=["unsubscribe"])


def _user(state: State, token: str) -> str:
    try:
        return signing.unsubscribing_user(state.settings, token)
    except signing.BadToken as exc:
        raise HTTPException(400, f"this unsubscribe link is not valid: {exc}") from exc


@router.get("/{token}", response_class=HTMLResponse)
async def confirm(token: str, state: State) -> HTMLResponse:
    _user(state, token)
    action = html.escape(f"/v1/unsubscribe/{token}")
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>Unsubscribe</title>"
        "<p>Stop e-mail notifications? You will still see them in the app.</p>"
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        "<button>Unsubscribe</button></form>"
    )


@router.post("/{token}", response_class=PlainTextResponse)
async def unsubscribe(token: str, state: State) -> PlainTextResponse:
    user_id = _user(state, token)
    # Idempotent, and silent about whether the user still exists: a link from an
    # old message must not reveal anything.
    await state.pool.execute(
        "UPDATE preferences SET email_enabled = false, updated_at = now() WHERE user_id = $1",
        user_id,
    )
    return PlainTextResponse("You will no longer get e-mail notifications.")
