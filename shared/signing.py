"""Signed tokens for links in messages (one-click unsubscribe), keyed by
``HERALD_SECRET_KEY`` so any replica of any service can make and check them.

An unsubscribe token carries its expiry (``<unix time>:<user id>``, signed): the
end of the day it was made plus ``UNSUBSCRIBE_DAYS``, so every e-mail of one day
carries the same link and an old leaked link stops working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from shared.settings import Settings


class BadToken(ValueError):
    pass


class ExpiredToken(BadToken):
    """A token we signed, too old to honour; ``value`` is what it carried."""

    def __init__(self, reason: str, value: str) -> None:
        super().__init__(reason)
        self.value = value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    # strict: one spelling per token (no stray characters silently dropped)
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _mac(secret: str, purpose: str, payload: bytes) -> bytes:
    # the purpose is part of the MAC: a token made for one link never opens another
    return hmac.new(secret.encode(), purpose.encode() + b"\x00" + payload, hashlib.sha256).digest()


def sign(secret: str, purpose: str, value: str) -> str:
    payload = value.encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, purpose, payload)[:18])}"


def unsign(secret: str, purpose: str, token: str) -> str:
    try:
        payload_text, mac_text = token.split(".", 1)
        payload = _unb64(payload_text)
        mac = _unb64(mac_text)
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise BadToken("malformed token") from exc
    if _b64(payload) != payload_text or _b64(mac) != mac_text:
        raise BadToken("malformed token")
    if not hmac.compare_digest(mac, _mac(secret, purpose, payload)[:18]):
        raise BadToken("bad signature")
    return payload.decode()


UNSUBSCRIBE = "unsubscribe"
UNSUBSCRIBE_DAYS = 90
DAY = 86_400


def _secret(settings: Settings) -> str:
    assert settings.secret_key is not None  # load_settings always fills it
    return settings.secret_key.get_secret_value()


def unsubscribe_url(settings: Settings, user_id: str, *, now: float | None = None) -> str:
    """The one-click unsubscribe link for ``user_id``'s e-mail (RFC 8058)."""
    today = int((time.time() if now is None else now) // DAY)
    expires = (today + 1 + UNSUBSCRIBE_DAYS) * DAY
    token = sign(_secret(settings), UNSUBSCRIBE, f"{expires}:{user_id}")
    return f"{settings.public_url.rstrip('/')}/v1/unsubscribe/{token}"


def unsubscribing_user(settings: Settings, token: str, *, now: float | None = None) -> str:
    """Whose unsubscribe link ``token`` is; ``BadToken`` if it is not one of ours,
    ``ExpiredToken`` (a ``BadToken``, whose ``value`` is the user id) if it was but
    is too old."""
    expires, sep, user_id = unsign(_secret(settings), UNSUBSCRIBE, token).partition(":")
    if not sep or not expires.isdigit():
        raise BadToken("malformed token")
    if (time.time() if now is None else now) >= int(expires):
        raise ExpiredToken("expired", user_id)
    return user_id
